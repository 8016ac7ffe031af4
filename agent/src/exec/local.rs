//! Rotation for an agent installed on the target host (`connection=local`): runs
//! `chpasswd` as a child process and feeds the batch on its stdin (never as an argument).
//! Reads the verdict with the same rules as the SSH path (`chpasswd`). Does not use sudo:
//! the agent must already run with the right to change these passwords.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rotor_common::secret::Password;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::timeout;

use crate::exec::chpasswd::{self, BatchVerdict};
use crate::exec::{BeforeChangeReason, ExecError, UnchangedAccount, redact};

/// How errors from this module name the host.
pub const LOCAL_HOST: &str = "this host (local chpasswd)";

/// Changes every password of the batch with one `chpasswd` run on this host, bounded by
/// `time_limit` from start to exit. Results as for
/// [`HostConnection::change_passwords_with_sudo`](crate::exec::HostConnection::change_passwords_with_sudo):
/// `Ok(())` when all changed, `BeforeChange`, `PartlyChanged` or `OutcomeUnknown`.
pub async fn change_passwords_locally(
    changes: &[(String, Password)],
    command: &Path,
    time_limit: Duration,
) -> Result<(), ExecError> {
    chpasswd::check_batch(changes)
        .map_err(|reason| ExecError::before_change(LOCAL_HOST, reason, ""))?;
    let command_name = command.display().to_string();
    let users: Vec<&str> = changes.iter().map(|(user, _)| user.as_str()).collect();
    let secrets: Vec<&str> = changes
        .iter()
        .map(|(_, password)| password.expose())
        .collect();
    let input = chpasswd::batch_input(changes);

    let mut child = Command::new(command)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            let reason = if error.kind() == std::io::ErrorKind::NotFound {
                BeforeChangeReason::CommandNotFound {
                    command: command_name.clone(),
                }
            } else {
                BeforeChangeReason::CannotRun {
                    command: command_name.clone(),
                }
            };
            ExecError::before_change(LOCAL_HOST, reason, error.to_string())
        })?;

    let unknown = |detail: String| {
        ExecError::outcome_unknown(
            LOCAL_HOST,
            format!("{detail}; accounts in the batch: {}", users.join(", ")),
        )
    };
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&input).await?;
            stdin.shutdown().await?;
            // Dropping stdin closes the pipe: chpasswd sees the end of the batch.
        }
        drop(input);
        child.wait_with_output().await
    };
    let output = match timeout(time_limit, run).await {
        // The child is killed on drop; lines already read may have been applied.
        Err(_) => {
            return Err(unknown(format!(
                "{command_name} did not finish within {} s",
                time_limit.as_secs_f32()
            )));
        }
        Ok(Err(error)) => {
            return Err(unknown(format!(
                "talking to {command_name} failed: {error}"
            )));
        }
        Ok(Ok(output)) => output,
    };
    let exit_status = output
        .status
        .code()
        .and_then(|code| u32::try_from(code).ok());
    let stderr = redact(&String::from_utf8_lossy(&output.stderr), &secrets);
    match chpasswd::interpret(&users, exit_status, &stderr) {
        BatchVerdict::AllChanged => Ok(()),
        BatchVerdict::SudoRefused { message } | BatchVerdict::Unknown { detail: message } => {
            Err(unknown(format!(
                "{command_name} ended with {} and said: {message}",
                describe_status(exit_status)
            )))
        }
        BatchVerdict::CommandNotFound { message } => Err(ExecError::before_change(
            LOCAL_HOST,
            BeforeChangeReason::CommandNotFound {
                command: command_name,
            },
            message,
        )),
        BatchVerdict::NoneChanged { message } => Err(ExecError::before_change(
            LOCAL_HOST,
            BeforeChangeReason::ChpasswdRejected {
                users: users.iter().map(|user| (*user).to_owned()).collect(),
                message,
            },
            "",
        )),
        BatchVerdict::Some { changed, unchanged } => {
            let accounts = unchanged
                .into_iter()
                .map(|(user, message)| {
                    let reason = if account_is_missing(&user) {
                        BeforeChangeReason::UnknownUser { user: user.clone() }
                    } else {
                        BeforeChangeReason::ChpasswdRejected {
                            users: vec![user.clone()],
                            message,
                        }
                    };
                    UnchangedAccount { user, reason }
                })
                .collect();
            Err(chpasswd::batch_failure(LOCAL_HOST, changed, accounts))
        }
    }
}

fn describe_status(exit_status: Option<u32>) -> String {
    match exit_status {
        Some(code) => format!("exit status {code}"),
        None => "a signal".to_owned(),
    }
}

