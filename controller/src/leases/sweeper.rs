//! The expiry sweeper: a background task that revokes leases when they expire and retries
//! failed revocations when their backoff ends.
//!
//! Owns only the timing loop; what is due and how it is revoked is the manager's. Must not
//! hold a lock across a revocation.

use std::time::Duration;

use super::LeaseManager;
use crate::tokens::now_unix;

/// Runs forever: sweeps every `interval`, and at once when the manager is woken (a token's
/// revocation made its leases due).
pub async fn run(leases: LeaseManager, interval: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = leases.woken() => {}
        }
        let (revoked, failed) = leases.sweep(now_unix()).await;
        if revoked + failed > 0 {
            tracing::info!(revoked, failed, "lease sweep");
        }
    }
}
