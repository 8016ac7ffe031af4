//! The OS engine's records and the store operations named for what they mean:
//! `record_pending_candidates`, `commit_confirmed`, `drop_pending`, `mark_out_of_sync`,
//! `reset_password`, `restore_version`.
//!
//! Owns record layouts, keys and which fields are sealed. Every operation that changes a
//! password's state is one store transaction. A version is committed only with a
//! [`PasswordConfirmed`] proof. Must not talk to agents.

use base64::Engine;
use rotor_common::secret::Password;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::store::{Store, StoreError, StoreResult, Table, WriteTx};
use crate::tokens::now_unix;

/// Engine-wide settings, one per mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OsConfig {
    pub ssh_host_key_trust_on_first_use: bool,
    pub connect_timeout_secs: u64,
    pub step_timeout_secs: u64,
    /// How long a rotation job may run on the agent before its outcome counts as unknown.
    pub rotation_deadline_secs: u64,
    pub password_length: usize,
    /// The password policy of the mount's accounts unless their host or they name another.
    #[serde(default)]
    pub password_policy: Option<String>,
    /// The site of hosts written without one (see `site.rs` for the rule without it).
    #[serde(default)]
    pub default_site: Option<String>,
}

impl Default for OsConfig {
    fn default() -> Self {
        Self {
            ssh_host_key_trust_on_first_use: false,
            connect_timeout_secs: 10,
            step_timeout_secs: 30,
            rotation_deadline_secs: 120,
            password_length: 24,
            password_policy: None,
            default_site: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Ssh,
    Local,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// Pinned by the operator.
    pub ssh_host_key: Option<String>,
    /// Recorded at first contact under trust on first use.
    pub trusted_host_key: Option<String>,
    pub site: Option<String>,
    pub connection: Connection,
    /// For `connection=local`: the agent installed on the host.
    pub agent: Option<String>,
    /// What the parent runs under sudo (default `/usr/sbin/chpasswd`).
    pub chpasswd_command: String,
    /// Per-host `passwd` prompt overrides (JSON of the agent's prompt set).
    pub passwd_prompts_json: Option<String>,
    pub created_unix: u64,
    /// The password policy of this host's accounts unless an account names its own.
    #[serde(default)]
    pub password_policy: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    InSync,
    Rotating,
    Verifying,
    OutOfSync,
}

impl AccountStatus {
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::InSync => "in_sync",
            AccountStatus::Rotating => "rotating",
            AccountStatus::Verifying => "verifying",
            AccountStatus::OutOfSync => "out_of_sync",
        }
    }
}

/// A candidate password written before its job is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub job_id: String,
    pub candidate_sealed: String,
    pub started_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRecord {
    pub host: String,
    pub name: String,
    pub username: String,
    pub parent_ref: Option<String>,
    pub verify_connection: bool,
    pub disable_automated_rotation: bool,
    pub rotation_period_secs: Option<u64>,
    pub rotation_schedule: Option<String>,
    pub rotation_window_secs: Option<u64>,
    /// Reconcile automatically (through the parent) when found out of sync.
    pub auto_reconcile: bool,
    pub current_version: u64,
    pub pending: Option<Pending>,
    pub status: AccountStatus,
    pub status_detail: Option<String>,
    pub last_vault_rotation_unix: Option<u64>,
    pub last_error: Option<String>,
    pub failed_attempts: u32,
    pub retry_after_unix: Option<u64>,
    pub created_unix: u64,
    /// Rotate on read once the period has passed (the AD engine's lazy rotation).
    #[serde(default)]
    pub lazy_rotation: bool,
    /// The scheduler's last decision time for `rotation_schedule` (started or missed), so a
    /// missed window moves on to the next occurrence.
    #[serde(default)]
    pub schedule_anchor_unix: Option<u64>,
    /// The password policy this account's candidates are drawn from (before its host's).
    #[serde(default)]
    pub password_policy: Option<String>,
}

