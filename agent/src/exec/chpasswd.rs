//! `chpasswd` batches without IO: checking a batch before anything is sent, building its
//! stdin, and reading what `sudo`/`chpasswd` said back into a per-account verdict.
//! Shared by the SSH driver (`sudo -n chpasswd`) and the local one. Never runs anything and
//! never puts a password anywhere but the stdin buffer it returns.

use std::collections::BTreeSet;

use rotor_common::names::validate_username;
use rotor_common::secret::Password;
use zeroize::Zeroizing;

use crate::exec::target::check_password_sendable;
use crate::exec::{BeforeChangeReason, ExecError, UnchangedAccount};

/// Checks every account and password of a batch; nothing may be sent when this fails.
pub fn check_batch(changes: &[(String, Password)]) -> Result<(), BeforeChangeReason> {
    if changes.is_empty() {
        return Err(BeforeChangeReason::InvalidBatch {
            problem: "no accounts to change".to_owned(),
        });
    }
    let mut seen = BTreeSet::new();
    for (user, password) in changes {
        validate_username(user)?;
        if !seen.insert(user.as_str()) {
            return Err(BeforeChangeReason::InvalidBatch {
                problem: format!("account {user} appears twice"),
            });
        }
        check_password_sendable(password).map_err(|problem| {
            BeforeChangeReason::UnsendablePassword {
                user: user.clone(),
                problem,
            }
        })?;
    }
    Ok(())
}

/// `user:password\n` for every account, in order; wiped when dropped. Call `check_batch`
/// first.
pub fn batch_input(changes: &[(String, Password)]) -> Zeroizing<Vec<u8>> {
    let mut input = Zeroizing::new(Vec::new());
    for (user, password) in changes {
        input.extend_from_slice(user.as_bytes());
        input.push(b':');
        input.extend_from_slice(password.expose().as_bytes());
        input.push(b'\n');
    }
    input
}

/// What a finished `[sudo -n] chpasswd` run means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Exit status 0: every password was changed.
    AllChanged,
    /// sudo refused; chpasswd never ran.
    SudoRefused { message: String },
    /// sudo or the shell could not find the program; nothing ran.
    CommandNotFound { message: String },
    /// chpasswd named each account it did not change; the others were changed.
    /// `unchanged` holds (user, what chpasswd said), in batch order.
    Some {
        changed: Vec<String>,
        unchanged: Vec<(String, String)>,
    },
    /// chpasswd said it applied nothing ("changes ignored", non-PAM builds).
    NoneChanged { message: String },
    /// Anything else: the output does not say which lines were applied.
    Unknown { detail: String },
}

/// Reads the exit status and stderr of a run over `users` (the batch order).
pub fn interpret(users: &[&str], exit_status: Option<u32>, stderr: &str) -> BatchVerdict {
    if exit_status == Some(0) {
        // sudo may warn ("unable to resolve host") and still succeed: the status decides.
        return BatchVerdict::AllChanged;
    }
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let message = lines.join(" / ");
    let status = match exit_status {
        Some(code) => format!("exit status {code}"),
        None => "no exit status".to_owned(),
    };

    if lines.iter().any(|line| {
        (line.starts_with("sudo:")
            && (line.contains("a password is required")
                || line.contains("a terminal is required")
                || line.contains("is not in the sudoers file")
                || line.contains("no tty present")))
            || line.contains("is not allowed to execute")
    }) {
        return BatchVerdict::SudoRefused { message };
    }
    let chpasswd_spoke = lines.iter().any(|line| line.starts_with("chpasswd:"));
    if exit_status == Some(127)
        || (!chpasswd_spoke
            && lines.iter().any(|line| {
                line.ends_with("command not found") || line.ends_with("No such file or directory")
            }))
    {
        return BatchVerdict::CommandNotFound { message };
    }
    if lines.iter().any(|line| line.contains("changes ignored")) {
        return BatchVerdict::NoneChanged { message };
    }

    // PAM builds: `chpasswd: (line N, user U) password not changed` per failed line, after
    // the PAM error (`chpasswd: (user U) pam_chauthtok() failed, error:` + one line).
    let mut unchanged: Vec<(String, String)> = Vec::new();
    let mut understood = true;
    let mut pending_pam_error: Option<(String, String)> = None;
    let mut index = 0;
    while let Some(line) = lines.get(index) {
        index += 1;
        if is_harmless_sudo_warning(line) {
            continue;
        }
        if let Some(user) = pam_failure_user(line) {
            // The next line is PAM's reason, unless it is already chpasswd's own next line.
            let reason = match lines.get(index) {
                Some(next) if !next.starts_with("chpasswd:") && !next.starts_with("sudo:") => {
                    index += 1;
                    (*next).to_owned()
                }
                _ => String::new(),
            };
            pending_pam_error = Some((user, reason));
            continue;
        }
        match not_changed_user(line) {
            Some(user) if users.contains(&user.as_str()) => {
                let reason = match pending_pam_error.take() {
                    Some((pam_user, reason)) if pam_user == user && !reason.is_empty() => reason,
                    _ => "password not changed".to_owned(),
                };
                if !unchanged.iter().any(|(name, _)| *name == user) {
                    unchanged.push((user, reason));
                }
            }
            _ => understood = false,
        }
    }
    // Without an exit status chpasswd may have stopped halfway: later lines are unknown.
    if !understood || unchanged.is_empty() || exit_status.is_none() {
        return BatchVerdict::Unknown {
            detail: format!(
                "chpasswd ended with {status} and said: {}",
                or_nothing(&message)
            ),
        };
    }
    let changed = users
        .iter()
        .filter(|user| !unchanged.iter().any(|(name, _)| name == *user))
        .map(|user| (*user).to_owned())
        .collect();
    BatchVerdict::Some { changed, unchanged }
}

