//! PostgreSQL from the agent: connections (TLS with rustls on aws-lc-rs), a small pool per
//! target, and the statements of each database job with a timeout on the connect and on
//! every statement.
//!
//! Owns the rule the engine rests on: [`PgError::BeforeChange`] (certain that nothing was
//! committed: the failure came before COMMIT was sent, so the server rolled back) versus
//! [`PgError::Unknown`] (COMMIT was sent and no answer came). Never puts a password in an
//! error: statements are quoted in their `shown` form. Does not decide anything about leases.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rotor_common::secret::Password;
use rotor_common::wire::database::{DatabaseTarget, SslMode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

use super::sql::{self, Rendered};

/// Why a database job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// Nothing was committed.
    #[error("{0}; nothing was changed")]
    BeforeChange(String),
    /// The change may or may not have been committed.
    #[error("{0}; the outcome is unknown (the change may or may not have been committed)")]
    Unknown(String),
}

/// Connections of one target, and the lock that serialises its creation statements
/// (concurrent `GRANT ... ON ALL TABLES` fail with "tuple concurrently updated").
struct TargetPool {
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    creation: tokio::sync::Mutex<()>,
    max_idle: usize,
    max_lifetime: Option<Duration>,
}

struct Idle {
    client: Client,
    opened: Instant,
    /// The password it logged in with: a connection for an old root password is not reused.
    password: Password,
}

