//! Database engine jobs on the agent: turn a wire `DbJob` into PostgreSQL work (`exec::postgres`,
//! `exec::sql`) and the result into a `DbOutcome`.
//!
//! Owns the translation and carries each failure's certainty unchanged: a failure before
//! COMMIT stays "nothing changed", a lost COMMIT is "unknown". A connection goes back to the
//! pool only after a job that ended cleanly. Must not decide what the controller does with an
//! outcome.

use rotor_common::wire::database::{DatabaseTarget, DbJob, DbOutcome, RoleValues};
use rotor_common::wire::{FailureCertainty, JobFailure, JobOutcome};

use crate::exec::postgres::{self, PgError, Pooled};
use crate::exec::sql::{self, Rendered};

fn failed(error: PgError) -> JobOutcome {
    let certainty = match error {
        PgError::BeforeChange(_) => FailureCertainty::BeforeChange,
        PgError::Unknown(_) => FailureCertainty::Unknown,
    };
    JobOutcome::Failed(JobFailure {
        certainty,
        message: error.to_string(),
    })
}

fn done(outcome: DbOutcome) -> JobOutcome {
    JobOutcome::Database(outcome)
}

fn render_all(
    templates: &[String],
    default: &str,
    role: &RoleValues,
    target: &DatabaseTarget,
) -> Vec<Rendered> {
    let mut statements = sql::split_statements(templates);
    if statements.is_empty() {
        statements.push(default.to_string());
    }
    statements
        .iter()
        .map(|template| sql::render(template, role, target.password_authentication))
        .collect()
}

/// Runs one database job to its outcome.
pub async fn run(job: DbJob) -> JobOutcome {
    match job {
        DbJob::Verify { target } => verify(&target).await,
        DbJob::CreateRole {
            target,
            role,
            statements,
        } => create(&target, &role, &statements).await,
        DbJob::RoleExists { target, name } => exists(&target, &name).await,
        DbJob::RevokeRole {
            target,
            name,
            statements,
            terminate_sessions,
        } => revoke(&target, &name, &statements, terminate_sessions).await,
        DbJob::RenewRole {
            target,
            role,
            statements,
        } => {
            let rendered = render_all(&statements, sql::DEFAULT_RENEW, &role, &target);
            change(&target, &rendered, DbOutcome::Renewed).await
        }
        DbJob::SetPassword {
            target,
            role,
            statements,
        } => {
            let rendered = render_all(&statements, sql::DEFAULT_SET_PASSWORD, &role, &target);
            change(&target, &rendered, DbOutcome::PasswordSet).await
        }
        DbJob::RehearseCreation {
            target,
            role,
            statements,
        } => rehearse(&target, &role, &statements).await,
    }
}

async fn rehearse(target: &DatabaseTarget, role: &RoleValues, templates: &[String]) -> JobOutcome {
    let statements: Vec<Rendered> = sql::split_statements(templates)
        .iter()
        .map(|template| sql::render(template, role, target.password_authentication))
        .collect();
    postgres::serialised_creation(target, async {
        let connection = match postgres::connection(target).await {
            Ok(connection) => connection,
            Err(error) => return failed(error),
        };
        match postgres::rehearse(target, &connection, &statements).await {
            Ok(()) => {
                connection.release();
                done(DbOutcome::CreationRehearsed)
            }
            Err(error) => failed(error),
        }
    })
    .await
}

async fn verify(target: &DatabaseTarget) -> JobOutcome {
    let connection = match postgres::connection(target).await {
        Ok(connection) => connection,
        Err(error) => return failed(error),
    };
    match postgres::server_version(target, &connection).await {
        Ok(server_version) => {
            connection.release();
            done(DbOutcome::Verified { server_version })
        }
        Err(text) => failed(PgError::BeforeChange(format!(
            "{}: {text}",
            postgres::describe(target)
        ))),
    }
}