/// Whether this host's user database says the account does not exist (any doubt: false).
fn account_is_missing(user: &str) -> bool {
    matches!(nix::unistd::User::from_name(user), Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in chpasswd: records its stdin and arguments, then behaves as told.
    fn fake_chpasswd(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("chpasswd");
        let script = format!(
            "#!/bin/sh\ncat > \"{dir}/stdin\"\necho \"$#:$*\" > \"{dir}/args\"\n{body}\n",
            dir = dir.display()
        );
        std::fs::write(&path, script).expect("write fake chpasswd");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make fake chpasswd executable");
        path
    }

    fn batch(pairs: &[(&str, &str)]) -> Vec<(String, Password)> {
        pairs
            .iter()
            .map(|(user, password)| ((*user).to_owned(), Password::new(*password)))
            .collect()
    }

    #[tokio::test]
    async fn passwords_go_to_stdin_never_to_arguments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = fake_chpasswd(dir.path(), "exit 0");
        change_passwords_locally(
            &batch(&[("app1", "first:pw"), ("app2", "second pw")]),
            &command,
            Duration::from_secs(10),
        )
        .await
        .expect("fake chpasswd succeeds");
        let stdin = std::fs::read_to_string(dir.path().join("stdin")).expect("stdin recorded");
        assert_eq!(stdin, "app1:first:pw\napp2:second pw\n");
        let args = std::fs::read_to_string(dir.path().join("args")).expect("args recorded");
        assert_eq!(args, "0:\n");
    }

    #[tokio::test]
    async fn named_failures_are_reported_per_account() {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = fake_chpasswd(
            dir.path(),
            "echo 'chpasswd: (user nosuchuser) pam_chauthtok() failed, error:' >&2\n\
             echo 'Authentication token manipulation error' >&2\n\
             echo 'chpasswd: (line 2, user nosuchuser) password not changed' >&2\nexit 1",
        );
        let error = change_passwords_locally(
            &batch(&[("app1", "pw-one"), ("nosuchuser", "pw-two")]),
            &command,
            Duration::from_secs(10),
        )
        .await
        .expect_err("one account failed");
        assert_eq!(
            error.outcome_for("app1"),
            crate::exec::AccountOutcome::Changed
        );
        assert_eq!(
            error.outcome_for("nosuchuser"),
            crate::exec::AccountOutcome::Unchanged
        );
        let ExecError::PartlyChanged { unchanged, .. } = &error else {
            panic!("expected PartlyChanged, got {error:?}");
        };
        assert_eq!(
            unchanged[0].reason,
            BeforeChangeReason::UnknownUser {
                user: "nosuchuser".to_owned()
            }
        );
        assert!(!error.to_string().contains("pw-"), "{error}");
    }

    #[tokio::test]
    async fn an_unexplained_failure_is_outcome_unknown_and_redacted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = fake_chpasswd(dir.path(), "echo \"weird: secret-pw\" >&2; exit 3");
        let error = change_passwords_locally(
            &batch(&[("app1", "secret-pw")]),
            &command,
            Duration::from_secs(10),
        )
        .await
        .expect_err("exit 3");
        assert!(
            matches!(error, ExecError::OutcomeUnknown { .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            !text.contains("secret-pw") && text.contains("<redacted>"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_hanging_chpasswd_is_outcome_unknown_after_the_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = fake_chpasswd(dir.path(), "sleep 30");
        let started = std::time::Instant::now();
        let error = change_passwords_locally(
            &batch(&[("app1", "pw")]),
            &command,
            Duration::from_millis(500),
        )
        .await
        .expect_err("timed out");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(error, ExecError::OutcomeUnknown { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn nothing_runs_for_an_invalid_batch_or_a_missing_command() {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = fake_chpasswd(dir.path(), "exit 0");
        let error = change_passwords_locally(
            &batch(&[("app1", "line\nroot:x")]),
            &command,
            Duration::from_secs(10),
        )
        .await
        .expect_err("refused");
        assert!(error.is_certain_before_change());
        assert!(
            !dir.path().join("stdin").exists(),
            "chpasswd must not have run"
        );

        let missing = change_passwords_locally(
            &batch(&[("app1", "pw")]),
            &dir.path().join("no-such-chpasswd"),
            Duration::from_secs(10),
        )
        .await
        .expect_err("missing");
        assert!(matches!(
            missing,
            ExecError::BeforeChange {
                reason: BeforeChangeReason::CommandNotFound { .. },
                ..
            }
        ));
    }
}
