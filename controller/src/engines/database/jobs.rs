//! Running database jobs through the dispatcher on an agent of the connection's site, and
//! reading their ends as the engine needs them.
//!
//! Owns the mapping from dispatch results to [`DbJobEnd`], keeping "certainly nothing
//! changed" apart from "unknown". Never touches QUIC (the dispatcher does) and decides
//! nothing about leases.

use std::time::Duration;

use rotor_common::ids::{AgentId, JobId};
use rotor_common::wire::database::{DbJob, DbOutcome};
use rotor_common::wire::{FailureCertainty, JobKind, JobOutcome};

use crate::dispatch::{DispatchError, Dispatcher, JobTarget, registry};
use crate::store::Store;

/// How long an agent has for one database job (connect, statements, answer).
pub const JOB_DEADLINE: Duration = Duration::from_secs(60);

/// How a database job ended.
#[derive(Debug)]
pub enum DbJobEnd {
    /// The agent answered with an outcome.
    Done { agent: AgentId, outcome: DbOutcome },
    /// Certain that nothing changed on the database.
    NotChanged(String),
    /// It may or may not have changed.
    Unknown(String),
}

/// Runs `job` under `job_id` on an agent of `site`, for the connection named `connection`
/// (in messages).
pub async fn run(
    dispatcher: &Dispatcher,
    store: &Store,
    site: &str,
    connection: &str,
    job_id: JobId,
    job: DbJob,
) -> DbJobEnd {
    if dispatcher.connected_agents(site).is_empty() {
        let enrolled = registry::sites_with_agents(store)
            .map(|sites| sites.iter().any(|known| known == site))
            .unwrap_or(true);
        if !enrolled {
            return DbJobEnd::NotChanged(format!(
                "{connection} is in site '{site}', which has no enrolled agent: enroll one that reaches the database (rotor write agents/enroll site={site}), or set site= on the connection"
            ));
        }
    }
    let result = dispatcher
        .submit(
            &JobTarget::Site(site.to_string()),
            job_id,
            JobKind::Database(job),
            JOB_DEADLINE,
        )
        .await;
    match result {
        Ok((agent, JobOutcome::Database(outcome))) => DbJobEnd::Done { agent, outcome },
        Ok((_, JobOutcome::Failed(failure))) => match failure.certainty {
            FailureCertainty::BeforeChange => DbJobEnd::NotChanged(failure.message),
            FailureCertainty::Unknown => DbJobEnd::Unknown(failure.message),
        },
        Ok((agent, other)) => DbJobEnd::Unknown(format!(
            "agent {agent} answered a database job with an unexpected outcome ({other:?}); is it a different version?"
        )),
        Err(error @ DispatchError::OutcomeUnknown { .. }) => {
            DbJobEnd::Unknown(format!("{connection}: {error}"))
        }
        Err(error) => DbJobEnd::NotChanged(format!("{connection}: {error}")),
    }
}