async fn create(target: &DatabaseTarget, role: &RoleValues, templates: &[String]) -> JobOutcome {
    let statements: Vec<Rendered> = sql::split_statements(templates)
        .iter()
        .map(|template| sql::render(template, role, target.password_authentication))
        .collect();
    if statements.is_empty() {
        return failed(PgError::BeforeChange(format!(
            "{}: the role has no creation statements",
            postgres::describe(target)
        )));
    }
    postgres::serialised_creation(target, async {
        let connection = match postgres::connection(target).await {
            Ok(connection) => connection,
            Err(error) => return failed(error),
        };
        match postgres::in_transaction(target, &connection, &statements).await {
            Ok(()) => {
                connection.release();
                done(DbOutcome::Created)
            }
            Err(error) => failed(error),
        }
    })
    .await
}

async fn change(
    target: &DatabaseTarget,
    statements: &[Rendered],
    outcome: DbOutcome,
) -> JobOutcome {
    let connection = match postgres::connection(target).await {
        Ok(connection) => connection,
        Err(error) => return failed(error),
    };
    match postgres::in_transaction(target, &connection, statements).await {
        Ok(()) => {
            connection.release();
            done(outcome)
        }
        Err(error) => failed(error),
    }
}

async fn exists(target: &DatabaseTarget, name: &str) -> JobOutcome {
    let connection = match postgres::connection(target).await {
        Ok(connection) => connection,
        Err(error) => return failed(error),
    };
    match postgres::role_exists(target, &connection, name).await {
        Ok(exists) => {
            connection.release();
            done(DbOutcome::RoleExists { exists })
        }
        Err(text) => failed(PgError::BeforeChange(format!(
            "{}: {text}",
            postgres::describe(target)
        ))),
    }
}

async fn revoke(
    target: &DatabaseTarget,
    name: &str,
    templates: &[String],
    terminate_sessions: bool,
) -> JobOutcome {
    let connection = match postgres::connection(target).await {
        Ok(connection) => connection,
        Err(error) => return failed(error),
    };
    match revoke_on(target, &connection, name, templates, terminate_sessions).await {
        Ok(outcome) => {
            connection.release();
            done(outcome)
        }
        Err(error) => failed(error),
    }
}

async fn revoke_on(
    target: &DatabaseTarget,
    connection: &Pooled,
    name: &str,
    templates: &[String],
    terminate_sessions: bool,
) -> Result<DbOutcome, PgError> {
    let described = postgres::describe(target);
    let before =
        |text: String| PgError::BeforeChange(format!("{described}: revoking role {name}: {text}"));
    if !postgres::role_exists(target, connection, name)
        .await
        .map_err(before)?
    {
        return Ok(DbOutcome::Revoked {
            existed: false,
            sessions_terminated: 0,
        });
    }
    let sessions_terminated = if terminate_sessions {
        postgres::end_sessions(target, connection, name)
            .await
            .map_err(before)?
    } else {
        0
    };
    let role = RoleValues {
        name: name.to_string(),
        password: None,
        expiration: None,
    };
    let statements: Vec<Rendered> = if templates.iter().all(|text| text.trim().is_empty()) {
        let schemas = postgres::user_schemas(target, connection)
            .await
            .map_err(before)?;
        sql::default_revocation(name, &target.database, &schemas)
            .into_iter()
            .map(|statement| Rendered {
                sql: zeroize::Zeroizing::new(statement.clone()),
                shown: statement,
            })
            .collect()
    } else {
        sql::split_statements(templates)
            .iter()
            .map(|template| sql::render(template, &role, target.password_authentication))
            .collect()
    };
    postgres::in_transaction(target, connection, &statements)
        .await
        .map_err(|error| match error {
            PgError::BeforeChange(text) => PgError::BeforeChange(format!(
                "{text} (revoking role {name}: fix what blocks it, e.g. grants in another database, or the role's revocation_statements; Rotor retries)"
            )),
            unknown => unknown,
        })?;
    Ok(DbOutcome::Revoked {
        existed: true,
        sessions_terminated,
    })
}
