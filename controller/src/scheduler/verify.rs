//! Heartbeat verification: every tick, accounts whose last verification is older than their
//! `verify_period` are verified through the OS engine's `verify` (a login with the current
//! password), one account at a time per host (the driver's host lock) and within the
//! scheduler's bound on work in flight.
//!
//! Owns which accounts are due and the fan-out. Must not log in or judge a result itself:
//! the driver's `verify_current_as` does both (marks `out_of_sync`, reconciles when asked,
//! counts `rotor_verifications_total{kind="scheduled"}`, records the result).

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::engines::os::{OsEngine, heartbeat, model};
use crate::metrics::VerificationKind;
use crate::store::{Store, StoreError};
use crate::tokens::now_unix;

/// Starts the verifications due now; each claims its host from the driver (the one owner of
/// one job per host), so a slow one is not started twice and never overlaps a rotation.
pub async fn pass(
    engine: &OsEngine,
    store: &Arc<Store>,
    permits: &Arc<Semaphore>,
) -> Result<(), StoreError> {
    let now = now_unix();
    for mount in crate::engines::mounts::list(store)?
        .into_iter()
        .filter(|m| m.kind == "os")
    {
        for (host, account, record) in heartbeat::all(store, &mount.path)? {
            if !record.due(now) {
                continue;
            }
            // A rotation in flight is verified by the driver itself; a vanished account is
            // skipped (its record goes with it).
            match model::get_account(store, &mount.path, &host, &account)? {
                Some(current) if current.pending.is_none() => {}
                _ => continue,
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return Ok(());
            };
            let Some(claim) = engine.try_claim_host(&mount.path, &host) else {
                continue;
            };
            let engine = engine.clone();
            let mount_path = mount.path.clone();
            tokio::spawn(async move {
                match engine
                    .verify_current_claimed(
                        claim,
                        &mount_path,
                        &host,
                        &account,
                        VerificationKind::Scheduled,
                    )
                    .await
                {
                    Ok(true) => {
                        tracing::debug!(mount = %mount_path, %host, %account, "heartbeat: the known password logs in")
                    }
                    Ok(false) => {
                        tracing::warn!(mount = %mount_path, %host, %account, "heartbeat: the known password no longer logs in; marked out_of_sync")
                    }
                    Err(error) => {
                        tracing::warn!(mount = %mount_path, %host, %account, error = %error.message, "heartbeat verification could not run; next period tries again")
                    }
                }
                drop(permit);
            });
        }
    }
    Ok(())
}
