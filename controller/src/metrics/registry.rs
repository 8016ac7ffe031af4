//! The counters and histograms the controller moves as it works, process-wide.
//!
//! Owns the event counts (rotations by outcome, rotation latency, verification runs, API
//! requests by status and their latency) and a point-in-time copy of them for rendering.
//! Lock-free on the API's hot path (one atomic per status code, per histogram bucket); a std
//! mutex guards the low-rate labelled counters and is never held across an await. Must not
//! read the store or the dispatcher (`fleet.rs` does, at scrape time).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What became of one account's rotation attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RotationOutcome {
    /// The new password is on the host and committed.
    Committed,
    /// Certainly not changed (the host refused, or verification found the current password).
    Failed,
    /// Neither the new nor the current password logs in.
    OutOfSync,
    /// The outcome is still being verified (the candidate stays pending).
    Unresolved,
    /// The attempt ended in an error instead of an outcome: refused before anything was sent
    /// (a rotation already in flight, a host without a site) or a store failure.
    Error,
}

impl RotationOutcome {
    pub fn label(self) -> &'static str {
        match self {
            RotationOutcome::Committed => "committed",
            RotationOutcome::Failed => "failed",
            RotationOutcome::OutOfSync => "out_of_sync",
            RotationOutcome::Unresolved => "unresolved",
            RotationOutcome::Error => "error",
        }
    }
}

/// Why a verification login ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VerificationKind {
    /// Resolving a candidate after an uncertain outcome or a restart.
    Pending,
    /// `…/verify`: does the known password still log in?
    Current,
    /// The same check, run by the scheduler every `verify_period` (a heartbeat).
    Scheduled,
}

impl VerificationKind {
    pub fn label(self) -> &'static str {
        match self {
            VerificationKind::Pending => "pending",
            VerificationKind::Current => "current",
            VerificationKind::Scheduled => "scheduled",
        }
    }
}

/// Upper bounds (seconds) of the rotation latency buckets: a local chpasswd takes tens of
/// milliseconds, a slow host's passwd dialog tens of seconds, a deadline minutes.
pub const ROTATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Upper bounds (seconds) of the API latency buckets.
pub const API_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A histogram with fixed buckets, updated with atomics.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last slot counts values above every bound.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

