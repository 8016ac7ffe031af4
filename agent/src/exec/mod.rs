//! Host execution: changing passwords on Linux hosts over SSH (`ssh`, after `host_key` and
//! `login`) or on this host (`local`), and the typed error every caller branches on; and
//! PostgreSQL (`postgres`, `postgres_tls`, `sql`), whose own error keeps the same split.
//!
//! Owns the distinction the rotation protocol rests on: [`ExecError::BeforeChange`] (certain
//! that the host still has the old password) versus [`ExecError::OutcomeUnknown`] (verify
//! before deciding). Does not decide what to do about either (the controller does), keeps no
//! state between jobs but PostgreSQL's connection pool, and never puts a password in an
//! error, a log line or a process argument.

pub mod chpasswd;
pub mod dialog;
pub mod host_key;
pub mod local;
pub mod login;
pub mod postgres;
pub mod postgres_tls;
pub mod sql;
pub mod ssh;
pub mod target;

/// The password type every function here takes, re-exported for callers and tests.
pub use rotor_common::secret::Password;

pub use dialog::{Answer, DialogFailure, DialogStep, PasswdDialog, PromptSet};
pub use host_key::HostKeySeen;
pub use local::change_passwords_locally;
pub use login::LoginCheck;
pub use ssh::{DEFAULT_CHPASSWD_COMMAND, HostConnection, PASSWD_COMMAND};
pub use target::{HostKeyPolicy, HostTarget};

/// Why a change failed with certainty that nothing changed on the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeforeChangeReason {
    #[error(
        "could not connect; check the address and port, and that sshd runs and is reachable from this agent"
    )]
    Connect,
    #[error("timed out while {step}; the host or the network is slow or dropping packets")]
    Timeout { step: String },
    #[error(
        "host key mismatch, pinned {expected}, offered {offered}; if the host was rebuilt, update ssh_host_key"
    )]
    HostKeyMismatch { expected: String, offered: String },
    #[error(
        "no host key is pinned and trust on first use is off (the host offered {offered}); set ssh_host_key or enable ssh_host_key_trust_on_first_use"
    )]
    HostKeyUnknown { offered: String },
    #[error(
        "the pinned host key cannot be read ({problem}); set ssh_host_key to one line of `ssh-keyscan` output without the host name, e.g. `ssh-ed25519 AAAA…`"
    )]
    HostKeyUnreadable { problem: String },
    #[error(
        "authentication as {user} failed (password and keyboard-interactive); the stored password of {user} is probably out of date: reset it"
    )]
    AuthenticationFailed { user: String },
    #[error(
        "sudo refused to run {command} without a password for {user}; add `{user} ALL=(root) NOPASSWD: {command}` to the host's sudoers"
    )]
    SudoRefused { user: String, command: String },
    #[error(
        "{command} was not found on the host; install it or set the command path for this host"
    )]
    CommandNotFound { command: String },
    #[error("{command} could not be started; check that it is executable by the agent's user")]
    CannotRun { command: String },
    #[error(
        "account {user} does not exist on the host; create it or remove the account from Rotor"
    )]
    UnknownUser { user: String },
    #[error(
        "passwd rejected the current password of {user}; the stored password is out of date: reset it"
    )]
    CurrentPasswordRejected { user: String },
    #[error(
        "the host refused the new password for {user} ({message}); make the password policy meet the host's rules"
    )]
    NewPasswordRejected { user: String, message: String },
    #[error("passwd refused to change the password of {user} ({message})")]
    PasswdRefused { user: String, message: String },
    #[error("chpasswd did not change the password of {users} ({message})", users = .users.join(", "))]
    ChpasswdRejected { users: Vec<String>, message: String },
    #[error("{0}")]
    InvalidUsername(#[from] rotor_common::names::InvalidUsername),
    #[error("cannot send the new password for {user}: {problem}; fix the password policy")]
    UnsendablePassword {
        user: String,
        problem: target::UnsendablePassword,
    },
    #[error("the batch is invalid: {problem}")]
    InvalidBatch { problem: String },
    #[error("the host's prompt settings are invalid: {problem}")]
    InvalidPrompts { problem: String },
    #[error("the SSH server refused the session ({what}); check sshd's settings for this account")]
    SessionRefused { what: String },
}

/// An account the host did not change within a batch that changed others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnchangedAccount {
    pub user: String,
    pub reason: BeforeChangeReason,
}

/// What is known about one account after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOutcome {
    /// The host has the new password.
    Changed,
    /// The host still has the old password.
    Unchanged,
    /// Either: verify by logging in.
    Unknown,
}

