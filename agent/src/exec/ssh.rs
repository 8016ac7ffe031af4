//! One SSH connection to one host (`HostConnection`, russh): host-key check, password or
//! keyboard-interactive login, then `sudo -n chpasswd` batches or a `passwd` dialog in a PTY.
//!
//! The host key is checked during the key exchange, before any credential is sent, and
//! authentication needs the `HostKeyVerified` proof only that check produces. Every network
//! wait is bounded by the target's timeouts. Decisions about output live in `dialog` and
//! `chpasswd`; this file only moves bytes. Passwords travel only inside the encrypted
//! session (auth messages, channel stdin), never on a command line or in an error.

use std::time::Duration;

use rotor_common::names::{quote_for_message, validate_username};
use rotor_common::secret::Password;
use russh::client;
use russh::{Channel, ChannelMsg, Disconnect, Pty};
use tokio::time::timeout;
use zeroize::Zeroizing;

use crate::exec::chpasswd::{self, BatchVerdict, batch_failure};
use crate::exec::dialog::{Answer, DialogFailure, DialogStep, PasswdDialog};
pub use crate::exec::host_key::HostKeySeen;
use crate::exec::host_key::{CheckedSession, open_verified_session};
pub use crate::exec::login::LoginCheck;
use crate::exec::login::authenticate;
use crate::exec::target::{HostTarget, check_password_sendable};
use crate::exec::{BeforeChangeReason, ExecError, UnchangedAccount, redact};

/// The `chpasswd` that parent-managed rotation runs under `sudo -n`.
pub const DEFAULT_CHPASSWD_COMMAND: &str = "/usr/sbin/chpasswd";
/// The `passwd` that self-managed rotation runs in a PTY.
pub const PASSWD_COMMAND: &str = "/usr/bin/passwd";
/// Most stderr/PTY output kept from one remote command, in bytes.
const OUTPUT_LIMIT_BYTES: usize = 64 * 1024;

/// One authenticated SSH connection to one host, as one account. Dropping it closes the
/// connection; [`HostConnection::close`] does so politely.
pub struct HostConnection {
    session: CheckedSession,
    /// `name (address:port)`, for messages.
    host: String,
    /// The account this connection is logged in as.
    user: String,
    step_timeout: Duration,
    prompts: crate::exec::dialog::PromptSet,
}

impl HostConnection {
    /// Connects, checks the host key against `target.host_key`, and logs in as `user`.
    /// Returns the key the server offered (record it when trusting on first use).
    /// A refused password is `BeforeChange { reason: AuthenticationFailed }`.
    pub async fn connect(
        target: &HostTarget,
        user: &str,
        password: &Password,
    ) -> Result<(HostConnection, HostKeySeen), ExecError> {
        let host = target.describe();
        validate_username(user)
            .map_err(|invalid| ExecError::before_change(&host, invalid.into(), ""))?;
        let (mut session, verified) = open_verified_session(target, &host).await?;
        match authenticate(
            &mut session,
            &verified,
            &host,
            user,
            password,
            target.step_timeout,
        )
        .await?
        {
            LoginCheck::Accepted => Ok((
                HostConnection {
                    session,
                    host,
                    user: user.to_owned(),
                    step_timeout: target.step_timeout,
                    prompts: target.prompts.clone(),
                },
                verified.seen().clone(),
            )),
            LoginCheck::Rejected => Err(ExecError::before_change(
                &host,
                BeforeChangeReason::AuthenticationFailed {
                    user: user.to_owned(),
                },
                "",
            )),
        }
    }

