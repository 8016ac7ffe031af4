//! Dynamic credentials: `creds/:role` issues a PostgreSQL role under a lease, and the lease's
//! revoke and renew actions drop it or move its `VALID UNTIL`.
//!
//! **Invariant:** the lease (with the generated name) is stored before the agent runs the
//! creation statements, so no crash or lost answer leaves a role Rotor has no lease for. The
//! lease says `state: creating` until the agent answers `Created`; a creation that certainly
//! failed (the statements run in one transaction, rolled back on any failure) drops the lease;
//! one whose outcome is unknown, and every lease still `creating` when the controller starts,
//! is made due at once, and its revocation checks `pg_roles` and drops the role if it exists
//! (nobody received its password, so completing it would serve no one).
//! A revocation that fails stays on the lease (`revocation_pending`) and is retried with
//! capped backoff for as long as it takes; `VALID UNTIL` (the lease's expiry) bounds the role
//! meanwhile. Revocations run at a bounded rate per database.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rotor_common::ids::JobId;
use rotor_common::secret::Password;
use rotor_common::wire::database::{DbJob, DbOutcome, RoleValues};
use serde::{Deserialize, Serialize};

use super::jobs::{self, DbJobEnd};
use super::model::{self, ConnectionRecord, RoleRecord};
use super::username::{self, UsernameTemplate};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::dispatch::Dispatcher;
use crate::leases::{LeaseManager, LeaseRecord, NewLease, Renewer, RevokeFuture, Revoker};
use crate::password_policy::{self, CharsetRule, PasswordPolicy};
use crate::store::Store;
use crate::tokens::now_unix;

/// The secret kind database leases are registered under.
pub const SECRET_KIND: &str = "database_role";

/// Vault's system default and maximum lease TTL (768h), used when a role sets none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(768 * 3600);

/// Revocations started per second against one database, at most.
pub const REVOCATIONS_PER_SECOND: u32 = 50;

/// What a database lease's revoke action needs. No secret: the password is never stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseData {
    pub mount: String,
    pub db_name: String,
    pub username: String,
    /// `creating` until the agent answered `Created`, then `issued`.
    pub state: String,
    pub revocation_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    pub terminate_sessions: bool,
}

pub const CREATING: &str = "creating";
pub const ISSUED: &str = "issued";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Leases whose creation job is running now: their revocation waits for it (a token revoked
/// meanwhile must not drop a role the running CREATE is about to make).
fn creating_now() -> &'static Mutex<HashSet<String>> {
    static CREATING_NOW: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    CREATING_NOW.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Removes a lease id from [`creating_now`] when dropped, however issuance ends.
struct CreationGuard(String);

impl Drop for CreationGuard {
    fn drop(&mut self) {
        lock(creating_now()).remove(&self.0);
    }
}

/// `{{expiration}}` as PostgreSQL reads it for `VALID UNTIL`.
pub fn expiration_text(unix: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(unix).unwrap_or(i64::MAX), 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%z")
        .to_string()
}

/// The default password of a dynamic role: 20 letters and digits with a `-`, as Vault's.
fn default_password_policy() -> PasswordPolicy {
    let rule = |charset: &str| CharsetRule {
        charset: charset.chars().collect(),
        min_chars: 1,
    };
    PasswordPolicy {
        length: 20,
        rules: vec![
            rule("abcdefghijklmnopqrstuvwxyz"),
            rule("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            rule("0123456789"),
            rule("-"),
        ],
    }
}

/// Characters a password must not hold: it is put between single quotes in statements.
pub fn unsafe_in_statements(character: char) -> bool {
    matches!(character, '\'' | '\\') || character.is_control()
}

/// A fresh password for `connection`: its `password_policy`, else the default.
pub fn fresh_password(store: &Store, connection: &ConnectionRecord) -> Result<Password, ApiError> {
    let policy = match &connection.password_policy {
        Some(name) => password_policy::store::load(store, name)
            .map_err(|error| ApiError::internal(format!("loading password policy '{name}': {error}")))?
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "field 'password_policy' of connection {}: policy '{name}' does not exist (sys/policies/password/{name})",
                    connection.name
                ))
            })?,
        None => default_password_policy(),
    };
    let password = password_policy::generate(&policy)
        .map_err(|error| ApiError::internal(format!("generating a password: {error}")))?;
    if password.expose().chars().any(unsafe_in_statements) {
        return Err(ApiError::bad_request(format!(
            "field 'password_policy' of connection {}: the policy can produce ' or \\, which would break the statements' quoting; remove them from its charsets",
            connection.name
        )));
    }
    Ok(password)
}