/// A histogram as read at one moment: cumulative counts per upper bound.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let above = self
            .counts
            .last()
            .map(|count| count.load(Ordering::Relaxed))
            .unwrap_or(0);
        HistogramSnapshot {
            buckets,
            count: cumulative + above,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// HTTP status codes are below 600; one counter each keeps the hot path to one atomic add.
const STATUS_SLOTS: usize = 600;

/// Every event counter of the controller.
pub struct Registry {
    rotations: Mutex<BTreeMap<RotationOutcome, u64>>,
    rotation_latency: Histogram,
    verifications: Mutex<BTreeMap<(VerificationKind, &'static str), u64>>,
    api_requests: Vec<AtomicU64>,
    api_latency: Histogram,
    /// Broken invariants the controller survived (a poisoned lock, …), by kind: each is a
    /// bug to report, so it is counted as well as logged.
    internal_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Logins through auth methods, by method type (`approle`, `userpass`) and outcome
    /// (`success`, `invalid`, `refused`, `error`, `rate_limited`).
    logins: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Wrapping tokens presented after their answer was unwrapped (a sign of interception).
    wrapping_reuse: AtomicU64,
}

/// The counters at one moment, for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub rotations: Vec<(&'static str, u64)>,
    pub rotation_latency: HistogramSnapshot,
    pub verifications: Vec<(&'static str, &'static str, u64)>,
    pub api_requests: Vec<(u16, u64)>,
    pub api_latency: HistogramSnapshot,
    pub internal_errors: Vec<(&'static str, u64)>,
    pub logins: Vec<(&'static str, &'static str, u64)>,
    pub wrapping_reuse: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self {
            rotations: Mutex::new(BTreeMap::new()),
            rotation_latency: Histogram::new(ROTATION_BUCKETS),
            verifications: Mutex::new(BTreeMap::new()),
            api_requests: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            api_latency: Histogram::new(API_BUCKETS),
            internal_errors: Mutex::new(BTreeMap::new()),
            logins: Mutex::new(BTreeMap::new()),
            wrapping_reuse: AtomicU64::new(0),
        }
    }

    /// A login through the `method` auth method ended with `outcome`.
    pub fn login_finished(&self, method: &'static str, outcome: &'static str) {
        if let Ok(mut counts) = self.logins.lock() {
            *counts.entry((method, outcome)).or_insert(0) += 1;
        }
    }

    /// A wrapping token was presented again after its answer had been unwrapped.
    pub fn wrapping_token_reused(&self) {
        self.wrapping_reuse.fetch_add(1, Ordering::Relaxed);
    }

    /// The controller hit (and survived) a broken invariant of `kind`.
    pub fn internal_error(&self, kind: &'static str) {
        let mut counts = self
            .internal_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(kind).or_insert(0) += 1;
    }

    /// One account's rotation attempt ended with `outcome` after `elapsed`.
    pub fn rotation_finished(&self, outcome: RotationOutcome, elapsed: Duration) {
        if let Ok(mut counts) = self.rotations.lock() {
            *counts.entry(outcome).or_insert(0) += 1;
        }
        self.rotation_latency.observe(elapsed);
    }

    /// A verification login ran; `result` names what it proved.
    pub fn verification_finished(&self, kind: VerificationKind, result: &'static str) {
        if let Ok(mut counts) = self.verifications.lock() {
            *counts.entry((kind, result)).or_insert(0) += 1;
        }
    }

    /// The API answered `status` after `elapsed`.
    pub fn api_request(&self, status: u16, elapsed: Duration) {
        let slot = usize::from(status).min(STATUS_SLOTS - 1);
        if let Some(count) = self.api_requests.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.api_latency.observe(elapsed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let rotations = self
            .rotations
            .lock()
            .map(|counts| {
                counts
                    .iter()
                    .map(|(outcome, count)| (outcome.label(), *count))
                    .collect()
            })
            .unwrap_or_default();
        let verifications = self
            .verifications
            .lock()
            .map(|counts| {
                counts
                    .iter()
                    .map(|((kind, result), count)| (kind.label(), *result, *count))
                    .collect()
            })
            .unwrap_or_default();
        let api_requests = self
            .api_requests
            .iter()
            .enumerate()
            .filter_map(|(status, count)| {
                let count = count.load(Ordering::Relaxed);
                (count > 0).then(|| (u16::try_from(status).unwrap_or(0), count))
            })
            .collect();
        let internal_errors = self
            .internal_errors
            .lock()
            .map(|counts| counts.iter().map(|(kind, count)| (*kind, *count)).collect())
            .unwrap_or_default();
        let logins = self
            .logins
            .lock()
            .map(|counts| {
                counts
                    .iter()
                    .map(|((method, outcome), count)| (*method, *outcome, *count))
                    .collect()
            })
            .unwrap_or_default();
        Snapshot {
            logins,
            wrapping_reuse: self.wrapping_reuse.load(Ordering::Relaxed),
            internal_errors,
            rotations,
            rotation_latency: self.rotation_latency.snapshot(),
            verifications,
            api_requests,
            api_latency: self.api_latency.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_sum_in_seconds() {
        let histogram = Histogram::new(&[0.1, 1.0]);
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(100));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(3));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.1, 2), (1.0, 3)]);
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum_seconds - 3.65).abs() < 1e-9);
    }

    #[test]
    fn counters_by_label() {
        let registry = Registry::new();
        registry.rotation_finished(RotationOutcome::Committed, Duration::from_millis(30));
        registry.rotation_finished(RotationOutcome::Committed, Duration::from_millis(70));
        registry.rotation_finished(RotationOutcome::OutOfSync, Duration::from_secs(2));
        registry.verification_finished(VerificationKind::Pending, "neither");
        registry.api_request(200, Duration::from_micros(300));
        registry.api_request(404, Duration::from_micros(300));
        registry.api_request(200, Duration::from_micros(300));
        registry.login_finished("approle", "success");
        registry.login_finished("userpass", "invalid");
        registry.login_finished("approle", "success");
        let snapshot = registry.snapshot();
        assert_eq!(
            snapshot.logins,
            vec![("approle", "success", 2), ("userpass", "invalid", 1)]
        );
        assert_eq!(
            snapshot.rotations,
            vec![("committed", 2), ("out_of_sync", 1)]
        );
        assert_eq!(snapshot.rotation_latency.count, 3);
        assert_eq!(snapshot.rotation_latency.buckets[0], (0.05, 1));
        assert_eq!(snapshot.verifications, vec![("pending", "neither", 1)]);
        assert_eq!(snapshot.api_requests, vec![(200, 2), (404, 1)]);
        assert_eq!(snapshot.api_latency.buckets[0], (0.0005, 3));
    }
}
