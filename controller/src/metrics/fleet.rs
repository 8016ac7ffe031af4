//! Gauges read at scrape time from what the controller holds now: accounts by status (the
//! `out_of_sync` count among them), per site the enrolled and connected agents, the jobs in
//! flight and the jobs waiting in the dispatcher's queue, and the jobs in flight per
//! connected agent.
//!
//! Owns reading those figures; it changes nothing. Must not count events (`registry.rs` does).
//!
//! The account counts come from the rows the OS engine keeps with every account write
//! (`engines/os/due_index.rs`): four numbers, whatever the fleet's size. Only a store from
//! before those rows, until the scheduler's start builds them, is scanned: a scan's counts are
//! reused while younger than ten times the scan took (a tenth of a core at most). Agents and
//! queues are read live.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::dispatch::{Dispatcher, registry};
use crate::engines::os::model::{self, AccountStatus};
use crate::store::{Store, StoreError};

/// Agents and work of one site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteGauges {
    /// Enrolled and not revoked.
    pub agents_enrolled: u64,
    pub agents_connected: u64,
    pub jobs_in_flight: u64,
    /// Jobs waiting in the dispatcher's queue for a free slot.
    pub queue_depth: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetGauges {
    /// Every status, zeros included, so a dashboard sees `out_of_sync 0` rather than nothing.
    pub accounts_by_status: Vec<(&'static str, u64)>,
    pub sites: BTreeMap<String, SiteGauges>,
    /// Jobs in flight per connected agent, by agent id.
    pub agents_jobs_in_flight: BTreeMap<String, u64>,
    /// What each connected agent last reported about itself, by agent id.
    pub agents_reported: BTreeMap<String, rotor_common::wire::AgentMetrics>,
    /// Leases whose revocation failed and is being retried (filled by the caller from the
    /// lease manager, which keeps the count).
    pub leases_revocation_pending: u64,
}

impl FleetGauges {
    pub fn accounts_out_of_sync(&self) -> u64 {
        self.accounts_by_status
            .iter()
            .find(|(status, _)| *status == AccountStatus::OutOfSync.name())
            .map(|(_, count)| *count)
            .unwrap_or(0)
    }
}

use crate::engines::os::due_index::STATUSES;

/// Account counts by status (in [`STATUSES`] order) from one scan of one store.
struct Counted {
    /// Which store they were counted in (its address).
    store: usize,
    counts: [u64; 4],
    at: Instant,
    scan_took: Duration,
}

static LAST_COUNT: Mutex<Option<Counted>> = Mutex::new(None);

/// Whether counts of `age` from a scan that took `scan_took` may be served again.
fn still_fresh(age: Duration, scan_took: Duration) -> bool {
    age < crate::store::rest_after_scan(scan_took)
}

/// Counts accounts by status: the kept counts, or (a store from before them) a stream of every
/// OS account, one decoded at a time, unless the last such count is still fresh.
fn account_counts(store: &Store) -> Result<[u64; 4], StoreError> {
    if let Some(counts) = crate::engines::os::due_index::status_counts(store)? {
        return Ok(counts);
    }
    let identity = std::ptr::from_ref(store) as usize;
    if let Ok(last) = LAST_COUNT.lock()
        && let Some(last) = last.as_ref()
        && last.store == identity
        && still_fresh(last.at.elapsed(), last.scan_took)
    {
        return Ok(last.counts);
    }
    let started = Instant::now();
    let mut counts = [0u64; 4];
    // Every OS mount's accounts: the table's keys start with the mount path.
    model::for_each_account(store, "", |account| {
        if let Some(index) = STATUSES.iter().position(|status| *status == account.status) {
            counts[index] += 1;
        }
        Ok(())
    })?;
    if let Ok(mut last) = LAST_COUNT.lock() {
        *last = Some(Counted {
            store: identity,
            counts,
            at: Instant::now(),
            scan_took: started.elapsed(),
        });
    }
    Ok(counts)
}

/// Reads the gauges.
pub fn read(store: &Store, dispatcher: &Dispatcher) -> Result<FleetGauges, StoreError> {
    let counts = account_counts(store)?;
    let accounts_by_status = STATUSES
        .iter()
        .zip(counts)
        .map(|(status, count)| (status.name(), count))
        .collect();
    let mut sites: BTreeMap<String, SiteGauges> = BTreeMap::new();
    let mut agents_jobs_in_flight = BTreeMap::new();
    let mut agents_reported = BTreeMap::new();
    for agent in registry::list_agents(store)? {
        if agent.revoked_unix.is_some() {
            continue;
        }
        let site = sites.entry(agent.site.clone()).or_default();
        site.agents_enrolled += 1;
        if let Some(live) = dispatcher.live_status(&agent.id) {
            site.agents_connected += 1;
            let jobs = u64::try_from(live.jobs_in_flight).unwrap_or(u64::MAX);
            site.jobs_in_flight += jobs;
            agents_jobs_in_flight.insert(agent.id.clone(), jobs);
            if let Some(reported) = live.reported {
                agents_reported.insert(agent.id.clone(), reported);
            }
        }
    }
    for (site, depth) in dispatcher.queue_depths() {
        sites.entry(site).or_default().queue_depth = u64::try_from(depth).unwrap_or(u64::MAX);
    }
    Ok(FleetGauges {
        accounts_by_status,
        sites,
        agents_jobs_in_flight,
        agents_reported,
        leases_revocation_pending: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_reused_for_ten_times_the_scan_that_made_them() {
        let scan = Duration::from_millis(900);
        assert!(still_fresh(Duration::from_secs(8), scan));
        assert!(!still_fresh(Duration::from_secs(9), scan));
        // A small fleet's scan takes microseconds: every scrape counts afresh.
        assert!(!still_fresh(
            Duration::from_millis(1),
            Duration::from_micros(50)
        ));
    }
}