/// Random lowercase letters and digits from the OS CSPRNG.
pub fn random_alphanumeric(length: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut source = password_policy::generate::OsRandom::new();
    (0..length)
        .map(|_| {
            let index =
                password_policy::generate::uniform_below(&mut source, ALPHABET.len()).unwrap_or(0);
            char::from(ALPHABET[index])
        })
        .collect()
}

/// `{{.DisplayName}}`: the token's display name as Vault gives it.
fn display_name(request: &Request) -> String {
    match &request.token {
        Some(token) if !token.record.display_name.is_empty() => token.record.display_name.clone(),
        Some(_) => "token".into(),
        None => "anonymous".into(),
    }
}

/// Whether `connection` allows credentials of `role`.
pub fn role_allowed(connection: &ConnectionRecord, role: &str) -> bool {
    connection
        .allowed_roles
        .iter()
        .any(|allowed| allowed == "*" || allowed == role)
}

/// Adds the `VALID UNTIL` backstop when the creation statements do not set it themselves.
pub fn creation_statements_with_backstop(role: &RoleRecord) -> Vec<String> {
    let mut statements = role.creation_statements.clone();
    if !statements
        .iter()
        .any(|statement| statement.contains("{{expiration}}"))
    {
        statements.push("ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'".to_string());
    }
    statements
}

/// `creds/:role` (read, as Vault; write accepted too).
pub fn creds(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mount = request.mount.clone();
        let role_name = request.param("role").to_string();
        let role = model::get_role(&state.store, &mount, &role_name)?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "role '{role_name}' does not exist at {mount}roles/; create it with rotor write {mount}roles/{role_name} db_name=... creation_statements=..."
            ))
        })?;
        let connection = model::get_connection(&state.store, &mount, &role.db_name)?
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "field 'db_name' of role {role_name}: connection '{}' does not exist at {mount}config/",
                    role.db_name
                ))
            })?;
        if !role_allowed(&connection, &role_name) {
            return Err(ApiError::bad_request(format!(
                "role '{role_name}' is not in the field 'allowed_roles' of connection {} ({}); add it there",
                connection.name,
                connection.allowed_roles.join(",")
            )));
        }
        let template = match &connection.username_template {
            Some(text) => UsernameTemplate::parse(text).map_err(ApiError::bad_request)?,
            None => username::default_template(),
        };
        let now = now_unix();
        let username = template.render(
            &display_name(&request),
            &role_name,
            now,
            random_alphanumeric,
        );
        let password = fresh_password(&state.store, &connection)?;
        let ttl = match role.default_ttl_secs {
            0 => DEFAULT_TTL,
            secs => Duration::from_secs(secs),
        };
        let max_ttl = match role.max_ttl_secs {
            0 => DEFAULT_TTL.max(ttl),
            secs => Duration::from_secs(secs),
        };
        let data = LeaseData {
            mount: mount.clone(),
            db_name: connection.name.clone(),
            username: username.clone(),
            state: CREATING.into(),
            revocation_statements: role.revocation_statements.clone(),
            renew_statements: role.renew_statements.clone(),
            terminate_sessions: role.revoke_terminates_sessions,
        };
        // Written ahead: the lease exists before the role can.
        let lease = state
            .leases
            .register(
                NewLease {
                    path_prefix: format!("{mount}creds/{role_name}"),
                    secret_kind: SECRET_KIND.into(),
                    ttl,
                    max_ttl,
                    renewable: true,
                    revoke_data: serde_json::to_value(&data)
                        .map_err(|error| ApiError::internal(error.to_string()))?,
                    owner_accessor: request.token.as_ref().map(|token| token.accessor.clone()),
                },
                now,
            )
            .map_err(|error| {
                ApiError::internal(format!(
                    "registering the lease of a new database role: {error}"
                ))
            })?;
        lock(creating_now()).insert(lease.lease_id.clone());
        let _guard = CreationGuard(lease.lease_id.clone());
        let target = model::target(&state.store, &mount, &connection)?;
        let job_id = JobId::generate();
        let end = jobs::run(
            &state.dispatcher,
            &state.store,
            &connection.site,
            &format!("database {}", connection.name),
            job_id,
            DbJob::CreateRole {
                target,
                role: RoleValues {
                    name: username.clone(),
                    password: Some(password.clone()),
                    expiration: Some(expiration_text(lease.expire_unix)),
                },
                statements: creation_statements_with_backstop(&role),
            },
        )
        .await;
        match end {
            DbJobEnd::Done {
                agent,
                outcome: DbOutcome::Created,
            } => {
                let issued = LeaseData {
                    state: ISSUED.into(),
                    ..data
                };
                state
                    .leases
                    .update_revoke_data(
                        &lease.lease_id,
                        serde_json::to_value(&issued)
                            .map_err(|error| ApiError::internal(error.to_string()))?,
                    )
                    .map_err(|error| ApiError::internal(format!("recording role {username} as issued: {error}; the lease stays and its revocation drops the role")))?;
                state.dispatcher.acknowledge_result(&agent, job_id).await;
                tracing::info!(%mount, role = %role_name, db = %connection.name, %username, lease_id = %lease.lease_id, "issued database credentials");
                let mut response = ApiResponse::data(data_map! {
                    "username" => username,
                    "password" => password.expose(),
                });
                response.lease_id = lease.lease_id;
                response.lease_duration = ttl.as_secs();
                response.renewable = true;
                Ok(response)
            }
            DbJobEnd::NotChanged(message) => {
                if let Err(error) = state.leases.discard_unissued(&lease.lease_id) {
                    tracing::warn!(lease_id = %lease.lease_id, %error, "dropping the lease of a role that was not created");
                }
                Err(ApiError::internal(format!(
                    "creating role {username} for role {role_name} failed: {message}; the lease was dropped. Check the role's creation_statements and the connection {}",
                    connection.name
                )))
            }
            other => {
                let detail = match other {
                    DbJobEnd::Unknown(message) => message,
                    DbJobEnd::Done { outcome, .. } => format!("unexpected answer {outcome:?}"),
                    DbJobEnd::NotChanged(message) => message,
                };
                drop(_guard);
                if let Err(error) = state.leases.expire_now(&lease.lease_id, now_unix()) {
                    tracing::error!(lease_id = %lease.lease_id, %error, "making the lease of a role in doubt due");
                }
                tracing::warn!(lease_id = %lease.lease_id, %username, %detail, "creating a database role ended in doubt; revoking its lease");
                Err(ApiError::internal(format!(
                    "creating role {username} on database {} ended in doubt ({detail}); Rotor is revoking lease {} now, which drops the role if it was created. Ask for new credentials",
                    connection.name, lease.lease_id
                )))
            }
        }
    })
}

