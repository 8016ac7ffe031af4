//! Secrets engines: the types that can be mounted, and where their path tables live.
//!
//! Owns the registry of engine types (`os`, `ssh`, `database`) and the mount table. Engines never touch
//! QUIC: they submit jobs to `dispatch` and read typed results.

pub mod database;
pub mod mounts;
pub mod os;
pub mod ssh;

use crate::api::PathSpec;

/// Engine types `sys/mounts` accepts, with what each is for.
pub const KNOWN_TYPES: &[(&str, &str)] = &[
    ("os", "rotates passwords of Linux accounts through agents"),
    ("ssh", "one-time SSH passwords and SSH certificates"),
    (
        "database",
        "dynamic PostgreSQL credentials under leases, through agents",
    ),
];

/// Other names of engine types, as Vault's documents spell them: the OS engine is a plugin
/// there (`vault secrets enable -path=os vault-plugin-secrets-os`). Mounts record the type.
pub const TYPE_ALIASES: &[(&str, &str)] = &[("vault-plugin-secrets-os", "os")];

/// The type `kind` names: itself, or the type it is an alias of.
pub fn canonical_type(kind: &str) -> &str {
    TYPE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == kind)
        .map_or(kind, |(_, canonical)| canonical)
}

/// The path table of an engine type, or `None` for a type this build does not know.
pub fn paths(kind: &str) -> Option<&'static [PathSpec]> {
    match kind {
        "os" => Some(os::paths::paths()),
        "ssh" => Some(ssh::paths::paths()),
        "database" => Some(database::paths::paths()),
        _ => None,
    }
}
