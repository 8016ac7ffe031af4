//! The OS engine's side of the change core (`crate::change`): an account as a
//! [`ChangeTarget`], that is how its rotation job and its login probe are built, and what their
//! outcomes say about this one account.
//!
//! Owns the reading of an agent's answers for one account of a batch (a parent's children
//! rotate in one job, each reading its own line). The decisions (commit, drop, probe, out of
//! sync) and the proof that allows a commit are the change core's. Must not touch the store,
//! the clock or the network.

use rotor_common::ids::JobId;
use rotor_common::secret::Password;
use rotor_common::wire::os::{AccountChange, AccountResult, HostSpec, OsJob, OsOutcome};
use rotor_common::wire::{FailureCertainty, JobKind, JobOutcome};

use crate::change::{Answer, ChangeTarget, ProbeAnswer};

/// How a host's password is changed: the parts of a rotation job that are the same for every
/// account of a batch.
#[derive(Clone)]
pub enum Recipe {
    /// `chpasswd` on the agent's own machine.
    Local { command: String },
    /// SSH as the parent, `sudo chpasswd` for the children.
    Parent {
        host: HostSpec,
        parent_username: String,
        parent_password: Password,
        command: String,
    },
    /// SSH as the account itself, `passwd` in a PTY.
    Itself { host: HostSpec, current: Password },
}

impl Recipe {
    /// The rotation job for a batch of changes (one change for [`Recipe::Itself`]).
    pub fn job(&self, mut changes: Vec<AccountChange>) -> Option<OsJob> {
        Some(match self {
            Recipe::Local { command } => OsJob::RotateLocal {
                command: command.clone(),
                changes,
            },
            Recipe::Parent {
                host,
                parent_username,
                parent_password,
                command,
            } => OsJob::RotateWithParent {
                host: host.clone(),
                parent_username: parent_username.clone(),
                parent_password: parent_password.clone(),
                command: command.clone(),
                changes,
            },
            Recipe::Itself { host, current } => {
                let change = changes.pop()?;
                OsJob::RotateSelf {
                    host: host.clone(),
                    username: change.username,
                    current_password: current.clone(),
                    new_password: change.new_password,
                }
            }
        })
    }
}

/// One account of a host, as the change core sees it.
pub struct AccountTarget {
    pub host_name: String,
    pub username: String,
    /// For the probe: where to log in.
    pub host: HostSpec,
    /// The password the store holds as current (the probe's second try).
    pub current: Password,
    pub recipe: Recipe,
}

impl ChangeTarget for AccountTarget {
    type Candidate = Password;

    fn describe(&self) -> String {
        format!("account {} on host {}", self.username, self.host_name)
    }

    fn change_job(&self, _job: JobId, candidate: &Password) -> JobKind {
        let change = AccountChange {
            username: self.username.clone(),
            new_password: candidate.clone(),
        };
        match self.recipe.job(vec![change]) {
            Some(job) => JobKind::Os(job),
            // Unreachable: one change always makes a job.
            None => JobKind::Echo { payload: vec![] },
        }
    }

    fn read_answer(&self, outcome: &JobOutcome) -> Answer {
        read_answer(outcome, &self.username)
    }

    fn probe_job(&self, candidate: &Password) -> JobKind {
        JobKind::Os(OsJob::VerifyLogin {
            host: self.host.clone(),
            username: self.username.clone(),
            candidates: vec![candidate.clone(), self.current.clone()],
        })
    }

    fn read_probe(&self, outcome: &JobOutcome) -> ProbeAnswer {
        read_probe(outcome)
    }
}

/// What a rotation job's outcome says about `username`.
pub fn read_answer(outcome: &JobOutcome, username: &str) -> Answer {
    match outcome {
        JobOutcome::Failed(failure) => match failure.certainty {
            FailureCertainty::BeforeChange => Answer::NotChanged(failure.message.clone()),
            FailureCertainty::Unknown => Answer::Unknown(failure.message.clone()),
        },
        JobOutcome::Os(OsOutcome::Rotated { accounts, .. }) => {
            match accounts.iter().find(|(name, _)| name == username) {
                Some((_, AccountResult::Changed)) => Answer::Changed,
                Some((_, AccountResult::Unchanged { reason })) => {
                    Answer::NotChanged(reason.clone())
                }
                Some((_, AccountResult::Unknown { detail })) => Answer::Unknown(detail.clone()),
                None => Answer::Unknown(format!("the agent's answer did not mention {username}")),
            }
        }
        _ => Answer::Unknown("the agent answered a rotation with an unrelated outcome".into()),
    }
}

/// What a login probe (candidates `[candidate, current]`) found.
pub fn read_probe(outcome: &JobOutcome) -> ProbeAnswer {
    match outcome {
        JobOutcome::Os(OsOutcome::Login { accepted, .. }) => match accepted {
            Some(0) => ProbeAnswer::CandidateWorks,
            Some(1) => ProbeAnswer::CurrentWorks,
            Some(_) | None => ProbeAnswer::NeitherWorks,
        },
        JobOutcome::Failed(failure) => ProbeAnswer::CouldNotTell(failure.message.clone()),
        _ => ProbeAnswer::CouldNotTell("unexpected answer to a login check".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_common::wire::JobFailure;

    #[test]
    fn certain_failures_are_not_changed_and_uncertain_ones_unknown() {
        let failed = |certainty| {
            JobOutcome::Failed(JobFailure {
                certainty,
                message: "m".into(),
            })
        };
        assert_eq!(
            read_answer(&failed(FailureCertainty::BeforeChange), "a"),
            Answer::NotChanged("m".into())
        );
        assert_eq!(
            read_answer(&failed(FailureCertainty::Unknown), "a"),
            Answer::Unknown("m".into())
        );
    }

    #[test]
    fn each_account_reads_its_own_line_and_silence_is_unknown() {
        let outcome = JobOutcome::Os(OsOutcome::Rotated {
            accounts: vec![
                ("a".into(), AccountResult::Changed),
                (
                    "c".into(),
                    AccountResult::Unchanged {
                        reason: "no such user".into(),
                    },
                ),
            ],
            host_key: None,
        });
        assert_eq!(read_answer(&outcome, "a"), Answer::Changed);
        assert_eq!(
            read_answer(&outcome, "c"),
            Answer::NotChanged("no such user".into())
        );
        assert!(
            matches!(read_answer(&outcome, "b"), Answer::Unknown(_)),
            "an unmentioned account must be probed"
        );
    }

    #[test]
    fn a_probe_reads_which_password_logged_in() {
        let login = |accepted| {
            JobOutcome::Os(OsOutcome::Login {
                accepted,
                host_key: None,
            })
        };
        assert_eq!(read_probe(&login(Some(0))), ProbeAnswer::CandidateWorks);
        assert_eq!(read_probe(&login(Some(1))), ProbeAnswer::CurrentWorks);
        assert_eq!(read_probe(&login(None)), ProbeAnswer::NeitherWorks);
        assert!(matches!(
            read_probe(&JobOutcome::Echo { payload: vec![] }),
            ProbeAnswer::CouldNotTell(_)
        ));
    }
}
