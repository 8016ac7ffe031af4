//! The OS secrets engine (mount type `os`): hosts, accounts, password versions, and rotation
//! through agents that never loses a password.
//!
//! - `model.rs`: records and store operations named for intent; commits need a proof.
//! - `rotation.rs`: the pure decisions of the rotation protocol.
//! - `driver.rs`: jobs through the dispatcher, per-host serialisation, verification, recovery.
//! - `paths.rs`: the HTTP surface.
//! - `password.rs`: which password policy an account uses (account > host > config > default).
//! - `site.rs`: which site a host written without one belongs to.
//! - `heartbeat.rs`: `verify_period` and the last verification's result, per account.
//! - `waves.rs` (plans: selection, canary and waves, the stop rule) and `rollout.rs` (running
//!   them through the driver, the run record, `os/rotate` and `os/rotations/:id`).
//!
//! Never touches QUIC: jobs go through `dispatch::Dispatcher::submit`.

pub mod driver;
pub mod due_index;
pub mod heartbeat;
pub mod model;
pub mod password;
pub mod paths;
pub mod rollout;
pub mod rotation;
pub mod site;
pub mod waves;

pub use driver::{HostClaim, OsEngine};

use std::time::Duration;

/// Resolves candidates left pending (after a controller restart, or verifications that could
/// not run yet), every `interval`, for every mount of type `os`.
pub async fn recovery_loop(
    engine: OsEngine,
    store: std::sync::Arc<crate::store::Store>,
    interval: Duration,
) {
    loop {
        let mounts = match super::mounts::list(&store) {
            Ok(mounts) => mounts,
            Err(error) => {
                tracing::error!(%error, "cannot list mounts for recovery");
                Vec::new()
            }
        };
        for mount in mounts.into_iter().filter(|mount| mount.kind == "os") {
            match engine.recover_pending(&mount.path).await {
                Ok(0) => {}
                Ok(resolved) => {
                    tracing::info!(mount = %mount.path, resolved, "resolved pending rotations")
                }
                Err(error) => {
                    tracing::warn!(mount = %mount.path, %error, "recovery pass failed; will retry")
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
