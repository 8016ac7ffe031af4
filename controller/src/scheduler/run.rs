//! The scheduler loop: every tick, scan the `os` mounts, ask [`super::due`] about each
//! account, and hand due accounts to the OS engine grouped by host (so children of one
//! parent still rotate in one job), with a bound on hosts in flight.
//!
//! Owns timing and fan-out only; decisions are `due`'s, rotations the engine's.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Due;
use crate::engines::os::{OsEngine, model};
use crate::store::Store;
use crate::tokens::now_unix;

/// Hosts rotating at once from the schedule.
const MAX_HOSTS_IN_FLIGHT: usize = 32;

pub async fn run(engine: OsEngine, store: Arc<Store>, tick: Duration) {
    let permits = Arc::new(Semaphore::new(MAX_HOSTS_IN_FLIGHT));
    // Hosts with a scheduled rotation running; a std mutex held only to insert/remove.
    let busy: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    loop {
        if let Err(error) = pass(&engine, &store, &permits, &busy).await {
            tracing::error!(%error, "scheduler pass failed; will retry");
        }
        if let Err(error) = super::verify::pass(&engine, &store, &permits, &busy).await {
            tracing::error!(%error, "heartbeat verification pass failed; will retry");
        }
        tokio::time::sleep(tick).await;
    }
}

async fn pass(
    engine: &OsEngine,
    store: &Arc<Store>,
    permits: &Arc<Semaphore>,
    busy: &Arc<Mutex<HashSet<String>>>,
) -> Result<(), crate::store::StoreError> {
    let now = now_unix();
    for mount in crate::engines::mounts::list(store)?
        .into_iter()
        .filter(|m| m.kind == "os")
    {
        let mut due_by_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Lazy accounts rotate when read (paths.rs), never from the schedule.
        for account in model::all_accounts(store, &mount.path)?
            .into_iter()
            .filter(|a| !a.lazy_rotation)
        {
            match super::due(&account, now) {
                Due::Now { .. } => due_by_host
                    .entry(account.host.clone())
                    .or_default()
                    .push(account.name.clone()),
                Due::MissedWindow { scheduled } => {
                    let detail = format!(
                        "missed the scheduled rotation of {} (window passed); waiting for the next occurrence",
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_secs(scheduled)
                        )
                    );
                    tracing::warn!(mount = %mount.path, host = %account.host, account = %account.name, "{detail}");
                    model::set_schedule_anchor(
                        store,
                        &mount.path,
                        &account.host,
                        &account.name,
                        now,
                        Some(&detail),
                    )?;
                }
                Due::NotDue { .. } => {}
            }
        }
        for (host, accounts) in due_by_host {
            let key = format!("{}{host}", mount.path);
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
                tracing::info!(mount = %mount_path, %host, accounts = accounts.len(), "scheduled rotation");
                if let Err(error) = engine
                    .rotate_accounts(&mount_path, &host, Some(&accounts))
                    .await
                {
                    tracing::warn!(mount = %mount_path, %host, %error, "scheduled rotation failed");
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
