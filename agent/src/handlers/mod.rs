//! The agent's job handlers: what each `JobKind` does, as a typed outcome.
//!
//! Owns mapping a job to the code that performs it. Must not know about QUIC or the journal:
//! `link` delivers jobs here and carries outcomes back.

mod database;
mod os;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rotor_common::wire::{JobKind, JobOutcome};

/// What performs jobs for a link: [`real`] in the agent; the benchmark's simulated agents
/// pass one that answers at once, so they measure the controller and the protocol only.
pub type JobHandler =
    Arc<dyn Fn(JobKind) -> Pin<Box<dyn Future<Output = JobOutcome> + Send>> + Send + Sync>;

/// The agent's own handlers ([`run`]).
pub fn real() -> JobHandler {
    Arc::new(|kind| Box::pin(run(kind)))
}

/// Runs one job to its outcome. Every failure is an outcome (`JobOutcome::Failed`), never a
/// panic, so the controller always learns what happened.
pub async fn run(kind: JobKind) -> JobOutcome {
    match kind {
        JobKind::Echo { payload } => JobOutcome::Echo { payload },
        JobKind::Os(job) => os::run(job).await,
        JobKind::Database(job) => database::run(job).await,
    }
}