    /// Asks the server whether `password` logs `user` in, for verification after an
    /// uncertain outcome. A refused password is `Ok(Rejected)`; only an explicit refusal by
    /// the server counts as one (a dropped connection is an error, never "rejected").
    pub async fn try_login(
        target: &HostTarget,
        user: &str,
        password: &Password,
    ) -> Result<LoginCheck, ExecError> {
        let host = target.describe();
        validate_username(user)
            .map_err(|invalid| ExecError::before_change(&host, invalid.into(), ""))?;
        let (mut session, verified) = open_verified_session(target, &host).await?;
        let verdict = authenticate(
            &mut session,
            &verified,
            &host,
            user,
            password,
            target.step_timeout,
        )
        .await?;
        disconnect(&session, target.step_timeout).await;
        Ok(verdict)
    }

    /// The account this connection is logged in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `name (address:port)` of the host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Parent-managed rotation: runs `sudo -n <command>` without a PTY and writes every
    /// `user:password` line to its stdin in one go (one connection, one chpasswd for the
    /// whole batch). Nothing is sent unless every username and password is valid.
    ///
    /// `Ok(())` means every account changed. Otherwise: `BeforeChange` when nothing changed,
    /// `PartlyChanged` when chpasswd named the accounts it did not change (the others did),
    /// `OutcomeUnknown` when the batch was sent and the result cannot be read (timeout,
    /// disconnect, unexplained failure): verify every account of the batch.
    pub async fn change_passwords_with_sudo(
        &mut self,
        command: &str,
        changes: &[(String, Password)],
    ) -> Result<(), ExecError> {
        chpasswd::check_batch(changes)
            .map_err(|reason| ExecError::before_change(&self.host, reason, ""))?;
        check_command_path(command)
            .map_err(|reason| ExecError::before_change(&self.host, reason, ""))?;
        let users: Vec<&str> = changes.iter().map(|(user, _)| user.as_str()).collect();
        let secrets: Vec<&str> = changes
            .iter()
            .map(|(_, password)| password.expose())
            .collect();
        let input = chpasswd::batch_input(changes);

        let mut channel = self.open_session_channel().await?;
        let command_line = format!("sudo -n -- {command}");
        let sent = timeout(self.step_timeout, channel.exec(true, command_line)).await;
        self.confirm_request(&mut channel, "starting sudo", sent)
            .await?;

        // From the first byte of stdin on, a line may have been applied.
        let unknown = |detail: String| {
            ExecError::outcome_unknown(
                &self.host,
                format!("{detail}; accounts in the batch: {}", users.join(", ")),
            )
        };
        let written = timeout(self.step_timeout, async {
            channel.data(&input[..]).await?;
            channel.eof().await
        })
        .await;
        drop(input);
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(unknown(format!(
                    "sending the batch to chpasswd failed: {error}"
                )));
            }
            Err(_) => {
                return Err(unknown(format!(
                    "sending the batch to chpasswd took longer than {} s",
                    self.step_timeout.as_secs()
                )));
            }
        }

        let finished = match collect_until_closed(&mut channel, self.step_timeout).await {
            Ok(finished) => finished,
            Err(problem) => {
                return Err(unknown(format!(
                    "{problem} after the batch was sent to chpasswd"
                )));
            }
        };
        let stderr = redact(&finished.output, &secrets);
        match chpasswd::interpret(&users, finished.exit_status, &stderr) {
            BatchVerdict::AllChanged => Ok(()),
            BatchVerdict::SudoRefused { message } => Err(ExecError::before_change(
                &self.host,
                BeforeChangeReason::SudoRefused {
                    user: self.user.clone(),
                    command: command.to_owned(),
                },
                message,
            )),
            BatchVerdict::CommandNotFound { message } => Err(ExecError::before_change(
                &self.host,
                BeforeChangeReason::CommandNotFound {
                    command: command.to_owned(),
                },
                message,
            )),
            BatchVerdict::NoneChanged { message } => Err(ExecError::before_change(
                &self.host,
                BeforeChangeReason::ChpasswdRejected {
                    users: users.iter().map(|user| (*user).to_owned()).collect(),
                    message: message.clone(),
                },
                "",
            )),
            BatchVerdict::Some { changed, unchanged } => {
                let mut accounts = Vec::new();
                for (user, message) in unchanged {
                    let reason = if self.account_is_missing(&user).await {
                        BeforeChangeReason::UnknownUser { user: user.clone() }
                    } else {
                        BeforeChangeReason::ChpasswdRejected {
                            users: vec![user.clone()],
                            message,
                        }
                    };
                    accounts.push(UnchangedAccount { user, reason });
                }
                Err(batch_failure(&self.host, changed, accounts))
            }
            BatchVerdict::Unknown { detail } => Err(unknown(detail)),
        }
    }

    /// Self-managed rotation: runs `passwd` in a PTY (with `LC_ALL=C`) as the logged-in
    /// account and answers its prompts. `user` must be the account this connection is
    /// logged in as. A rejected current or new password is `BeforeChange`; a missing verdict
    /// after the new password was typed is `OutcomeUnknown`.
    pub async fn change_own_password_with_passwd(
        &mut self,
        user: &str,
        current: &Password,
        new: &Password,
    ) -> Result<(), ExecError> {
        let host = self.host.clone();
        let refuse = |reason| ExecError::before_change(&host, reason, "");
        validate_username(user).map_err(|invalid| refuse(invalid.into()))?;
        if user != self.user {
            return Err(refuse(BeforeChangeReason::InvalidBatch {
                problem: format!(
                    "passwd changes only the logged-in account's password: logged in as {}, asked to change {user}",
                    self.user
                ),
            }));
        }
        for password in [current, new] {
            check_password_sendable(password).map_err(|problem| {
                refuse(BeforeChangeReason::UnsendablePassword {
                    user: user.to_owned(),
                    problem,
                })
            })?;
        }
        self.prompts
            .validate()
            .map_err(|problem| refuse(BeforeChangeReason::InvalidPrompts { problem }))?;

        let mut channel = self.open_session_channel().await?;
        // No echo from the start: passwd turns it off for its prompts anyway, and a
        // misread prompt must not make a password appear in the output.
        let sent = timeout(
            self.step_timeout,
            channel.request_pty(true, "dumb", 200, 24, 0, 0, &[(Pty::ECHO, 0)]),
        )
        .await;
        self.confirm_request(&mut channel, "requesting a PTY", sent)
            .await?;
        let command_line = format!("env LC_ALL=C LANG=C {PASSWD_COMMAND}");
        let sent = timeout(self.step_timeout, channel.exec(true, command_line)).await;
        self.confirm_request(&mut channel, "starting passwd", sent)
            .await?;

        let outcome = self.drive_passwd(&mut channel, current, new).await;
        // A refused dialog leaves passwd waiting for input: closing hangs it up, unchanged.
        let _ = timeout(self.step_timeout, channel.close()).await;
        outcome.map_err(|failure| self.dialog_failure_to_error(failure, user, current, new))
    }

    /// Closes the connection politely (errors are irrelevant at this point).
    pub async fn close(self) {
        disconnect(&self.session, self.step_timeout).await;
    }

    async fn drive_passwd(
        &self,
        channel: &mut Channel<client::Msg>,
        current: &Password,
        new: &Password,
    ) -> Result<(), DialogFailure> {
        let mut dialog = PasswdDialog::new(&self.prompts);
        let mut exit_status = None;
        let mut output_bytes = 0usize;
        // The whole dialog gets a few steps' worth of time, so a trickle of output cannot
        // hold it forever.
        let deadline = tokio::time::Instant::now() + self.step_timeout * 4;
        loop {
            let wait = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + self.step_timeout),
                channel.wait(),
            );
            let message = match wait.await {
                Err(_) => return Err(dialog.on_timeout()),
                Ok(None) => {
                    return match dialog.on_end(exit_status) {
                        DialogStep::Succeeded => Ok(()),
                        DialogStep::Failed(failure) => Err(failure),
                        DialogStep::Send(_) | DialogStep::Wait => Err(dialog.on_timeout()),
                    };
                }
                Ok(Some(message)) => message,
            };
            let output = match message {
                ChannelMsg::Data { data } => data,
                ChannelMsg::ExtendedData { data, .. } => data,
                ChannelMsg::ExitStatus {
                    exit_status: status,
                } => {
                    exit_status = Some(status);
                    continue;
                }
                _ => continue,
            };
            output_bytes += output.len();
            if output_bytes > OUTPUT_LIMIT_BYTES {
                return Err(dialog.on_timeout());
            }
            match dialog.on_output(&output) {
                DialogStep::Wait => {}
                DialogStep::Succeeded => return Ok(()),
                DialogStep::Failed(failure) => return Err(failure),
                DialogStep::Send(answer) => {
                    let secret = match answer {
                        Answer::CurrentPassword => current,
                        Answer::NewPassword | Answer::RetypeNewPassword => new,
                    };
                    let mut line = Zeroizing::new(Vec::with_capacity(secret.expose().len() + 1));
                    line.extend_from_slice(secret.expose().as_bytes());
                    line.push(b'\n');
                    let sent = timeout(self.step_timeout, channel.data(&line[..])).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        // Part of the new password may have reached passwd.
                        return Err(if dialog.new_password_sent() {
                            DialogFailure::OutcomeUnknown {
                                detail: "the connection failed while typing the new password"
                                    .to_owned(),
                            }
                        } else {
                            DialogFailure::TimedOutBeforeChange {
                                waiting_for: "the current password to be typed",
                            }
                        });
                    }
                }
            }
        }
    }

    fn dialog_failure_to_error(
        &self,
        failure: DialogFailure,
        user: &str,
        current: &Password,
        new: &Password,
    ) -> ExecError {
        let secrets = [current.expose(), new.expose()];
        let clean = |text: &str| redact(text, &secrets);
        let user = user.to_owned();
        let before = |reason| ExecError::before_change(&self.host, reason, "");
        match failure {
            DialogFailure::CurrentPasswordRejected => {
                before(BeforeChangeReason::CurrentPasswordRejected { user })
            }
            DialogFailure::NewPasswordRejected { message } => {
                before(BeforeChangeReason::NewPasswordRejected {
                    user,
                    message: clean(&message),
                })
            }
            DialogFailure::Refused { message } => before(BeforeChangeReason::PasswdRefused {
                user,
                message: clean(&message),
            }),
            DialogFailure::TimedOutBeforeChange { waiting_for } => {
                before(BeforeChangeReason::Timeout {
                    step: format!("waiting for {waiting_for}"),
                })
            }
            DialogFailure::OutcomeUnknown { detail } => ExecError::outcome_unknown(
                &self.host,
                format!("passwd for {user}: {}", clean(&detail)),
            ),
        }
    }

    /// Whether `getent passwd` says the account does not exist (exit status 2). Any doubt
    /// (error, timeout) answers false.
    async fn account_is_missing(&self, user: &str) -> bool {
        if validate_username(user).is_err() {
            return false;
        }
        let Ok(mut channel) = self.open_session_channel().await else {
            return false;
        };
        let command_line = format!("getent passwd -- {user}");
        let sent = timeout(self.step_timeout, channel.exec(true, command_line)).await;
        if self
            .confirm_request(&mut channel, "running getent", sent)
            .await
            .is_err()
        {
            return false;
        }
        let _ = timeout(self.step_timeout, channel.eof()).await;
        matches!(
            collect_until_closed(&mut channel, self.step_timeout).await,
            Ok(Finished {
                exit_status: Some(2),
                ..
            })
        )
    }

    async fn open_session_channel(&self) -> Result<Channel<client::Msg>, ExecError> {
        match timeout(self.step_timeout, self.session.channel_open_session()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(error)) => Err(ExecError::before_change(
                &self.host,
                BeforeChangeReason::SessionRefused {
                    what: "opening a session channel".to_owned(),
                },
                error.to_string(),
            )),
            Err(_) => Err(ExecError::before_change(
                &self.host,
                BeforeChangeReason::Timeout {
                    step: "opening a session channel".to_owned(),
                },
                "",
            )),
        }
    }

    /// Checks that a want-reply channel request went out, then waits for the server's
    /// yes or no.
    async fn confirm_request(
        &self,
        channel: &mut Channel<client::Msg>,
        what: &str,
        sent: Result<Result<(), russh::Error>, tokio::time::error::Elapsed>,
    ) -> Result<(), ExecError> {
        let refused = |detail: String| {
            ExecError::before_change(
                &self.host,
                BeforeChangeReason::SessionRefused {
                    what: what.to_owned(),
                },
                detail,
            )
        };
        let timed_out = || {
            ExecError::before_change(
                &self.host,
                BeforeChangeReason::Timeout {
                    step: what.to_owned(),
                },
                "",
            )
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(refused(error.to_string())),
            Err(_) => return Err(timed_out()),
        }
        loop {
            match timeout(self.step_timeout, channel.wait()).await {
                Err(_) => return Err(timed_out()),
                Ok(None) => return Err(refused("the channel closed".to_owned())),
                Ok(Some(ChannelMsg::Success)) => return Ok(()),
                Ok(Some(ChannelMsg::Failure)) => return Err(refused(String::new())),
                Ok(Some(_)) => {}
            }
        }
    }
}

