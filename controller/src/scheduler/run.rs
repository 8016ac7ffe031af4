//! The scheduler loop: every tick, read the accounts due by now from the os engine's due-time
//! index, ask [`super::due`] about each, and hand due accounts to the OS engine grouped by
//! host (so children of one parent still rotate in one job), with a bound on hosts in flight.
//!
//! Owns timing and fan-out only; decisions are `due`'s, rotations the engine's. A pass costs
//! the accounts due by now (plus those stuck pending, failing or out of sync past their due
//! time), not every account: a million accounts of which ten are due cost ten reads. The
//! loop still rests ten times as long as a pass's reading took.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Due;
use crate::engines::os::{OsEngine, model};
use crate::store::Store;
use crate::tokens::now_unix;

/// Hosts rotating at once from the schedule. The schedule is background work: with 32, ten
/// thousand due rotations finished in 11.7 s but the API's p99 rose from 1.4 to 31 ms on 2
/// cores; with 8 they take 15.2 s and the p99 stays under 8 ms (docs/benchmarks.md).
const MAX_HOSTS_IN_FLIGHT: usize = 8;

pub async fn run(engine: OsEngine, store: Arc<Store>, tick: Duration) {
    // A store from before the index gets it once, before the first pass.
    loop {
        match crate::engines::os::due_index::ensure_built(&store) {
            Ok(0) => break,
            Ok(indexed) => {
                tracing::info!(
                    indexed,
                    "built the due-time index of the os engine's accounts"
                );
                break;
            }
            Err(error) => {
                tracing::error!(%error, "cannot build the due-time index; retrying");
                tokio::time::sleep(tick).await;
            }
        }
    }
    let permits = Arc::new(Semaphore::new(MAX_HOSTS_IN_FLIGHT));
    loop {
        let scanned = match pass(&engine, &store, &permits).await {
            Ok(scanned) => scanned,
            Err(error) => {
                tracing::error!(%error, "scheduler pass failed; will retry");
                Duration::ZERO
            }
        };
        if let Err(error) = super::verify::pass(&engine, &store, &permits).await {
            tracing::error!(%error, "heartbeat verification pass failed; will retry");
        }
        tokio::time::sleep(pace(tick, scanned)).await;
    }
}

/// How long to rest after a pass whose scan of the store took `took`: at least `tick`, and at
/// least ten times the scan, so scanning a very large fleet uses at most a tenth of a core.
/// (Waiting for rotation permits is not scanning and does not count.)
pub fn pace(tick: Duration, took: Duration) -> Duration {
    tick.max(crate::store::rest_after_scan(took))
}

async fn pass(
    engine: &OsEngine,
    store: &Arc<Store>,
    permits: &Arc<Semaphore>,
) -> Result<Duration, crate::store::StoreError> {
    let now = now_unix();
    let scan_started = std::time::Instant::now();
    let found = due_by_mount(store, now)?;
    let scanning = scan_started.elapsed();
    for (
        mount,
        DueInMount {
            due_by_host,
            missed,
        },
    ) in found
    {
        for (host, name, scheduled) in missed {
            let detail = format!(
                "missed the scheduled rotation of {} (window passed); waiting for the next occurrence",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(scheduled)
                )
            );
            tracing::warn!(mount = %mount, %host, account = %name, "{detail}");
            model::set_schedule_anchor(store, &mount, &host, &name, now, Some(&detail))?;
        }
        for (host, accounts) in due_by_host {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return Ok(scanning);
            };
            // The driver's host claim is the one owner of "one job per host": a host busy
            // now (a rotation, a verification, a recovery) is due again next pass.
            let Some(claim) = engine.try_claim_host(&mount, &host) else {
                continue;
            };
            let engine = engine.clone();
            let mount_path = mount.clone();
            tokio::spawn(async move {
                tracing::info!(mount = %mount_path, %host, accounts = accounts.len(), "scheduled rotation");
                if let Err(error) = engine
                    .rotate_accounts_claimed(claim, &mount_path, &host, Some(&accounts))
                    .await
                {
                    tracing::warn!(mount = %mount_path, %host, %error, "scheduled rotation failed");
                }
                drop(permit);
            });
        }
    }
    Ok(scanning)
}

/// What one mount has due now.
#[derive(Debug, Default, PartialEq)]
pub struct DueInMount {
    /// Accounts to rotate now, by host, in due order.
    pub due_by_host: BTreeMap<String, Vec<String>>,
    /// Accounts whose rotation window passed: (host, account, scheduled time).
    pub missed: Vec<(String, String, u64)>,
}

/// The accounts of every `os` mount that are due at `now`, read from the due-time index
/// (only accounts due by now are read), each judged by [`super::due`].
pub fn due_by_mount(
    store: &Store,
    now: u64,
) -> Result<BTreeMap<String, DueInMount>, crate::store::StoreError> {
    let mounts: Vec<String> = crate::engines::mounts::list(store)?
        .into_iter()
        .filter(|mount| mount.kind == "os")
        .map(|mount| mount.path)
        .collect();
    let mut found: BTreeMap<String, DueInMount> = BTreeMap::new();
    crate::engines::os::due_index::for_each_due(store, now, |key, account| {
        // The longest os mount the key is under (an engine since unmounted is skipped).
        let Some(mount) = mounts
            .iter()
            .filter(|mount| key.starts_with(mount.as_str()))
            .max_by_key(|mount| mount.len())
        else {
            return Ok(());
        };
        let entry = found.entry(mount.clone()).or_default();
        match super::due(&account, now) {
            Due::Now { .. } => entry
                .due_by_host
                .entry(account.host)
                .or_default()
                .push(account.name),
            Due::MissedWindow { scheduled } => {
                entry.missed.push((account.host, account.name, scheduled));
            }
            Due::NotDue { .. } => {}
        }
        Ok(())
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::pace;
    use std::time::Duration;

    #[test]
    fn a_long_pass_rests_ten_times_as_long_and_a_short_one_the_tick() {
        let tick = Duration::from_secs(5);
        assert_eq!(pace(tick, Duration::from_millis(20)), tick);
        assert_eq!(pace(tick, Duration::from_secs(2)), Duration::from_secs(20));
    }
}
