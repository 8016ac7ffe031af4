//! The database engine's records (connections and roles) and their store operations.
//!
//! Owns record layouts, keys (`<mount>/<name>` in `database_connections` and
//! `database_roles`) and which fields are sealed: a connection's password is sealed with its
//! row as associated data and is never part of what a read answers. Must not reach agents.

use base64::Engine as _;
use rotor_common::secret::Password;
use rotor_common::wire::database::{DatabaseTarget, PasswordAuthentication, SslMode};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, StoreResult, Table};

/// `database/config/:name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub name: String,
    pub plugin_name: String,
    /// With `{{username}}`/`{{password}}` placeholders only (literal ones were taken out).
    pub connection_url: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub ssl_mode: SslMode,
    pub connect_timeout_secs: u64,
    pub username: String,
    /// The password, sealed (base64); never answered.
    pub password_sealed: Option<String>,
    pub allowed_roles: Vec<String>,
    pub verify_connection: bool,
    pub root_rotation_statements: Vec<String>,
    pub password_policy: Option<String>,
    pub username_template: Option<String>,
    pub max_open_connections: u32,
    pub max_idle_connections: u32,
    pub max_connection_lifetime_secs: u64,
    pub password_authentication: PasswordAuthentication,
    /// PEM CA for `sslmode=verify-full`.
    pub tls_ca: Option<String>,
    /// Which agents reach this database.
    pub site: String,
}

/// `database/roles/:name`: how dynamic credentials are made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRecord {
    pub name: String,
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub rollback_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
    /// Revocation ends the role's open sessions first (`pg_terminate_backend`).
    pub revoke_terminates_sessions: bool,
}

pub fn key(mount: &str, name: &str) -> String {
    format!("{}/{name}", mount.trim_end_matches('/'))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn password_location(mount: &str, name: &str) -> String {
    format!("database_connections/{}/password", key(mount, name))
}

/// Seals `password` for the connection `name` of `mount`.
pub fn seal_password(
    store: &Store,
    mount: &str,
    name: &str,
    password: &Password,
) -> StoreResult<String> {
    let sealed = store.seal(
        &password_location(mount, name),
        password.expose().as_bytes(),
    )?;
    Ok(b64().encode(sealed))
}

/// The connection's password, unsealed.
pub fn open_password(
    store: &Store,
    mount: &str,
    record: &ConnectionRecord,
) -> StoreResult<Password> {
    let Some(sealed) = &record.password_sealed else {
        return Ok(Password::default());
    };
    let location = password_location(mount, &record.name);
    let bytes = b64().decode(sealed).map_err(|_| StoreError::Corrupt {
        table: Table::DatabaseConnections.name(),
        key: key(mount, &record.name),
        detail: "sealed password is not base64".into(),
    })?;
    let plain = store.unseal(&location, &bytes)?;
    let text = String::from_utf8(plain.to_vec()).map_err(|_| StoreError::Corrupt {
        table: Table::DatabaseConnections.name(),
        key: key(mount, &record.name),
        detail: "sealed password is not UTF-8".into(),
    })?;
    Ok(Password::new(text))
}

pub fn get_connection(
    store: &Store,
    mount: &str,
    name: &str,
) -> StoreResult<Option<ConnectionRecord>> {
    store.get(Table::DatabaseConnections, &key(mount, name))
}

pub fn list_connections(store: &Store, mount: &str) -> StoreResult<Vec<String>> {
    let prefix = format!("{}/", mount.trim_end_matches('/'));
    Ok(store
        .scan::<ConnectionRecord>(Table::DatabaseConnections, &prefix)?
        .into_iter()
        .map(|(_, record)| record.name)
        .collect())
}

pub fn get_role(store: &Store, mount: &str, name: &str) -> StoreResult<Option<RoleRecord>> {
    store.get(Table::DatabaseRoles, &key(mount, name))
}

pub fn list_roles(store: &Store, mount: &str) -> StoreResult<Vec<String>> {
    let prefix = format!("{}/", mount.trim_end_matches('/'));
    Ok(store
        .scan::<RoleRecord>(Table::DatabaseRoles, &prefix)?
        .into_iter()
        .map(|(_, record)| record.name)
        .collect())
}

/// The target an agent job needs for `record`.
pub fn target(
    store: &Store,
    mount: &str,
    record: &ConnectionRecord,
) -> StoreResult<DatabaseTarget> {
    Ok(DatabaseTarget {
        name: format!("{mount}config/{}", record.name),
        host: record.host.clone(),
        port: record.port,
        database: record.database.clone(),
        username: record.username.clone(),
        password: open_password(store, mount, record)?,
        ssl_mode: record.ssl_mode,
        password_authentication: record.password_authentication,
        ca_pem: record.tls_ca.clone(),
        connect_timeout_ms: record.connect_timeout_secs.max(1) * 1000,
        statement_timeout_ms: 10_000,
        max_open_connections: record.max_open_connections.max(1),
        max_idle_connections: record.max_idle_connections,
        max_connection_lifetime_secs: record.max_connection_lifetime_secs,
    })
}
