//! Jobs of the database secrets engine, as they travel from controller to agent: check a
//! connection, create a role from its creation statements, ask whether a role exists, revoke
//! (drop) a role, renew its `VALID UNTIL`, change a role's password.
//!
//! Owns only the shapes. What the controller decides from an outcome lives in the engine;
//! how the agent performs a job lives in the agent's `handlers/database.rs` and `exec`.
//! Statements travel as templates (`{{name}}`, `{{password}}`, `{{expiration}}`) with the
//! values beside them, so a password is always a [`Password`] on the wire and the agent can
//! quote a failed statement without it.

use serde::{Deserialize, Serialize};

use crate::secret::Password;

/// How the agent protects its connection to the database (`sslmode` in the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS, without checking the server's certificate (libpq's `require`).
    Require,
    /// TLS when the server offers it, else plain (libpq's default `prefer`).
    Prefer,
    /// TLS, the certificate checked against `ca_pem` (or the webpki roots) and the host name.
    VerifyFull,
}

/// How `{{password}}` is put into statements (the config's `password_authentication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PasswordAuthentication {
    /// The password itself: the server hashes it.
    Password,
    /// A SCRAM-SHA-256 verifier the agent computes: the plaintext never reaches the server.
    ScramSha256,
}

/// One database, as every job needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseTarget {
    /// The operator's name for the connection (`database/config/NAME`), used in every
    /// message and as the key of the agent's connection pool.
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The database to connect to (the URL's path).
    pub database: String,
    /// The user Rotor connects as (the config's `username`).
    pub username: String,
    /// That user's password, zeroized by the agent after use.
    pub password: Password,
    pub ssl_mode: SslMode,
    pub password_authentication: PasswordAuthentication,
    /// PEM certificates to trust for `VerifyFull`; none means the webpki roots.
    pub ca_pem: Option<String>,
    pub connect_timeout_ms: u64,
    /// Every statement is bounded by this, on the agent and on the server.
    pub statement_timeout_ms: u64,
    /// Most connections the agent keeps open to this database at once.
    pub max_open_connections: u32,
    /// Most idle connections the agent keeps.
    pub max_idle_connections: u32,
    /// A pooled connection older than this is closed instead of reused; 0 = no limit.
    pub max_connection_lifetime_secs: u64,
}

/// A role's name and the values its statements are rendered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleValues {
    /// `{{name}}` (and `{{username}}`): the role, within PostgreSQL's 63 bytes.
    pub name: String,
    /// `{{password}}`: rendered as the target's `password_authentication` says.
    pub password: Option<Password>,
    /// `{{expiration}}`: `YYYY-MM-DD HH:MM:SS+0000`, the lease's expiry (the `VALID UNTIL`
    /// backstop).
    pub expiration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DbJob {
    /// Variant 0: connect, authenticate and run `SELECT version()`.
    Verify { target: DatabaseTarget },
    /// Variant 1: run the creation statements in one transaction (serialised per database on
    /// the agent: concurrent GRANTs fail in PostgreSQL). A failure before COMMIT is certain
    /// that nothing was created.
    CreateRole {
        target: DatabaseTarget,
        role: RoleValues,
        statements: Vec<String>,
    },
    /// Variant 2: whether `name` is in `pg_roles` (recovery after an unknown outcome).
    RoleExists {
        target: DatabaseTarget,
        name: String,
    },
    /// Variant 3: end the role: with `terminate_sessions`, `NOLOGIN` then terminate its
    /// sessions by the pids found before the drop; then `statements`, or with none the
    /// default revocation (grants on tables, sequences and functions in every schema, the
    /// schemas and the database, `REASSIGN OWNED`, `DROP OWNED`, `DROP ROLE`). A role that
    /// does not exist is revoked already.
    RevokeRole {
        target: DatabaseTarget,
        name: String,
        statements: Vec<String>,
        terminate_sessions: bool,
    },
    /// Variant 4: run the renew statements (default `ALTER ROLE ... VALID UNTIL`).
    RenewRole {
        target: DatabaseTarget,
        role: RoleValues,
        statements: Vec<String>,
    },
    /// Variant 5: change a role's password (static roles, the root credential); the default
    /// statement is `ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}'`.
    SetPassword {
        target: DatabaseTarget,
        role: RoleValues,
        statements: Vec<String>,
    },
    /// Variant 6: run creation statements for a throwaway name in a transaction that is
    /// always rolled back: checks a role's statements against the database when it is
    /// written, leaving nothing behind.
    RehearseCreation {
        target: DatabaseTarget,
        role: RoleValues,
        statements: Vec<String>,
    },
}

impl DbJob {
    /// Whether the job changes something on the database (a role, its password or expiry).
    pub fn changes_a_credential(&self) -> bool {
        matches!(
            self,
            DbJob::CreateRole { .. }
                | DbJob::RevokeRole { .. }
                | DbJob::RenewRole { .. }
                | DbJob::SetPassword { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DbOutcome {
    /// Variant 0: answer to `Verify`.
    Verified { server_version: String },
    /// Variant 1: the creation statements committed.
    Created,
    /// Variant 2: answer to `RoleExists`.
    RoleExists { exists: bool },
    /// Variant 3: the role is gone; `existed` false when there was nothing to drop.
    Revoked {
        existed: bool,
        /// Sessions of the role that were terminated.
        sessions_terminated: u32,
    },
    /// Variant 4: the renew statements committed.
    Renewed,
    /// Variant 5: the password statements committed.
    PasswordSet,
    /// Variant 6: the creation statements ran and were rolled back.
    CreationRehearsed,
}