fn or_nothing(message: &str) -> &str {
    if message.is_empty() {
        "nothing"
    } else {
        message
    }
}

fn is_harmless_sudo_warning(line: &str) -> bool {
    line.starts_with("sudo: unable to resolve host")
}

/// `chpasswd: (user U) pam_chauthtok() failed, error:` or `... pam_start failure N` → U.
fn pam_failure_user(line: &str) -> Option<String> {
    let rest = line.strip_prefix("chpasswd: (user ")?;
    let (user, tail) = rest.split_once(") ")?;
    (tail.starts_with("pam_chauthtok() failed") || tail.starts_with("pam_start failure"))
        .then(|| user.to_owned())
}

/// `chpasswd: (line N, user U) password not changed` → U.
fn not_changed_user(line: &str) -> Option<String> {
    let rest = line.strip_prefix("chpasswd: (line ")?;
    let (_, rest) = rest.split_once(", user ")?;
    let (user, tail) = rest.split_once(") ")?;
    (tail == "password not changed").then(|| user.to_owned())
}

/// A `PartlyChanged` error, or `BeforeChange` when the host changed nothing.
pub(crate) fn batch_failure(
    host: &str,
    changed: Vec<String>,
    unchanged: Vec<UnchangedAccount>,
) -> ExecError {
    if !changed.is_empty() {
        return ExecError::PartlyChanged {
            host: host.to_owned(),
            changed,
            unchanged,
        };
    }
    let mut unchanged = unchanged;
    if unchanged.len() == 1
        && let Some(only) = unchanged.pop()
    {
        return ExecError::before_change(host, only.reason, "");
    }
    let users = unchanged
        .iter()
        .map(|account| account.user.clone())
        .collect();
    let message = unchanged
        .iter()
        .map(|account| format!("{}: {}", account.user, account.reason))
        .collect::<Vec<_>>()
        .join("; ");
    ExecError::before_change(
        host,
        BeforeChangeReason::ChpasswdRejected { users, message },
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pairs: &[(&str, &str)]) -> Vec<(String, Password)> {
        pairs
            .iter()
            .map(|(user, password)| ((*user).to_owned(), Password::new((*password).to_owned())))
            .collect()
    }

    #[test]
    fn batches_are_checked_before_anything_is_sent() {
        assert_eq!(
            check_batch(&batch(&[("app1", "a:b c"), ("app2", "x")])),
            Ok(())
        );
        assert!(matches!(
            check_batch(&[]),
            Err(BeforeChangeReason::InvalidBatch { .. })
        ));
        assert!(matches!(
            check_batch(&batch(&[("app1", "x"), ("app1", "y")])),
            Err(BeforeChangeReason::InvalidBatch { .. })
        ));
        assert!(matches!(
            check_batch(&batch(&[("ap:p", "x")])),
            Err(BeforeChangeReason::InvalidUsername(_))
        ));
        let newline = check_batch(&batch(&[("app1", "ok"), ("app2", "evil\nroot:owned")]));
        assert!(matches!(
            &newline,
            Err(BeforeChangeReason::UnsendablePassword { user, .. }) if user == "app2"
        ));
        let text = newline
            .map_err(|reason| reason.to_string())
            .expect_err("refused");
        assert!(!text.contains("evil"), "{text}");
        assert!(matches!(
            check_batch(&batch(&[("app1", "nul\0")])),
            Err(BeforeChangeReason::UnsendablePassword { .. })
        ));
    }

    #[test]
    fn input_is_one_line_per_account() {
        let input = batch_input(&batch(&[("app1", "p:1"), ("app2", "p 2")]));
        assert_eq!(input.as_slice(), b"app1:p:1\napp2:p 2\n");
    }

    #[test]
    fn exit_zero_means_all_changed_even_with_sudo_warnings() {
        assert_eq!(
            interpret(
                &["app1"],
                Some(0),
                "sudo: unable to resolve host abc: Name or service not known\n"
            ),
            BatchVerdict::AllChanged
        );
    }

    #[test]
    fn sudo_refusals_are_recognised() {
        assert!(matches!(
            interpret(&["app1"], Some(1), "sudo: a password is required\n"),
            BatchVerdict::SudoRefused { .. }
        ));
        assert!(matches!(
            interpret(
                &["app1"],
                Some(1),
                "Sorry, user mgmt is not allowed to execute '/usr/sbin/chpasswd' as root on h.\n"
            ),
            BatchVerdict::SudoRefused { .. }
        ));
        assert!(matches!(
            interpret(
                &["app1"],
                Some(1),
                "sudo: /usr/sbin/nope: command not found\n"
            ),
            BatchVerdict::CommandNotFound { .. }
        ));
        assert!(matches!(
            interpret(
                &["app1"],
                Some(127),
                "bash: line 1: sudo: command not found\n"
            ),
            BatchVerdict::CommandNotFound { .. }
        ));
    }

    /// Recorded from Debian 12's chpasswd with an unknown user in the middle of a batch.
    #[test]
    fn named_failures_leave_the_other_accounts_changed() {
        let stderr = "sudo: unable to resolve host 6c92: Name or service not known\n\
                      chpasswd: (user nosuch) pam_chauthtok() failed, error:\n\
                      Authentication token manipulation error\n\
                      chpasswd: (line 2, user nosuch) password not changed\n";
        assert_eq!(
            interpret(&["app1", "nosuch", "app3"], Some(1), stderr),
            BatchVerdict::Some {
                changed: vec!["app1".to_owned(), "app3".to_owned()],
                unchanged: vec![(
                    "nosuch".to_owned(),
                    "Authentication token manipulation error".to_owned()
                )],
            }
        );
    }

    #[test]
    fn unexplained_failures_are_unknown() {
        for stderr in [
            "",
            "chpasswd: cannot lock /etc/shadow; try again later.\n",
            // A named user that is not in the batch cannot be trusted.
            "chpasswd: (line 1, user other) password not changed\n",
            "chpasswd: (line 1, user app1) password not changed\nSegmentation fault\n",
        ] {
            assert!(
                matches!(
                    interpret(&["app1", "app2"], Some(1), stderr),
                    BatchVerdict::Unknown { .. }
                ),
                "{stderr:?}"
            );
        }
        assert!(matches!(
            interpret(
                &["app1", "app2"],
                None,
                "chpasswd: (line 1, user app1) password not changed\n"
            ),
            BatchVerdict::Unknown { .. }
        ));
    }

    #[test]
    fn non_pam_builds_ignore_the_whole_batch() {
        assert!(matches!(
            interpret(
                &["app1", "app2"],
                Some(1),
                "chpasswd: line 2: user 'app2' does not exist\nchpasswd: error detected, changes ignored\n"
            ),
            BatchVerdict::NoneChanged { .. }
        ));
    }

    #[test]
    fn a_batch_where_nothing_changed_is_before_change() {
        let unchanged = vec![UnchangedAccount {
            user: "ghost".to_owned(),
            reason: BeforeChangeReason::UnknownUser {
                user: "ghost".to_owned(),
            },
        }];
        let error = batch_failure("h", Vec::new(), unchanged.clone());
        assert!(matches!(
            error,
            ExecError::BeforeChange {
                reason: BeforeChangeReason::UnknownUser { .. },
                ..
            }
        ));
        let partly = batch_failure("h", vec!["app1".to_owned()], unchanged);
        assert!(matches!(partly, ExecError::PartlyChanged { .. }));
    }
}