/// A connection taken from the pool: goes back with [`Pooled::release`], closes on drop.
pub struct Pooled {
    client: Option<Client>,
    opened: Instant,
    password: Password,
    pool: Arc<TargetPool>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a pooled connection holds its client until released")
    }

    /// Returns a healthy connection to the pool (idle, outside any transaction).
    pub fn release(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if client.is_closed() {
            return;
        }
        let mut idle = lock(&self.pool.idle);
        if idle.len() < self.pool.max_idle {
            idle.push(Idle {
                client,
                opened: self.opened,
                password: self.password.clone(),
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process's pools, by target (name, address, database, user, limits).
fn pools() -> &'static Mutex<HashMap<String, Arc<TargetPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Arc<TargetPool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn pool_key(target: &DatabaseTarget) -> String {
    format!(
        "{}|{}:{}|{}|{}|{:?}|{}|{}|{}",
        target.name,
        target.host,
        target.port,
        target.database,
        target.username,
        target.ssl_mode,
        target.max_open_connections,
        target.max_idle_connections,
        target.max_connection_lifetime_secs
    )
}

fn target_pool(target: &DatabaseTarget) -> Arc<TargetPool> {
    let mut pools = lock(pools());
    pools
        .entry(pool_key(target))
        .or_insert_with(|| {
            Arc::new(TargetPool {
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(target.max_open_connections.max(1) as usize)),
                creation: tokio::sync::Mutex::new(()),
                max_idle: target.max_idle_connections as usize,
                max_lifetime: (target.max_connection_lifetime_secs > 0)
                    .then(|| Duration::from_secs(target.max_connection_lifetime_secs)),
            })
        })
        .clone()
}

/// `database pg (db.example:5432/app)`: how every message names the target.
pub fn describe(target: &DatabaseTarget) -> String {
    format!(
        "database {} ({}:{}/{})",
        target.name, target.host, target.port, target.database
    )
}

fn connect_timeout(target: &DatabaseTarget) -> Duration {
    Duration::from_millis(target.connect_timeout_ms.max(500))
}

pub fn statement_timeout(target: &DatabaseTarget) -> Duration {
    Duration::from_millis(target.statement_timeout_ms.max(500))
}

/// Takes a connection to `target` from its pool, or opens one.
pub async fn connection(target: &DatabaseTarget) -> Result<Pooled, PgError> {
    let pool = target_pool(target);
    let permit = tokio::time::timeout(connect_timeout(target), pool.permits.clone().acquire_owned())
        .await
        .map_err(|_| {
            PgError::BeforeChange(format!(
                "{}: all {} connections the agent may open are busy; raise max_open_connections or retry",
                describe(target),
                target.max_open_connections.max(1)
            ))
        })?
        .map_err(|_| PgError::BeforeChange(format!("{}: connection pool closed", describe(target))))?;
    loop {
        let reusable = lock(&pool.idle).pop();
        let Some(idle) = reusable else { break };
        let too_old = pool
            .max_lifetime
            .is_some_and(|lifetime| idle.opened.elapsed() > lifetime);
        if idle.client.is_closed() || too_old || idle.password != target.password {
            continue;
        }
        return Ok(Pooled {
            client: Some(idle.client),
            opened: idle.opened,
            password: idle.password,
            pool,
            _permit: permit,
        });
    }
    let client = open(target).await?;
    Ok(Pooled {
        client: Some(client),
        opened: Instant::now(),
        password: target.password.clone(),
        pool,
        _permit: permit,
    })
}

/// Opens one connection and sets its statement timeout.
async fn open(target: &DatabaseTarget) -> Result<Client, PgError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&target.host)
        .port(target.port)
        .user(&target.username)
        .password(target.password.expose().as_bytes())
        .dbname(&target.database)
        .application_name("rotor-agent")
        .connect_timeout(connect_timeout(target));
    let failed = |error: tokio_postgres::Error| {
        PgError::BeforeChange(format!(
            "{}: cannot connect as {}: {}",
            describe(target),
            target.username,
            explain(&error)
        ))
    };
    let timed_out = || {
        PgError::BeforeChange(format!(
            "{}: connecting timed out after {} ms; check that the agent reaches it (host, port, firewall)",
            describe(target),
            connect_timeout(target).as_millis()
        ))
    };
    let client = match target.ssl_mode {
        SslMode::Disable => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = tokio::time::timeout(
                connect_timeout(target),
                config.connect(tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(failed)?;
            tokio::spawn(connection);
            client
        }
        SslMode::Require | SslMode::VerifyFull | SslMode::Prefer => {
            config.ssl_mode(if target.ssl_mode == SslMode::Prefer {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            let tls = super::postgres_tls::connector(target).map_err(|problem| {
                PgError::BeforeChange(format!("{}: TLS settings: {problem}", describe(target)))
            })?;
            let (client, connection) =
                tokio::time::timeout(connect_timeout(target), config.connect(tls))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(failed)?;
            tokio::spawn(connection);
            client
        }
    };
    let timeout_ms = statement_timeout(target).as_millis();
    client
        .batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
        .await
        .map_err(failed)?;
    Ok(client)
}

/// The server's words for an error (message, detail, hint), or the client's.
pub fn explain(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => {
            let text = error.to_string();
            match std::error::Error::source(error) {
                Some(source) => format!("{text}: {source}"),
                None => text,
            }
        }
    }
}

/// Runs `work` within the target's statement timeout.
pub async fn bounded<T>(
    target: &DatabaseTarget,
    what: &str,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(statement_timeout(target), work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what} failed: {}", explain(&error))),
        Err(_) => Err(format!(
            "{what} did not finish within {} ms",
            statement_timeout(target).as_millis()
        )),
    }
}

/// Runs `statements` in one transaction. Any failure before COMMIT is certain (the
/// connection is closed, so the server rolls back); a failed COMMIT is unknown.
pub async fn in_transaction(
    target: &DatabaseTarget,
    connection: &Pooled,
    statements: &[Rendered],
) -> Result<(), PgError> {
    let client = connection.client();
    let before = |text: String| PgError::BeforeChange(format!("{}: {text}", describe(target)));
    bounded(target, "BEGIN", client.batch_execute("BEGIN"))
        .await
        .map_err(before)?;
    for (index, statement) in statements.iter().enumerate() {
        let what = format!(
            "statement {} of {} `{}`",
            index + 1,
            statements.len(),
            statement.shown
        );
        if let Err(text) = bounded(target, &what, client.batch_execute(&statement.sql)).await {
            // Ends the transaction; if even that fails the connection is dropped, which ends it.
            let _ = bounded(target, "ROLLBACK", client.batch_execute("ROLLBACK")).await;
            return Err(before(text));
        }
    }
    bounded(target, "COMMIT", client.batch_execute("COMMIT"))
        .await
        .map_err(|text| PgError::Unknown(format!("{}: {text}", describe(target))))
}

/// Runs `statements` in a transaction that is always rolled back (a rehearsal).
pub async fn rehearse(
    target: &DatabaseTarget,
    connection: &Pooled,
    statements: &[Rendered],
) -> Result<(), PgError> {
    let client = connection.client();
    let failed = |text: String| PgError::BeforeChange(format!("{}: {text}", describe(target)));
    bounded(target, "BEGIN", client.batch_execute("BEGIN"))
        .await
        .map_err(failed)?;
    let mut outcome = Ok(());
    for (index, statement) in statements.iter().enumerate() {
        let what = format!(
            "statement {} of {} `{}`",
            index + 1,
            statements.len(),
            statement.shown
        );
        if let Err(text) = bounded(target, &what, client.batch_execute(&statement.sql)).await {
            outcome = Err(failed(text));
            break;
        }
    }
    bounded(target, "ROLLBACK", client.batch_execute("ROLLBACK"))
        .await
        .map_err(failed)?;
    outcome
}

/// Holds the creation lock of `target` while `work` runs.
pub async fn serialised_creation<T>(target: &DatabaseTarget, work: impl Future<Output = T>) -> T {
    let pool = target_pool(target);
    let _guard = pool.creation.lock().await;
    work.await
}

/// Whether `name` is a role of the server.
pub async fn role_exists(
    target: &DatabaseTarget,
    connection: &Pooled,
    name: &str,
) -> Result<bool, String> {
    let rows = bounded(
        target,
        "looking the role up in pg_roles",
        connection
            .client()
            .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]),
    )
    .await?;
    Ok(!rows.is_empty())
}

