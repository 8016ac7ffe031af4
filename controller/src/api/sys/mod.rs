//! The built-in `sys/` backend: health, mounts, auth methods, policies (ACL and password),
//! capabilities, leases, audit devices, response wrapping and metrics, one file per group,
//! gathered into one path table here.
//!
//! Owns gathering the table; each entry (in its group's file) says which operations are
//! root-protected (also need `sudo`, as Vault's) and carries the existence check that tells
//! `create` from `update`. Must not hold engine logic.

mod audit;
mod auth;
mod capabilities;
mod leases;
mod metrics;
mod mounts;
mod password_policies;
mod policies;
mod wrapping;

use std::sync::LazyLock;

use super::paths::PathSpec;

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    let mut table = mounts::specs();
    table.extend(policies::specs());
    table.extend(password_policies::specs());
    table.extend(metrics::specs());
    table.extend(capabilities::specs());
    table.extend(leases::specs());
    table.extend(audit::specs());
    table.extend(auth::specs());
    table.extend(wrapping::specs());
    table
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}
