//! OS engine jobs on the agent: turn a wire `OsJob` into calls of `exec` (SSH, `sudo
//! chpasswd`, `passwd` in a PTY, local `chpasswd`) and the result into an `OsOutcome`.
//!
//! Owns the translation and the rule that a failure's certainty is carried unchanged (a
//! "nothing changed" stays certain, anything else is "unknown"). Must not decide what the
//! controller does with an outcome.

use std::path::Path;
use std::time::Duration;

use rotor_common::secret::Password;
use rotor_common::wire::os::{
    AccountChange, AccountResult, HostKeyObserved, HostKeyRule, HostSpec, OsJob, OsOutcome,
};
use rotor_common::wire::{FailureCertainty, JobFailure, JobOutcome};

use crate::exec::HostKeySeen;
use crate::exec::dialog::PromptSet;
use crate::exec::target::{HostKeyPolicy, HostTarget};
use crate::exec::{AccountOutcome, BeforeChangeReason, ExecError, HostConnection};

fn failure(error: &ExecError) -> JobOutcome {
    JobOutcome::Failed(JobFailure {
        certainty: if error.is_certain_before_change() {
            FailureCertainty::BeforeChange
        } else {
            FailureCertainty::Unknown
        },
        message: error.to_string(),
    })
}

fn observed(seen: HostKeySeen) -> HostKeyObserved {
    HostKeyObserved {
        openssh: seen.openssh,
        fingerprint: seen.fingerprint,
    }
}

fn target(spec: HostSpec) -> Result<HostTarget, JobOutcome> {
    let prompts = match &spec.passwd_prompts_json {
        None => PromptSet::default(),
        Some(json) => serde_json::from_str::<PromptSet>(json).map_err(|error| {
            JobOutcome::Failed(JobFailure {
                certainty: FailureCertainty::BeforeChange,
                message: format!(
                    "host {}: the passwd_prompts setting is not a valid prompt set ({error}); nothing was changed",
                    spec.name
                ),
            })
        })?,
    };
    Ok(HostTarget {
        name: spec.name,
        address: spec.address,
        port: spec.port,
        host_key: match spec.host_key {
            HostKeyRule::Pinned(key) => HostKeyPolicy::Pinned(key),
            HostKeyRule::TrustOnFirstUse { known } => HostKeyPolicy::TrustOnFirstUse { known },
            HostKeyRule::Reject => HostKeyPolicy::Reject,
        },
        connect_timeout: Duration::from_millis(spec.connect_timeout_ms.max(1000)),
        step_timeout: Duration::from_millis(spec.step_timeout_ms.max(1000)),
        prompts,
    })
}

fn pairs(changes: Vec<AccountChange>) -> Vec<(String, Password)> {
    changes
        .into_iter()
        .map(|change| (change.username, change.new_password))
        .collect()
}

/// Per-account results after a batch operation.
fn per_account(users: &[String], result: &Result<(), ExecError>) -> Vec<(String, AccountResult)> {
    users
        .iter()
        .map(|user| {
            let account = match result {
                Ok(()) => AccountResult::Changed,
                Err(error) => match error.outcome_for(user) {
                    AccountOutcome::Changed => AccountResult::Changed,
                    AccountOutcome::Unchanged => AccountResult::Unchanged {
                        reason: error.to_string(),
                    },
                    AccountOutcome::Unknown => AccountResult::Unknown {
                        detail: error.to_string(),
                    },
                },
            };
            (user.clone(), account)
        })
        .collect()
}

pub async fn run(job: OsJob) -> JobOutcome {
    match job {
        OsJob::VerifyLogin {
            host,
            username,
            candidates,
        } => verify_login(host, username, candidates).await,
        OsJob::RotateWithParent {
            host,
            parent_username,
            parent_password,
            command,
            changes,
        } => {
            let target = match target(host) {
                Ok(target) => target,
                Err(outcome) => return outcome,
            };
            let changes = pairs(changes);
            let users: Vec<String> = changes.iter().map(|(user, _)| user.clone()).collect();
            let (mut connection, seen) =
                match HostConnection::connect(&target, &parent_username, &parent_password).await {
                    Ok(connected) => connected,
                    Err(error) => return failure(&error),
                };
            let result = connection
                .change_passwords_with_sudo(&command, &changes)
                .await;
            connection.close().await;
            if let Err(error) = &result
                && error.is_certain_before_change()
            {
                return failure(error);
            }
            JobOutcome::Os(OsOutcome::Rotated {
                accounts: per_account(&users, &result),
                host_key: Some(observed(seen)),
            })
        }
        OsJob::RotateSelf {
            host,
            username,
            current_password,
            new_password,
        } => {
            let target = match target(host) {
                Ok(target) => target,
                Err(outcome) => return outcome,
            };
            let (mut connection, seen) =
                match HostConnection::connect(&target, &username, &current_password).await {
                    Ok(connected) => connected,
                    Err(error) => return failure(&error),
                };
            let result = connection
                .change_own_password_with_passwd(&username, &current_password, &new_password)
                .await;
            connection.close().await;
            if let Err(error) = &result
                && error.is_certain_before_change()
            {
                return failure(error);
            }
            JobOutcome::Os(OsOutcome::Rotated {
                accounts: per_account(&[username], &result),
                host_key: Some(observed(seen)),
            })
        }
        OsJob::RotateLocal { command, changes } => {
            let changes = pairs(changes);
            let users: Vec<String> = changes.iter().map(|(user, _)| user.clone()).collect();
            let result = crate::exec::local::change_passwords_locally(
                &changes,
                Path::new(&command),
                Duration::from_secs(60),
            )
            .await;
            if let Err(error) = &result
                && error.is_certain_before_change()
            {
                return failure(error);
            }
            JobOutcome::Os(OsOutcome::Rotated {
                accounts: per_account(&users, &result),
                host_key: None,
            })
        }
    }
}

/// Logs in with each candidate in turn; the first that works wins. A rejected password is
/// an answer, not a failure; anything else (unreachable host, key mismatch) is a failure.
async fn verify_login(host: HostSpec, username: String, candidates: Vec<Password>) -> JobOutcome {
    let target = match target(host) {
        Ok(target) => target,
        Err(outcome) => return outcome,
    };
    for (index, candidate) in candidates.iter().enumerate() {
        match HostConnection::connect(&target, &username, candidate).await {
            Ok((connection, seen)) => {
                connection.close().await;
                return JobOutcome::Os(OsOutcome::Login {
                    accepted: Some(index as u32),
                    host_key: Some(observed(seen)),
                });
            }
            Err(ExecError::BeforeChange {
                reason: BeforeChangeReason::AuthenticationFailed { .. },
                ..
            }) => continue,
            Err(error) => return failure(&error),
        }
    }
    JobOutcome::Os(OsOutcome::Login {
        accepted: None,
        host_key: None,
    })
}
