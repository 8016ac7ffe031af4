//! The agent's own figures, reported to the controller with every heartbeat
//! ([`rotor_common::wire::AgentMetrics`]): uptime, memory, jobs by outcome, journal backlog,
//! links made.
//!
//! Owns the process-wide counters and reading /proc/self/status; must not send anything
//! (the link does) nor decide what a job's outcome means beyond success or failure.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rotor_common::wire::AgentMetrics;

static STARTED: OnceLock<Instant> = OnceLock::new();
static JOBS_RUNNING: AtomicU64 = AtomicU64::new(0);
static JOBS_SUCCEEDED: AtomicU64 = AtomicU64::new(0);
static JOBS_FAILED: AtomicU64 = AtomicU64::new(0);
static LINKS_ESTABLISHED: AtomicU64 = AtomicU64::new(0);

/// Marks the process start (call early in `main`; later calls change nothing).
pub fn mark_start() {
    let _ = STARTED.get_or_init(Instant::now);
}

pub fn link_established() {
    LINKS_ESTABLISHED.fetch_add(1, Ordering::Relaxed);
}

/// Counts a job as running until the returned guard is dropped.
pub fn job_started() -> RunningJob {
    JOBS_RUNNING.fetch_add(1, Ordering::Relaxed);
    RunningJob { _private: () }
}

pub struct RunningJob {
    _private: (),
}

impl RunningJob {
    /// The job ended; `succeeded` is false for a failure outcome.
    pub fn finished(self, succeeded: bool) {
        let counter = if succeeded {
            &JOBS_SUCCEEDED
        } else {
            &JOBS_FAILED
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        JOBS_RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The figures now. Memory reads as 0 where /proc is not available.
pub fn snapshot(journal_unacknowledged: usize) -> AgentMetrics {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    AgentMetrics {
        uptime_secs: STARTED.get_or_init(Instant::now).elapsed().as_secs(),
        rss_bytes: status_kib(&status, "VmRSS:") * 1024,
        peak_rss_bytes: status_kib(&status, "VmHWM:") * 1024,
        jobs_running: JOBS_RUNNING.load(Ordering::Relaxed),
        jobs_succeeded: JOBS_SUCCEEDED.load(Ordering::Relaxed),
        jobs_failed: JOBS_FAILED.load(Ordering::Relaxed),
        journal_unacknowledged: u64::try_from(journal_unacknowledged).unwrap_or(u64::MAX),
        links_established: LINKS_ESTABLISHED.load(Ordering::Relaxed),
    }
}

/// `VmRSS:     1234 kB` → 1234.
fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|number| number.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\trotor-agent\nVmHWM:\t   15360 kB\nVmRSS:\t   14336 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), 14336);
        assert_eq!(status_kib(status, "VmHWM:"), 15360);
        assert_eq!(status_kib(status, "VmSwap:"), 0);
        assert_eq!(status_kib("VmRSS: lots", "VmRSS:"), 0);
    }

    #[test]
    fn jobs_are_counted_by_outcome_and_running_ones_released() {
        let before = snapshot(0);
        let one = job_started();
        let two = job_started();
        assert!(snapshot(0).jobs_running >= before.jobs_running + 2);
        one.finished(true);
        two.finished(false);
        let after = snapshot(3);
        assert!(after.jobs_succeeded > before.jobs_succeeded);
        assert!(after.jobs_failed > before.jobs_failed);
        assert_eq!(after.journal_unacknowledged, 3);
        assert!(after.rss_bytes > 0, "this test runs on Linux");
    }
}