/// At start: leases left `creating` by a controller that stopped mid-issuance are made due,
/// so their revocation drops the role if it was created. Answers how many.
pub fn recover_creating(leases: &LeaseManager) -> usize {
    let records = match leases.of_kind(SECRET_KIND) {
        Ok(records) => records,
        Err(error) => {
            tracing::error!(%error, "listing database leases for recovery");
            return 0;
        }
    };
    let now = now_unix();
    let mut recovered = 0;
    for lease in records {
        let Ok(data) = serde_json::from_value::<LeaseData>(lease.revoke_data.clone()) else {
            continue;
        };
        if data.state == CREATING && !lock(creating_now()).contains(&lease.lease_id) {
            match leases.expire_now(&lease.lease_id, now) {
                Ok(()) => {
                    recovered += 1;
                    tracing::warn!(lease_id = %lease.lease_id, username = %data.username, "a database role's creation was interrupted; revoking its lease (drops the role if it exists)");
                }
                Err(error) => {
                    tracing::error!(lease_id = %lease.lease_id, %error, "recovering a database lease")
                }
            }
        }
    }
    recovered
}

/// A bound on revocations per database: a token bucket per `<mount><db>`.
struct RateLimits {
    buckets: Mutex<HashMap<String, (Instant, f64)>>,
    per_second: f64,
}

