//! The store's tables and its schema version, with forward migrations.
//!
//! Owns the list of tables and the upgrade path between schema versions. A store written by
//! a newer Rotor is refused rather than misread. Must not know record layouts.

use super::{Store, StoreError, StoreResult};

/// Every table the store has. Names are part of the on-disk format: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// schema_version, the controller's CA (sealed key), other singletons.
    Meta,
    /// Registered agents, keyed by agent id.
    Agents,
    /// One-time enrollment tokens, keyed by the SHA-256 of the token.
    EnrollmentTokens,
    /// API tokens, keyed by the SHA-256 of the token.
    Tokens,
    /// Mounted secrets engines, keyed by path with a trailing slash.
    Mounts,
    /// Hosts of the os engine, keyed by `<mount>/<host>`.
    Hosts,
    /// Accounts of the os engine, keyed by `<mount>/<host>/<account>`.
    Accounts,
    /// Password versions, keyed by `<mount>/<host>/<account>/<version:010>`.
    Versions,
    /// Results agents reported from their journals after a reconnect, keyed by job id
    /// (`dispatch/evidence.rs`).
    Jobs,
    /// Roles of the ssh engine (OTP and CA), keyed by `<mount>/<role>`.
    SshRoles,
    /// Token accessors, keyed by accessor; the value is the token's store key (its hash).
    TokenAccessors,
    /// Parent/child links between tokens, keyed by `<parent accessor>/<child accessor>`.
    TokenChildren,
    /// ACL policies (HCL text), keyed by policy name.
    Policies,
    /// Leases on issued secrets, keyed by lease id (`<path>/<random>`).
    Leases,
    /// Which token owns which lease, keyed by `<token accessor>/<lease id>`.
    LeaseOwners,
    /// Enabled audit devices, keyed by path with a trailing slash; HMAC keys sealed.
    AuditDevices,
    /// Issued SSH OTPs, keyed by the SHA-256 of the OTP (never the OTP itself).
    SshOtps,
    /// Which agent serves a host address for OTPs, keyed by `<mount><ip>`.
    SshOtpBindings,
    /// The os engine's accounts by when they are next due, keyed by
    /// `<due unix seconds:020>/<account key>` (`engines/os/due_index.rs`).
    AccountsDue,
    /// Enabled auth methods other than the built-in token store, keyed by path inside
    /// `auth/` with a trailing slash (`approle/`).
    AuthMounts,
    /// Records of auth methods (AppRole roles, role-id index, secret-id hashes and their
    /// accessors, userpass users), keyed by `<auth mount path><kind>/<...>` so a mount's
    /// records are one prefix (`auth/mod.rs` documents the layout).
    AuthRecords,
    /// Response-wrapped answers, keyed by the SHA-256 of the wrapping token; the answer is
    /// sealed (`api/wrapping.rs`).
    WrappedResponses,
    /// Connections of the database engine (`database/config/:name`), keyed by
    /// `<mount>/<name>`; the password sealed.
    DatabaseConnections,
    /// Roles of the database engine (`database/roles/:name`), keyed by `<mount>/<name>`.
    DatabaseRoles,
}