/// A failed host operation. `host` is `name (address:port)`; no variant ever holds a
/// password (texts taken from the host are stripped of the passwords that were sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Certain that nothing changed on the host.
    #[error("host {host}: {reason}; nothing was changed{}", detail_suffix(.detail))]
    BeforeChange {
        host: String,
        reason: BeforeChangeReason,
        detail: String,
    },
    /// The change may or may not have happened.
    #[error(
        "host {host}: the outcome is unknown, the password may or may not have changed ({detail}); verify by logging in with the new password, then the current one"
    )]
    OutcomeUnknown { host: String, detail: String },
    /// A batch where the host changed some accounts and said clearly that it did not change
    /// the others.
    #[error("host {host}: changed {changed}, but not {unchanged}", changed = .changed.join(", "), unchanged = describe_unchanged(.unchanged))]
    PartlyChanged {
        host: String,
        changed: Vec<String>,
        unchanged: Vec<UnchangedAccount>,
    },
}

impl ExecError {
    /// True when the host certainly still has every old password.
    pub fn is_certain_before_change(&self) -> bool {
        matches!(self, ExecError::BeforeChange { .. })
    }

    /// What this error means for one account of the operation that returned it.
    pub fn outcome_for(&self, user: &str) -> AccountOutcome {
        match self {
            ExecError::BeforeChange { .. } => AccountOutcome::Unchanged,
            ExecError::OutcomeUnknown { .. } => AccountOutcome::Unknown,
            ExecError::PartlyChanged {
                changed, unchanged, ..
            } => {
                if changed.iter().any(|name| name == user) {
                    AccountOutcome::Changed
                } else if unchanged.iter().any(|account| account.user == user) {
                    AccountOutcome::Unchanged
                } else {
                    AccountOutcome::Unknown
                }
            }
        }
    }

    pub(crate) fn before_change(
        host: &str,
        reason: BeforeChangeReason,
        detail: impl Into<String>,
    ) -> ExecError {
        ExecError::BeforeChange {
            host: host.to_owned(),
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn outcome_unknown(host: &str, detail: impl Into<String>) -> ExecError {
        ExecError::OutcomeUnknown {
            host: host.to_owned(),
            detail: detail.into(),
        }
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

fn describe_unchanged(unchanged: &[UnchangedAccount]) -> String {
    unchanged
        .iter()
        .map(|account| format!("{}: {}", account.user, account.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Replaces every occurrence of the given secrets in text that came from a host (a message
/// could echo what was typed), so it can go into an error.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut cleaned = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() && cleaned.contains(secret) {
            cleaned = cleaned.replace(secret, "<redacted>");
        }
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_host_reason_and_next_step() {
        let error = ExecError::before_change(
            "web-03 (10.0.4.7:22)",
            BeforeChangeReason::HostKeyMismatch {
                expected: "SHA256:ab".to_owned(),
                offered: "SHA256:cd".to_owned(),
            },
            "",
        );
        assert_eq!(
            error.to_string(),
            "host web-03 (10.0.4.7:22): host key mismatch, pinned SHA256:ab, offered SHA256:cd; \
             if the host was rebuilt, update ssh_host_key; nothing was changed"
        );
        assert!(error.is_certain_before_change());
        assert_eq!(error.outcome_for("app1"), AccountOutcome::Unchanged);

        let unknown = ExecError::outcome_unknown("h (a:22)", "timed out waiting for passwd");
        assert!(!unknown.is_certain_before_change());
        assert!(unknown.to_string().contains("verify by logging in"));
        assert_eq!(unknown.outcome_for("app1"), AccountOutcome::Unknown);
    }

    #[test]
    fn partly_changed_reports_each_account() {
        let error = ExecError::PartlyChanged {
            host: "h (a:22)".to_owned(),
            changed: vec!["app1".to_owned()],
            unchanged: vec![UnchangedAccount {
                user: "ghost".to_owned(),
                reason: BeforeChangeReason::UnknownUser {
                    user: "ghost".to_owned(),
                },
            }],
        };
        assert!(!error.is_certain_before_change());
        assert_eq!(error.outcome_for("app1"), AccountOutcome::Changed);
        assert_eq!(error.outcome_for("ghost"), AccountOutcome::Unchanged);
        assert_eq!(error.outcome_for("other"), AccountOutcome::Unknown);
        assert!(
            error
                .to_string()
                .contains("changed app1, but not ghost: account ghost does not exist")
        );
    }

    #[test]
    fn redaction_removes_every_secret() {
        assert_eq!(
            redact("bad: hunter2 / hunter2x", &["hunter2", ""]),
            "bad: <redacted> / <redacted>x"
        );
    }
}