impl AccountRecord {
    /// A new account `name` on `host` as the API creates it before applying the request's
    /// fields: login name = account name, in sync, version 0, no schedule, verified by login.
    pub fn new(host: &str, name: &str) -> Self {
        Self {
            host: host.to_string(),
            name: name.to_string(),
            username: name.to_string(),
            parent_ref: None,
            verify_connection: true,
            disable_automated_rotation: false,
            rotation_period_secs: None,
            rotation_schedule: None,
            rotation_window_secs: None,
            auto_reconcile: false,
            current_version: 0,
            pending: None,
            status: AccountStatus::InSync,
            status_detail: None,
            last_vault_rotation_unix: None,
            last_error: None,
            failed_attempts: 0,
            retry_after_unix: None,
            created_unix: now_unix(),
            lazy_rotation: false,
            schedule_anchor_unix: None,
            password_policy: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u64,
    pub password_sealed: String,
    pub created_unix: u64,
    pub expired_unix: Option<u64>,
}

/// Proof that the host has this password, made only by the change core (`crate::change`):
/// the host said Changed, its agent journaled that, or a login with it succeeded. Committing
/// requires one.
pub type PasswordConfirmed = crate::change::Confirmed<Password>;

pub fn config_key(mount: &str) -> String {
    format!("os-config:{mount}")
}
pub fn host_key(mount: &str, host: &str) -> String {
    format!("{mount}{host}")
}
pub fn account_key(mount: &str, host: &str, account: &str) -> String {
    format!("{mount}{host}/{account}")
}
pub fn accounts_prefix(mount: &str, host: &str) -> String {
    format!("{mount}{host}/")
}
pub fn version_key(mount: &str, host: &str, account: &str, version: u64) -> String {
    format!("{mount}{host}/{account}/{version:010}")
}
pub fn versions_prefix(mount: &str, host: &str, account: &str) -> String {
    format!("{mount}{host}/{account}/")
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

pub fn read_config(store: &Store, mount: &str) -> StoreResult<OsConfig> {
    Ok(store
        .get(Table::Meta, &config_key(mount))?
        .unwrap_or_default())
}

pub fn write_config(store: &Store, mount: &str, config: &OsConfig) -> StoreResult<()> {
    store.write(|tx| tx.put(Table::Meta, &config_key(mount), config))
}

pub fn get_host(store: &Store, mount: &str, host: &str) -> StoreResult<Option<HostRecord>> {
    store.get(Table::Hosts, &host_key(mount, host))
}

pub fn get_account(
    store: &Store,
    mount: &str,
    host: &str,
    account: &str,
) -> StoreResult<Option<AccountRecord>> {
    store.get(Table::Accounts, &account_key(mount, host, account))
}

pub fn list_accounts(store: &Store, mount: &str, host: &str) -> StoreResult<Vec<AccountRecord>> {
    Ok(store
        .scan::<AccountRecord>(Table::Accounts, &accounts_prefix(mount, host))?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// Every account of a mount that has a candidate outstanding (for recovery at start).
pub fn accounts_with_pending(store: &Store, mount: &str) -> StoreResult<Vec<AccountRecord>> {
    let mut pending = Vec::new();
    for_each_account(store, mount, |record| {
        if record.pending.is_some() {
            pending.push(record);
        }
        Ok(())
    })?;
    Ok(pending)
}

/// Calls `visit` on every account of `mount`, one decoded record at a time (the scheduler's
/// and recovery's scans must not hold a whole fleet in memory), off the tokio worker (a
/// million records take seconds, which must not stall the API's requests).
pub fn for_each_account(
    store: &Store,
    mount: &str,
    mut visit: impl FnMut(AccountRecord) -> StoreResult<()>,
) -> StoreResult<()> {
    crate::store::off_worker(|| {
        store.read(|tx| {
            tx.for_each::<AccountRecord>(Table::Accounts, mount, |_, record| visit(record))
        })
    })
}

fn version_location(key: &str) -> String {
    format!("versions/{key}")
}

fn pending_location(account_key: &str, job_id: &str) -> String {
    format!("pending/{account_key}/{job_id}")
}

/// The password of the account's current version.
pub fn current_password(
    store: &Store,
    mount: &str,
    account: &AccountRecord,
) -> StoreResult<Password> {
    current_version(store, mount, account).map(|(_, password)| password)
}

/// The account's current version record and its password, from one read.
pub fn current_version(
    store: &Store,
    mount: &str,
    account: &AccountRecord,
) -> StoreResult<(VersionRecord, Password)> {
    read_version(store, mount, account, account.current_version)?.ok_or_else(|| {
        StoreError::Corrupt {
            table: "versions",
            key: version_key(mount, &account.host, &account.name, account.current_version),
            detail: "the current version is missing".into(),
        }
    })
}

pub fn version_password(
    store: &Store,
    mount: &str,
    account: &AccountRecord,
    version: u64,
) -> StoreResult<Option<Password>> {
    Ok(read_version(store, mount, account, version)?.map(|(_, password)| password))
}

/// Version `number` of the account and its password, if it is kept.
fn read_version(
    store: &Store,
    mount: &str,
    account: &AccountRecord,
    number: u64,
) -> StoreResult<Option<(VersionRecord, Password)>> {
    let key = version_key(mount, &account.host, &account.name, number);
    let Some(record) = store.get::<VersionRecord>(Table::Versions, &key)? else {
        return Ok(None);
    };
    let password = open_password(store, &version_location(&key), &record.password_sealed)?;
    Ok(Some((record, password)))
}

fn open_password(store: &Store, location: &str, sealed_b64: &str) -> StoreResult<Password> {
    let sealed = b64().decode(sealed_b64).map_err(|_| StoreError::Corrupt {
        table: "versions",
        key: location.to_string(),
        detail: "sealed value is not base64".into(),
    })?;
    let bytes = store.unseal(location, &sealed)?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::Corrupt {
        table: "versions",
        key: location.to_string(),
        detail: "password is not UTF-8".into(),
    })?;
    Ok(Password::new(text))
}

pub fn pending_candidate(
    store: &Store,
    mount: &str,
    account: &AccountRecord,
) -> StoreResult<Option<Password>> {
    let Some(pending) = &account.pending else {
        return Ok(None);
    };
    let key = account_key(mount, &account.host, &account.name);
    open_password(
        store,
        &pending_location(&key, &pending.job_id),
        &pending.candidate_sealed,
    )
    .map(Some)
}

pub fn list_versions(
    store: &Store,
    mount: &str,
    account: &AccountRecord,
) -> StoreResult<Vec<VersionRecord>> {
    Ok(store
        .scan::<VersionRecord>(
            Table::Versions,
            &versions_prefix(mount, &account.host, &account.name),
        )?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// Appends version N+1 = `password` inside `tx`, expiring the current one.
fn append_version(
    store: &Store,
    tx: &WriteTx<'_>,
    mount: &str,
    account: &mut AccountRecord,
    password: &Password,
) -> StoreResult<()> {
    let now = now_unix();
    if account.current_version > 0 {
        let old_key = version_key(mount, &account.host, &account.name, account.current_version);
        if let Some(mut old) = tx.get::<VersionRecord>(Table::Versions, &old_key)? {
            old.expired_unix = Some(now);
            tx.put(Table::Versions, &old_key, &old)?;
        }
    }
    let next = account.current_version + 1;
    let key = version_key(mount, &account.host, &account.name, next);
    let sealed = store.seal(&version_location(&key), password.expose().as_bytes())?;
    tx.put(
        Table::Versions,
        &key,
        &VersionRecord {
            version: next,
            password_sealed: b64().encode(sealed),
            created_unix: now,
            expired_unix: None,
        },
    )?;
    account.current_version = next;
    Ok(())
}

/// Creates an account with its first version (the password the operator gave).
pub fn create_account(
    store: &Store,
    mount: &str,
    mut account: AccountRecord,
    password: &Password,
) -> Result<AccountRecord, ApiError> {
    let key = account_key(mount, &account.host, &account.name);
    store.write(|tx| {
        if tx.get::<AccountRecord>(Table::Accounts, &key)?.is_some() {
            return Err(ApiError::bad_request(format!(
                "account {} already exists",
                account.name
            )));
        }
        account.current_version = 0;
        append_version(store, tx, mount, &mut account, password)?;
        super::due_index::put_account(tx, &key, &account)?;
        Ok(account)
    })
}

/// Bulk loading (imports, the benchmark's million accounts): creates a host and its
/// accounts, each with its first version, in one transaction; existing ones are replaced.
/// Checks nothing the API checks: callers hand it records the API would accept.
pub fn load_host_with_accounts(
    store: &Store,
    mount: &str,
    host: &HostRecord,
    accounts: Vec<(AccountRecord, Password)>,
) -> StoreResult<()> {
    store.write(|tx| {
        tx.put(Table::Hosts, &host_key(mount, &host.name), host)?;
        for (mut account, password) in accounts {
            account.current_version = 0;
            append_version(store, tx, mount, &mut account, &password)?;
            super::due_index::put_account(
                tx,
                &account_key(mount, &account.host, &account.name),
                &account,
            )?;
        }
        Ok(())
    })
}

/// Saves an account's settings (not its password state).
pub fn update_account_settings(
    store: &Store,
    mount: &str,
    account: &AccountRecord,
) -> StoreResult<()> {
    let key = account_key(mount, &account.host, &account.name);
    store.write(|tx| {
        let mut stored: AccountRecord =
            tx.get(Table::Accounts, &key)?
                .ok_or_else(|| StoreError::Corrupt {
                    table: "accounts",
                    key: key.clone(),
                    detail: "account vanished during update".into(),
                })?;
        stored.username = account.username.clone();
        stored.parent_ref = account.parent_ref.clone();
        stored.verify_connection = account.verify_connection;
        stored.disable_automated_rotation = account.disable_automated_rotation;
        stored.rotation_period_secs = account.rotation_period_secs;
        stored.rotation_schedule = account.rotation_schedule.clone();
        stored.rotation_window_secs = account.rotation_window_secs;
        stored.auto_reconcile = account.auto_reconcile;
        stored.lazy_rotation = account.lazy_rotation;
        stored.password_policy = account.password_policy.clone();
        super::due_index::put_account(tx, &key, &stored)
    })
}

/// Step 1 of a rotation: in one transaction, record a candidate for every account of the
/// batch. Refused when any of them already has one (a rotation or verification in flight).
pub fn record_pending_candidates(
    store: &Store,
    mount: &str,
    host: &str,
    job_id: &str,
    candidates: &[(String, Password)],
) -> Result<(), ApiError> {
    store.write(|tx| {
        for (account_name, candidate) in candidates {
            let key = account_key(mount, host, account_name);
            let mut account: AccountRecord = tx
                .get(Table::Accounts, &key)?
                .ok_or_else(|| ApiError::not_found(format!("account {account_name} does not exist on host {host}")))?;
            if account.pending.is_some() {
                return Err(ApiError::bad_request(format!(
                    "account {account_name} on host {host} has a rotation or verification in flight; try again when it is done"
                )));
            }
            let sealed = store.seal(&pending_location(&key, job_id), candidate.expose().as_bytes())?;
            account.pending = Some(Pending {
                job_id: job_id.to_string(),
                candidate_sealed: b64().encode(sealed),
                started_unix: now_unix(),
            });
            account.status = AccountStatus::Rotating;
            super::due_index::put_account(tx, &key, &account)?;
        }
        Ok(())
    })
}

/// Commits version N+1 with proof that the host has it, and clears the pending candidate.
pub fn commit_confirmed(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
    proof: PasswordConfirmed,
) -> StoreResult<u64> {
    let key = account_key(mount, host, account_name);
    store.write(|tx| {
        confirm_in(store, tx, mount, &key, &proof)?.ok_or_else(|| StoreError::Corrupt {
            table: "accounts",
            key: key.clone(),
            detail: "account vanished during a rotation".into(),
        })
    })
}

/// [`commit_confirmed`] for every account of one host's batch, in one transaction (a host
/// of a hundred accounts is one commit, not a hundred). Answers each account's new version,
/// or None for an account deleted while it rotated.
pub fn commit_confirmed_all(
    store: &Store,
    mount: &str,
    host: &str,
    confirmed: &[(String, PasswordConfirmed)],
) -> StoreResult<Vec<Option<u64>>> {
    store.write(|tx| {
        confirmed
            .iter()
            .map(|(name, proof)| {
                confirm_in(store, tx, mount, &account_key(mount, host, name), proof)
            })
            .collect()
    })
}

/// Inside a write: the account at `key` now has `proof`'s password as a new current version.
fn confirm_in(
    store: &Store,
    tx: &WriteTx<'_>,
    mount: &str,
    key: &str,
    proof: &PasswordConfirmed,
) -> StoreResult<Option<u64>> {
    let Some(mut account) = tx.get::<AccountRecord>(Table::Accounts, key)? else {
        return Ok(None);
    };
    append_version(store, tx, mount, &mut account, proof.value())?;
    account.pending = None;
    account.status = AccountStatus::InSync;
    account.status_detail = None;
    account.last_error = None;
    account.failed_attempts = 0;
    account.retry_after_unix = None;
    account.last_vault_rotation_unix = Some(now_unix());
    super::due_index::put_account(tx, key, &account)?;
    Ok(Some(account.current_version))
}

/// The host kept the current password (certain, or proved by login): drop the candidate.
pub fn drop_pending(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
    error: Option<String>,
    retry_after_secs: Option<u64>,
) -> StoreResult<()> {
    let key = account_key(mount, host, account_name);
    store.write(|tx| {
        let Some(mut account) = tx.get::<AccountRecord>(Table::Accounts, &key)? else {
            return Ok(());
        };
        account.pending = None;
        account.status = AccountStatus::InSync;
        account.status_detail = None;
        if let Some(error) = error {
            account.last_error = Some(error);
            account.failed_attempts = account.failed_attempts.saturating_add(1);
            account.retry_after_unix = retry_after_secs.map(|secs| now_unix() + secs);
        }
        super::due_index::put_account(tx, &key, &account)
    })
}

/// Marks an account as being verified (outcome unknown), keeping its candidate.
pub fn mark_verifying(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
    detail: &str,
) -> StoreResult<()> {
    let key = account_key(mount, host, account_name);
    store.write(|tx| {
        let Some(mut account) = tx.get::<AccountRecord>(Table::Accounts, &key)? else {
            return Ok(());
        };
        account.status = AccountStatus::Verifying;
        account.status_detail = Some(detail.to_string());
        super::due_index::put_account(tx, &key, &account)
    })
}

/// Neither the candidate nor the current password logs in: say so loudly.
pub fn mark_out_of_sync(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
    detail: &str,
) -> StoreResult<()> {
    let key = account_key(mount, host, account_name);
    store.write(|tx| {
        let Some(mut account) = tx.get::<AccountRecord>(Table::Accounts, &key)? else {
            return Ok(());
        };
        account.pending = None;
        account.status = AccountStatus::OutOfSync;
        account.status_detail = Some(detail.to_string());
        account.last_error = Some(detail.to_string());
        super::due_index::put_account(tx, &key, &account)
    })
}

/// `reset`: the controller's knowledge only, never the host. Makes a new version.
pub fn reset_password(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
    password: &Password,
) -> Result<u64, ApiError> {
    let key = account_key(mount, host, account_name);
    store.write(|tx| {
        let mut account: AccountRecord = tx
            .get(Table::Accounts, &key)?
            .ok_or_else(|| ApiError::not_found(format!("account {account_name} does not exist on host {host}")))?;
        if account.pending.is_some() {
            return Err(ApiError::bad_request(format!(
                "account {account_name} has a rotation in flight; reset it when the rotation is done"
            )));
        }
        append_version(store, tx, mount, &mut account, password)?;
        account.status = AccountStatus::InSync;
        account.status_detail = None;
        account.last_error = None;
        super::due_index::put_account(tx, &key, &account)?;
        Ok(account.current_version)
    })
}

/// `versions/N/restore`: a new version holding version N's password; the host is untouched.
pub fn restore_version(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
    version: u64,
) -> Result<u64, ApiError> {
    let account = get_account(store, mount, host, account_name)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "account {account_name} does not exist on host {host}"
        ))
    })?;
    let password = version_password(store, mount, &account, version)?.ok_or_else(|| {
        ApiError::bad_request(format!("account {account_name} has no version {version}"))
    })?;
    reset_password(store, mount, host, account_name, &password)
}

/// Deletes an account and its versions; refused while it is a parent of another account.
pub fn delete_account(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
) -> Result<(), ApiError> {
    store.write(|tx| {
        for (_, other) in tx.scan::<AccountRecord>(Table::Accounts, &accounts_prefix(mount, host))? {
            if other.parent_ref.as_deref() == Some(account_name) && other.name != account_name {
                return Err(ApiError::bad_request(format!(
                    "account {account_name} is the parent of {}; delete or re-parent that account first",
                    other.name
                )));
            }
        }
        let key = account_key(mount, host, account_name);
        // A change in flight may already be on the host: deleting now would leave a password
        // there that Rotor no longer knows. The delete waits for the change to settle.
        if let Some(account) = tx.get::<AccountRecord>(Table::Accounts, &key)?
            && let Some(pending) = &account.pending
        {
            return Err(ApiError::bad_request(format!(
                "account {account_name} on host {host} has a password change in flight (job {}, started {}); deleting it now could leave a password on the host that Rotor does not know: wait until its status is no longer '{}' (read the account), then delete it",
                pending.job_id,
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(pending.started_unix)
                ),
                account.status.name(),
            )));
        }
        super::due_index::delete_account(tx, &key)?;
        tx.delete(Table::Meta, &super::heartbeat::key(mount, host, account_name))?;
        for (version_key, _) in tx.scan::<VersionRecord>(Table::Versions, &versions_prefix(mount, host, account_name))? {
            tx.delete(Table::Versions, &version_key)?;
        }
        Ok(())
    })
}

/// Records the host key seen at first contact (trust on first use).
pub fn record_trusted_host_key(
    store: &Store,
    mount: &str,
    host: &str,
    openssh: &str,
) -> StoreResult<()> {
    let key = host_key(mount, host);
    store.write(|tx| {
        if let Some(mut record) = tx.get::<HostRecord>(Table::Hosts, &key)?
            && record.trusted_host_key.is_none()
            && record.ssh_host_key.is_none()
        {
            record.trusted_host_key = Some(openssh.to_string());
            tx.put(Table::Hosts, &key, &record)?;
        }
        Ok(())
    })
}

/// Records that the scheduler acted on (or skipped) the occurrence at `when`.
pub fn set_schedule_anchor(
    store: &Store,
    mount: &str,
    host: &str,
    account_name: &str,
    when: u64,
    missed_detail: Option<&str>,
) -> StoreResult<()> {
    let key = account_key(mount, host, account_name);
    store.write(|tx| {
        let Some(mut account) = tx.get::<AccountRecord>(Table::Accounts, &key)? else {
            return Ok(());
        };
        account.schedule_anchor_unix = Some(when);
        if let Some(detail) = missed_detail {
            account.last_error = Some(detail.to_string());
        }
        super::due_index::put_account(tx, &key, &account)
    })
}

/// Every account of a mount (the scheduler's scan).
pub fn all_accounts(store: &Store, mount: &str) -> StoreResult<Vec<AccountRecord>> {
    Ok(store
        .scan::<AccountRecord>(Table::Accounts, mount)?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    fn account(name: &str) -> AccountRecord {
        AccountRecord::new("db-1", name)
    }

    #[test]
    fn a_hosts_confirmed_changes_commit_together_and_a_deleted_account_is_skipped() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let mount = "os/";
        for name in ["app1", "app2", "app3"] {
            create_account(
                &store,
                mount,
                account(name),
                &Password::new(format!("{name}-v1")),
            )
            .expect("created");
        }
        let candidates: Vec<(String, Password)> = ["app1", "app2", "app3"]
            .iter()
            .map(|name| (name.to_string(), Password::new(format!("{name}-v2"))))
            .collect();
        record_pending_candidates(&store, mount, "db-1", "job-1", &candidates).expect("pending");
        // delete_account refuses while a change is in flight; the commit still copes with a
        // record that vanished some other way.
        store
            .write(|tx| tx.delete(Table::Accounts, &account_key(mount, "db-1", "app2")))
            .expect("deleted");
        let confirmed: Vec<(String, PasswordConfirmed)> = candidates
            .iter()
            .map(|(name, password)| (name.clone(), PasswordConfirmed::for_tests(password.clone())))
            .collect();
        let versions = commit_confirmed_all(&store, mount, "db-1", &confirmed).expect("committed");
        assert_eq!(versions, vec![Some(2), None, Some(2)]);
        for name in ["app1", "app3"] {
            let record = get_account(&store, mount, "db-1", name)
                .expect("read")
                .expect("still there");
            assert!(record.pending.is_none());
            assert_eq!(record.status, AccountStatus::InSync);
            let current = current_password(&store, mount, &record).expect("current");
            assert_eq!(current.expose(), format!("{name}-v2"));
        }
    }

    /// Issue 16: deleting an account in the middle of its rotation could leave a password on
    /// the host that Rotor no longer knows; the delete waits for the change to settle.
    #[test]
    fn an_account_cannot_be_deleted_while_its_change_is_in_flight() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let mount = "os/";
        create_account(
            &store,
            mount,
            account("app1"),
            &Password::new("v1".to_string()),
        )
        .expect("created");
        let candidate = vec![("app1".to_string(), Password::new("v2".to_string()))];
        record_pending_candidates(&store, mount, "db-1", "job-7", &candidate).expect("pending");
        let error = delete_account(&store, mount, "db-1", "app1").expect_err("refused");
        assert_eq!(error.status.as_u16(), 400);
        assert!(
            error.message.contains("job-7") && error.message.contains("in flight"),
            "the refusal names the change: {}",
            error.message
        );
        assert!(
            get_account(&store, mount, "db-1", "app1")
                .expect("read")
                .is_some(),
            "the account and its candidate are kept"
        );
        let proof = PasswordConfirmed::for_tests(Password::new("v2".to_string()));
        commit_confirmed(&store, mount, "db-1", "app1", proof).expect("settled");
        delete_account(&store, mount, "db-1", "app1").expect("deleted once settled");
        assert!(
            get_account(&store, mount, "db-1", "app1")
                .expect("read")
                .is_none()
        );
    }
}
