//! Results agents report from their journals when they reconnect: evidence for changes whose
//! answer the controller never received (it was killed, or the link broke, after the agent
//! finished the job).
//!
//! An agent journals every job's result and repeats the unacknowledged ones in its `Hello`.
//! They are kept here, in the store's `jobs` table keyed by job id, before they are
//! acknowledged, so an engine settling a pending change can read the agent's recorded answer
//! instead of probing the target (the OS engine's recovery does). Entries older than a day
//! are dropped when new ones arrive: by then every change they could settle has settled.
//!
//! Owns the table's records. Must not decide what a result means: engines do.

use rotor_common::ids::AgentId;
use rotor_common::wire::{JobOutcome, JobResult};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreResult, Table};
use crate::tokens::now_unix;

/// How long a reported result is kept.
const KEEP_SECS: u64 = 24 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReportedResult {
    /// The agent that ran the job.
    agent: String,
    /// When the controller received the report (Unix seconds).
    received_unix: u64,
    /// What the agent recorded. Outcomes carry no secrets (wire rule).
    outcome: JobOutcome,
}

/// Keeps `results` reported by `agent`, and drops reports older than a day, in one write.
pub fn record(store: &Store, agent: &AgentId, results: &[JobResult]) -> StoreResult<()> {
    let now = now_unix();
    store.write(|tx| {
        for (key, old) in tx.scan::<ReportedResult>(Table::Jobs, "")? {
            if old.received_unix.saturating_add(KEEP_SECS) < now {
                tx.delete(Table::Jobs, &key)?;
            }
        }
        for result in results {
            let report = ReportedResult {
                agent: agent.to_string(),
                received_unix: now,
                outcome: result.outcome.clone(),
            };
            tx.put(Table::Jobs, &result.id.to_string(), &report)?;
        }
        Ok(())
    })
}

/// The outcome an agent reported for `job_id`, and which agent reported it.
pub fn reported(store: &Store, job_id: &str) -> StoreResult<Option<(String, JobOutcome)>> {
    Ok(store
        .get::<ReportedResult>(Table::Jobs, job_id)?
        .map(|report| (report.agent, report.outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;
    use rotor_common::ids::JobId;

    #[test]
    fn reported_results_are_kept_by_job_id_and_old_ones_dropped() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let agent = AgentId::new("0123456789abcdef").expect("agent id");
        let old_id = JobId::generate();
        let stale = ReportedResult {
            agent: agent.to_string(),
            received_unix: now_unix() - KEEP_SECS - 10,
            outcome: JobOutcome::Echo { payload: vec![1] },
        };
        store
            .write(|tx| tx.put(Table::Jobs, &old_id.to_string(), &stale))
            .expect("stale report");
        let id = JobId::generate();
        let result = JobResult {
            id,
            outcome: JobOutcome::Echo { payload: vec![2] },
        };
        record(&store, &agent, &[result]).expect("recorded");
        let (by, outcome) = reported(&store, &id.to_string())
            .expect("read")
            .expect("kept");
        assert_eq!(by, agent.to_string());
        assert_eq!(outcome, JobOutcome::Echo { payload: vec![2] });
        assert!(
            reported(&store, &old_id.to_string())
                .expect("read")
                .is_none(),
            "a day-old report is dropped"
        );
    }
}
