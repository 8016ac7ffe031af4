//! The built-in `sys/` backend: health, mounts, policies (ACL and password), capabilities,
//! leases, audit devices and metrics, one file per group, gathered into one path table here.
//!
//! Owns the table, the root-protected paths (which also need `sudo`, as Vault's) and the
//! existence checks that tell `create` from `update`. Must not hold engine logic.

mod audit;
mod capabilities;
mod leases;
mod metrics;
mod mounts;
mod password_policies;
mod policies;

use std::sync::LazyLock;

use super::ExistenceCheck;
use super::paths::PathSpec;

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    let mut table = mounts::specs();
    table.extend(policies::specs());
    table.extend(password_policies::specs());
    table.extend(metrics::specs());
    table.extend(capabilities::specs());
    table.extend(leases::specs());
    table.extend(audit::specs());
    table
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

/// Paths of `sys/` that also need `sudo` (Vault's root-protected paths).
pub const ROOT_PATHS: &[&str] = &[
    "audit",
    "audit/*",
    "leases/revoke-prefix/*",
    "leases/revoke-force/*",
    "leases/lookup/*",
];

/// Existence checks by pattern: a write to an existing resource needs `update`, to a new one
/// `create`. Paths without one need `update`, as in Vault.
pub const EXISTENCE_CHECKS: &[(&str, ExistenceCheck)] = &[
    ("policies/acl/{name}", policies::policy_exists),
    ("policy/{name}", policies::policy_exists),
    ("policies/password/{name}", password_policies::exists),
];