/// Stops new logins of `name` and terminates its sessions, by the pids found now (after a
/// drop `pg_stat_activity.usename` is NULL, so they could not be found later).
pub async fn end_sessions(
    target: &DatabaseTarget,
    connection: &Pooled,
    name: &str,
) -> Result<u32, String> {
    let client = connection.client();
    let nologin = format!("ALTER ROLE {} NOLOGIN", sql::quote_identifier(name));
    bounded(
        target,
        &format!("`{nologin}`"),
        client.batch_execute(&nologin),
    )
    .await?;
    let rows = bounded(
        target,
        "finding the role's sessions in pg_stat_activity",
        client.query(
            "SELECT pid FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[&name],
        ),
    )
    .await?;
    let mut terminated = 0;
    for row in rows {
        let pid: i32 = row.get(0);
        bounded(
            target,
            &format!("terminating session pid {pid}"),
            client.query("SELECT pg_terminate_backend($1)", &[&pid]),
        )
        .await?;
        terminated += 1;
    }
    Ok(terminated)
}

/// Schemas the default revocation walks: all but PostgreSQL's own.
pub async fn user_schemas(
    target: &DatabaseTarget,
    connection: &Pooled,
) -> Result<Vec<String>, String> {
    let rows = bounded(
        target,
        "listing schemas",
        connection.client().query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1",
            &[],
        ),
    )
    .await?;
    Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
}

/// The server's version string.
pub async fn server_version(
    target: &DatabaseTarget,
    connection: &Pooled,
) -> Result<String, String> {
    let row = bounded(
        target,
        "SELECT version()",
        connection.client().query_one("SELECT version()", &[]),
    )
    .await?;
    Ok(row.get::<_, String>(0))
}