impl RateLimits {
    /// Waits until `database` may start one more revocation.
    async fn acquire(&self, database: &str) {
        loop {
            let wait = {
                let mut buckets = lock(&self.buckets);
                let now = Instant::now();
                let (last, tokens) = buckets
                    .entry(database.to_string())
                    .or_insert((now, self.per_second));
                let refilled = (*tokens
                    + now.duration_since(*last).as_secs_f64() * self.per_second)
                    .min(self.per_second);
                *last = now;
                if refilled >= 1.0 {
                    *tokens = refilled - 1.0;
                    return;
                }
                *tokens = refilled;
                Duration::from_secs_f64((1.0 - refilled) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Drops database roles when their leases end; renews their `VALID UNTIL`.
pub struct RoleLeases {
    pub store: Arc<Store>,
    pub dispatcher: Dispatcher,
    limits: RateLimits,
}

impl RoleLeases {
    pub fn new(store: Arc<Store>, dispatcher: Dispatcher) -> Self {
        Self {
            store,
            dispatcher,
            limits: RateLimits {
                buckets: Mutex::new(HashMap::new()),
                per_second: f64::from(REVOCATIONS_PER_SECOND),
            },
        }
    }

    /// Registers the revoke and renew actions of database leases, then recovers leases left
    /// `creating`.
    pub fn install(store: Arc<Store>, dispatcher: Dispatcher, leases: &LeaseManager) {
        let actions = Arc::new(Self::new(store, dispatcher));
        leases.register_revoker(SECRET_KIND, actions.clone());
        leases.register_renewer(SECRET_KIND, actions);
        let recovered = recover_creating(leases);
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "database leases left mid-creation are being revoked"
            );
        }
    }

    fn connection_for(&self, data: &LeaseData) -> Result<ConnectionRecord, String> {
        model::get_connection(&self.store, &data.mount, &data.db_name)
            .map_err(|error| format!("reading connection {}: {error}", data.db_name))?
            .ok_or_else(|| {
                format!(
                    "connection {}config/{} no longer exists, so role {} cannot be reached: write the connection again, or revoke-force the lease if the role is gone",
                    data.mount, data.db_name, data.username
                )
            })
    }

    async fn revoke_role(&self, lease: &LeaseRecord) -> Result<(), String> {
        let data: LeaseData = serde_json::from_value(lease.revoke_data.clone())
            .map_err(|error| format!("lease {} has unreadable data: {error}", lease.lease_id))?;
        if lock(creating_now()).contains(&lease.lease_id) {
            return Err(format!(
                "role {} is still being created; it is revoked once that ends",
                data.username
            ));
        }
        let connection = self.connection_for(&data)?;
        self.limits
            .acquire(&format!("{}{}", data.mount, data.db_name))
            .await;
        let target = model::target(&self.store, &data.mount, &connection)
            .map_err(|error| error.to_string())?;
        let job_id = JobId::generate();
        let end = jobs::run(
            &self.dispatcher,
            &self.store,
            &connection.site,
            &format!("database {}", connection.name),
            job_id,
            DbJob::RevokeRole {
                target,
                name: data.username.clone(),
                statements: data.revocation_statements.clone(),
                terminate_sessions: data.terminate_sessions,
            },
        )
        .await;
        match end {
            DbJobEnd::Done {
                agent,
                outcome:
                    DbOutcome::Revoked {
                        existed,
                        sessions_terminated,
                    },
            } => {
                self.dispatcher.acknowledge_result(&agent, job_id).await;
                tracing::info!(lease_id = %lease.lease_id, username = %data.username, db = %data.db_name, existed, sessions_terminated, "database role revoked");
                Ok(())
            }
            DbJobEnd::Done { outcome, .. } => Err(format!(
                "revoking role {} on database {}: unexpected answer {outcome:?}",
                data.username, data.db_name
            )),
            DbJobEnd::NotChanged(message) | DbJobEnd::Unknown(message) => Err(format!(
                "revoking role {} on database {}: {message}",
                data.username, data.db_name
            )),
        }
    }

    async fn renew_role(&self, lease: &LeaseRecord, new_expire_unix: u64) -> Result<(), String> {
        let data: LeaseData = serde_json::from_value(lease.revoke_data.clone())
            .map_err(|error| format!("lease {} has unreadable data: {error}", lease.lease_id))?;
        if data.state != ISSUED {
            return Err(format!("role {} is not issued yet", data.username));
        }
        let connection = self.connection_for(&data)?;
        let target = model::target(&self.store, &data.mount, &connection)
            .map_err(|error| error.to_string())?;
        let job_id = JobId::generate();
        let end = jobs::run(
            &self.dispatcher,
            &self.store,
            &connection.site,
            &format!("database {}", connection.name),
            job_id,
            DbJob::RenewRole {
                target,
                role: RoleValues {
                    name: data.username.clone(),
                    password: None,
                    expiration: Some(expiration_text(new_expire_unix)),
                },
                statements: data.renew_statements.clone(),
            },
        )
        .await;
        match end {
            DbJobEnd::Done {
                agent,
                outcome: DbOutcome::Renewed,
            } => {
                self.dispatcher.acknowledge_result(&agent, job_id).await;
                Ok(())
            }
            DbJobEnd::Done { outcome, .. } => Err(format!(
                "renewing role {} on database {}: unexpected answer {outcome:?}",
                data.username, data.db_name
            )),
            DbJobEnd::NotChanged(message) | DbJobEnd::Unknown(message) => Err(format!(
                "renewing role {} on database {}: {message}",
                data.username, data.db_name
            )),
        }
    }
}

impl Revoker for RoleLeases {
    fn revoke<'a>(&'a self, lease: &'a LeaseRecord) -> RevokeFuture<'a> {
        Box::pin(self.revoke_role(lease))
    }
}

impl Renewer for RoleLeases {
    fn renew<'a>(&'a self, lease: &'a LeaseRecord, new_expire_unix: u64) -> RevokeFuture<'a> {
        Box::pin(self.renew_role(lease, new_expire_unix))
    }
}

/// For `creds` answers and tests: the data of a database lease.
pub fn lease_data(lease: &LeaseRecord) -> Option<LeaseData> {
    serde_json::from_value::<LeaseData>(lease.revoke_data.clone()).ok()
}
