//! The rotation protocol's decisions, free of IO: what to do with each account of a batch
//! once its job answered (or failed to), and what a verification login proves.
//!
//! Owns the rule that never loses a password: a certain failure drops the candidate, an
//! uncertain one leads to verification, and only evidence from the host (it said Changed, or
//! a login with the candidate worked) yields a [`PasswordConfirmed`]. The driver applies the
//! decisions to the store. Must not touch the store, the clock or the network.

use rotor_common::secret::Password;
use rotor_common::wire::os::{AccountResult, OsOutcome};
use rotor_common::wire::{FailureCertainty, JobOutcome};

use super::model::PasswordConfirmed;

/// What to do with one account after a rotation attempt.
pub enum Decision {
    /// The host has the candidate: commit it.
    Commit(PasswordConfirmed),
    /// The host certainly kept the current password: drop the candidate, retry later.
    Drop { reason: String },
    /// Nobody knows: log in with the candidate, then the current password.
    Verify { detail: String },
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Commit(_) => formatter.write_str("Commit"),
            Decision::Drop { reason } => write!(formatter, "Drop({reason})"),
            Decision::Verify { detail } => write!(formatter, "Verify({detail})"),
        }
    }
}

/// How a job ended, as the dispatcher reported it.
pub enum JobEnd {
    Answered(JobOutcome),
    /// The job was never accepted by an agent: certain it did not run.
    NotRun(String),
    /// Accepted, then silence (agent lost, deadline passed): it may have run.
    Unknown(String),
}

/// Decides for each `(username, candidate)` of a batch.
pub fn decide_after_rotation(
    end: JobEnd,
    batch: Vec<(String, Password)>,
) -> Vec<(String, Decision)> {
    match end {
        JobEnd::NotRun(reason) => batch
            .into_iter()
            .map(|(user, _)| {
                (
                    user,
                    Decision::Drop {
                        reason: reason.clone(),
                    },
                )
            })
            .collect(),
        JobEnd::Unknown(detail) => batch
            .into_iter()
            .map(|(user, _)| {
                (
                    user,
                    Decision::Verify {
                        detail: detail.clone(),
                    },
                )
            })
            .collect(),
        JobEnd::Answered(JobOutcome::Failed(failure)) => batch
            .into_iter()
            .map(|(user, _)| {
                let decision = match failure.certainty {
                    FailureCertainty::BeforeChange => Decision::Drop {
                        reason: failure.message.clone(),
                    },
                    FailureCertainty::Unknown => Decision::Verify {
                        detail: failure.message.clone(),
                    },
                };
                (user, decision)
            })
            .collect(),
        JobEnd::Answered(JobOutcome::Os(OsOutcome::Rotated { accounts, .. })) => batch
            .into_iter()
            .map(|(user, candidate)| {
                let reported = accounts
                    .iter()
                    .find(|(name, _)| *name == user)
                    .map(|(_, result)| result);
                let decision = match reported {
                    Some(AccountResult::Changed) => {
                        Decision::Commit(PasswordConfirmed::from_host_evidence(candidate))
                    }
                    Some(AccountResult::Unchanged { reason }) => Decision::Drop {
                        reason: reason.clone(),
                    },
                    Some(AccountResult::Unknown { detail }) => Decision::Verify {
                        detail: detail.clone(),
                    },
                    None => Decision::Verify {
                        detail: format!("the agent's answer did not mention {user}"),
                    },
                };
                (user, decision)
            })
            .collect(),
        JobEnd::Answered(_) => batch
            .into_iter()
            .map(|(user, _)| {
                (
                    user,
                    Decision::Verify {
                        detail: "the agent answered a rotation with an unrelated outcome".into(),
                    },
                )
            })
            .collect(),
    }
}

/// What a verification login (candidates `[candidate, current]`) proved.
pub enum Verified {
    /// The candidate logs in: commit it.
    Candidate(PasswordConfirmed),
    /// The current password still logs in: drop the candidate.
    Current,
    /// Neither logs in: the account is out of sync.
    Neither,
    /// The check itself could not be made (host unreachable...): keep verifying later.
    Inconclusive(String),
}

pub fn decide_after_verification(end: JobEnd, candidate: Password) -> Verified {
    match end {
        JobEnd::Answered(JobOutcome::Os(OsOutcome::Login { accepted, .. })) => match accepted {
            Some(0) => Verified::Candidate(PasswordConfirmed::from_host_evidence(candidate)),
            Some(1) => Verified::Current,
            Some(_) | None => Verified::Neither,
        },
        JobEnd::Answered(JobOutcome::Failed(failure)) => Verified::Inconclusive(failure.message),
        JobEnd::Answered(_) => Verified::Inconclusive("unexpected answer to a login check".into()),
        JobEnd::NotRun(reason) | JobEnd::Unknown(reason) => Verified::Inconclusive(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_common::wire::JobFailure;

    fn batch() -> Vec<(String, Password)> {
        vec![
            ("a".into(), Password::new("pa")),
            ("b".into(), Password::new("pb")),
        ]
    }

    #[test]
    fn certain_failures_drop_and_uncertain_ones_verify() {
        let decisions = decide_after_rotation(JobEnd::NotRun("no agent".into()), batch());
        assert!(
            decisions
                .iter()
                .all(|(_, d)| matches!(d, Decision::Drop { .. }))
        );
        let decisions = decide_after_rotation(JobEnd::Unknown("agent lost".into()), batch());
        assert!(
            decisions
                .iter()
                .all(|(_, d)| matches!(d, Decision::Verify { .. }))
        );
        let failed = |certainty| {
            JobEnd::Answered(JobOutcome::Failed(JobFailure {
                certainty,
                message: "m".into(),
            }))
        };
        let decisions = decide_after_rotation(failed(FailureCertainty::BeforeChange), batch());
        assert!(
            decisions
                .iter()
                .all(|(_, d)| matches!(d, Decision::Drop { .. }))
        );
        let decisions = decide_after_rotation(failed(FailureCertainty::Unknown), batch());
        assert!(
            decisions
                .iter()
                .all(|(_, d)| matches!(d, Decision::Verify { .. }))
        );
    }

    #[test]
    fn per_account_answers_are_honoured_and_silence_is_verified() {
        let outcome = JobOutcome::Os(OsOutcome::Rotated {
            accounts: vec![("a".into(), AccountResult::Changed)],
            host_key: None,
        });
        let decisions = decide_after_rotation(JobEnd::Answered(outcome), batch());
        match &decisions[0].1 {
            Decision::Commit(proof) => assert_eq!(proof.password.expose(), "pa"),
            other => panic!("expected Commit, got {other:?}"),
        }
        assert!(
            matches!(decisions[1].1, Decision::Verify { .. }),
            "unmentioned account must be verified"
        );
    }

    #[test]
    fn verification_commits_only_a_candidate_that_logged_in() {
        let login = |accepted| {
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login {
                accepted,
                host_key: None,
            }))
        };
        assert!(matches!(
            decide_after_verification(login(Some(0)), Password::new("c")),
            Verified::Candidate(_)
        ));
        assert!(matches!(
            decide_after_verification(login(Some(1)), Password::new("c")),
            Verified::Current
        ));
        assert!(matches!(
            decide_after_verification(login(None), Password::new("c")),
            Verified::Neither
        ));
        assert!(matches!(
            decide_after_verification(JobEnd::Unknown("x".into()), Password::new("c")),
            Verified::Inconclusive(_)
        ));
    }
}
