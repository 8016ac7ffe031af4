//! Secrets engines: the types that can be mounted, and where their path tables live.
//!
//! Owns the registry of engine types (`os`, `ssh`) and the mount table. Engines never touch
//! QUIC: they submit jobs to `dispatch` and read typed results.

pub mod mounts;
pub mod os;
pub mod ssh;

use crate::api::PathSpec;

/// Engine types `sys/mounts` accepts, with what each is for.
pub const KNOWN_TYPES: &[(&str, &str)] = &[
    ("os", "rotates passwords of Linux accounts through agents"),
    ("ssh", "one-time SSH passwords and SSH certificates"),
];

/// The path table of an engine type, or `None` for a type this build does not know.
pub fn paths(kind: &str) -> Option<&'static [PathSpec]> {
    match kind {
        "os" => Some(os::paths::paths()),
        "ssh" => Some(ssh::paths::paths()),
        _ => None,
    }
}
