//! The agent's job handlers: what each `JobKind` does, as a typed outcome.
//!
//! Owns mapping a job to the code that performs it. Must not know about QUIC or the journal:
//! `link` delivers jobs here and carries outcomes back.

mod os;

use rotor_common::wire::{JobKind, JobOutcome};

/// Runs one job to its outcome. Every failure is an outcome (`JobOutcome::Failed`), never a
/// panic, so the controller always learns what happened.
pub async fn run(kind: JobKind) -> JobOutcome {
    match kind {
        JobKind::Echo { payload } => JobOutcome::Echo { payload },
        JobKind::Os(job) => os::run(job).await,
    }
}