/// The command goes on a remote command line: an absolute path of plain characters only.
fn check_command_path(command: &str) -> Result<(), BeforeChangeReason> {
    let plain = command
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
    if command.starts_with('/') && plain && !command.contains("..") {
        Ok(())
    } else {
        Err(BeforeChangeReason::InvalidBatch {
            problem: format!(
                "the chpasswd command {} must be an absolute path of letters, digits and /_.-",
                quote_for_message(command)
            ),
        })
    }
}

/// Exit status and output of a finished remote command (stderr and stdout together:
/// without a PTY chpasswd and sudo speak only on stderr).
struct Finished {
    exit_status: Option<u32>,
    output: String,
}

/// Reads a channel until the server closes it: Data, Eof, ExitStatus and Close may arrive
/// in any order (ExitStatus can follow Eof). Each wait is bounded by `step_timeout`.
async fn collect_until_closed(
    channel: &mut Channel<client::Msg>,
    step_timeout: Duration,
) -> Result<Finished, String> {
    let mut exit_status = None;
    let mut output = Vec::new();
    loop {
        match timeout(step_timeout, channel.wait()).await {
            Err(_) => {
                return Err(format!("no answer within {} s", step_timeout.as_secs_f32()));
            }
            Ok(None) => break,
            Ok(Some(ChannelMsg::ExitStatus {
                exit_status: status,
            })) => exit_status = Some(status),
            Ok(Some(ChannelMsg::ExtendedData { data, .. } | ChannelMsg::Data { data })) => {
                if output.len() < OUTPUT_LIMIT_BYTES {
                    output.extend_from_slice(&data);
                }
            }
            Ok(Some(ChannelMsg::Close)) => break,
            Ok(Some(_)) => {}
        }
    }
    Ok(Finished {
        exit_status,
        output: String::from_utf8_lossy(&output).into_owned(),
    })
}

async fn disconnect(session: &CheckedSession, step_timeout: Duration) {
    let _ = timeout(
        step_timeout,
        session.disconnect(Disconnect::ByApplication, "", "en"),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_paths_are_plain_absolute_paths() {
        assert!(check_command_path("/usr/sbin/chpasswd").is_ok());
        assert!(check_command_path("/usr/local/sbin/rotor-chpasswd-wrapper").is_ok());
        for bad in ["chpasswd", "/usr/sbin/chpasswd; id", "/a/../b", "/a b", ""] {
            assert!(check_command_path(bad).is_err(), "{bad}");
        }
    }
}
