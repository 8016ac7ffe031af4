//! Heartbeat verification: every tick, accounts whose last verification is older than their
//! `verify_period` are verified through the OS engine's `verify` (a login with the current
//! password), one account at a time per host (the driver's host lock) and within the
//! scheduler's bound on work in flight.
//!
//! Owns which accounts are due and the fan-out. Must not log in or judge a result itself:
//! the driver's `verify_current_as` does both (marks `out_of_sync`, reconciles when asked,
//! counts `rotor_verifications_total{kind="scheduled"}`, records the result).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::engines::os::{OsEngine, heartbeat, model};
use crate::metrics::VerificationKind;
use crate::store::{Store, StoreError};
use crate::tokens::now_unix;

/// Starts the verifications due now; each one claims `verify:<mount><host>/<account>` in
/// `busy` so a slow one is not started twice.
pub async fn pass(
    engine: &OsEngine,
    store: &Arc<Store>,
    permits: &Arc<Semaphore>,
    busy: &Arc<Mutex<HashSet<String>>>,
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
            let key = format!("verify:{}{host}/{account}", mount.path);
            let claimed = busy
                .lock()
                .map(|mut set| set.insert(key.clone()))
                .unwrap_or(false);
            if !claimed {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return Ok(());
            };
            let engine = engine.clone();
            let busy = busy.clone();
            let mount_path = mount.path.clone();
            tokio::spawn(async move {
                match engine
                    .verify_current_as(&mount_path, &host, &account, VerificationKind::Scheduled)
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
                if let Ok(mut set) = busy.lock() {
                    set.remove(&key);
                }
                drop(permit);
            });
        }
    }
    Ok(())
}