impl Table {
    pub const ALL: [Table; 24] = [
        Table::Meta,
        Table::Agents,
        Table::EnrollmentTokens,
        Table::Tokens,
        Table::Mounts,
        Table::Hosts,
        Table::Accounts,
        Table::Versions,
        Table::Jobs,
        Table::SshRoles,
        Table::TokenAccessors,
        Table::TokenChildren,
        Table::Policies,
        Table::Leases,
        Table::LeaseOwners,
        Table::AuditDevices,
        Table::SshOtps,
        Table::SshOtpBindings,
        Table::AccountsDue,
        Table::AuthMounts,
        Table::AuthRecords,
        Table::WrappedResponses,
        Table::DatabaseConnections,
        Table::DatabaseRoles,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Agents => "agents",
            Table::EnrollmentTokens => "enrollment_tokens",
            Table::Tokens => "tokens",
            Table::Mounts => "mounts",
            Table::Hosts => "hosts",
            Table::Accounts => "accounts",
            Table::Versions => "versions",
            Table::Jobs => "jobs",
            Table::SshRoles => "ssh_roles",
            Table::TokenAccessors => "token_accessors",
            Table::TokenChildren => "token_children",
            Table::Policies => "policies",
            Table::Leases => "leases",
            Table::LeaseOwners => "lease_owners",
            Table::AuditDevices => "audit_devices",
            Table::SshOtps => "ssh_otps",
            Table::SshOtpBindings => "ssh_otp_bindings",
            Table::AccountsDue => "accounts_due",
            Table::AuthMounts => "auth_mounts",
            Table::AuthRecords => "auth_records",
            Table::WrappedResponses => "wrapped_responses",
            Table::DatabaseConnections => "database_connections",
            Table::DatabaseRoles => "database_roles",
        }
    }
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 7;
const SCHEMA_VERSION_KEY: &str = "schema_version";

/// Brings the store to [`SCHEMA_VERSION`], one step at a time, each step in its own
/// transaction together with the version bump.
pub(super) fn migrate(store: &Store) -> StoreResult<()> {
    let found: u32 = store
        .read(|tx| tx.get(Table::Meta, SCHEMA_VERSION_KEY))?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for version in found..SCHEMA_VERSION {
        store.write(|tx| {
            match version {
                // 0 → 1: create every table so readers never meet a missing one.
                0 => {
                    for table in Table::ALL {
                        tx.scan::<serde_json::Value>(table, "\u{10ffff}")?;
                    }
                }
                // 1 → 2: the ssh engine's roles table.
                1 => {
                    tx.scan::<serde_json::Value>(Table::SshRoles, "\u{10ffff}")?;
                }
                // 2 → 3: tokens' accessors and children, policies, leases, audit devices.
                2 => {
                    for table in [
                        Table::TokenAccessors,
                        Table::TokenChildren,
                        Table::Policies,
                        Table::Leases,
                        Table::LeaseOwners,
                        Table::AuditDevices,
                    ] {
                        tx.scan::<serde_json::Value>(table, "\u{10ffff}")?;
                    }
                }
                // 3 → 4: the ssh engine's OTPs and address bindings.
                3 => {
                    for table in [Table::SshOtps, Table::SshOtpBindings] {
                        tx.scan::<serde_json::Value>(table, "\u{10ffff}")?;
                    }
                }
                // 4 → 5: the os engine's due-time index (filled by the engine at start).
                4 => {
                    tx.scan::<serde_json::Value>(Table::AccountsDue, "\u{10ffff}")?;
                }
                // 5 → 6: auth methods (mounts, their records) and response wrapping.
                5 => {
                    for table in [
                        Table::AuthMounts,
                        Table::AuthRecords,
                        Table::WrappedResponses,
                    ] {
                        tx.scan::<serde_json::Value>(table, "\u{10ffff}")?;
                    }
                }
                // 6 → 7: the database engine's connections and roles.
                6 => {
                    for table in [Table::DatabaseConnections, Table::DatabaseRoles] {
                        tx.scan::<serde_json::Value>(table, "\u{10ffff}")?;
                    }
                }
                _ => unreachable!("every version below SCHEMA_VERSION has a step"),
            }
            tx.put(Table::Meta, SCHEMA_VERSION_KEY, &(version + 1))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let key = dir.path().join("k");
        let store = Store::open(&path, Sealer::create_key_file(&key).expect("key")).expect("open");
        store
            .write(|tx| tx.put(Table::Meta, SCHEMA_VERSION_KEY, &(SCHEMA_VERSION + 1)))
            .expect("write");
        drop(store);
        let error = Store::open(&path, Sealer::load(&key).expect("load"))
            .err()
            .expect("refused");
        assert!(error.to_string().contains("newer Rotor"), "{error}");
    }
}
