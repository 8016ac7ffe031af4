//! What the agent is told about a host (address, host-key policy, timeouts, prompts) and the
//! rules for what may be sent to it (usernames, passwords). Pure data and checks: no IO,
//! and a rejected value is described without ever being echoed if it may be a secret.

use std::time::Duration;

use rotor_common::secret::Password;
use serde::{Deserialize, Serialize};

use crate::exec::dialog::PromptSet;

/// Longest password Rotor types into `passwd` or feeds to `chpasswd`, in bytes. PAM's
/// conversation limit (`PAM_MAX_RESP_SIZE`) is 512.
pub const MAX_PASSWORD_BYTES: usize = 512;

/// One host as the agent sees it for one job.
#[derive(Clone, Debug)]
pub struct HostTarget {
    /// The operator's name for the host (`os/hosts/<name>`), used in every message.
    pub name: String,
    /// DNS name or IP address to connect to.
    pub address: String,
    pub port: u16,
    /// How the server's host key is checked before any credential is sent.
    pub host_key: HostKeyPolicy,
    /// Bound on TCP connect plus SSH key exchange.
    pub connect_timeout: Duration,
    /// Bound on every later step (an authentication round, opening a channel, waiting for
    /// a prompt or a verdict).
    pub step_timeout: Duration,
    /// What `passwd` prints on this host.
    pub prompts: PromptSet,
}

impl HostTarget {
    /// A target on port 22 that accepts no host key until one is pinned or TOFU is allowed,
    /// with 10 s to connect, 30 s per step and the default prompts.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> HostTarget {
        HostTarget {
            name: name.into(),
            address: address.into(),
            port: 22,
            host_key: HostKeyPolicy::Reject,
            connect_timeout: Duration::from_secs(10),
            step_timeout: Duration::from_secs(30),
            prompts: PromptSet::default(),
        }
    }

    /// `name (address:port)`, as every error about this host starts.
    pub fn describe(&self) -> String {
        if self.address.contains(':') {
            format!("{} ([{}]:{})", self.name, self.address, self.port)
        } else {
            format!("{} ({}:{})", self.name, self.address, self.port)
        }
    }
}

/// How to decide whether the server is the host it claims to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKeyPolicy {
    /// Only this key (an OpenSSH one-line public key, `ssh-ed25519 AAAA… [comment]`).
    Pinned(String),
    /// The key recorded at first contact; when none is recorded yet, accept the offered key
    /// (the caller records it from `HostKeySeen`).
    TrustOnFirstUse { known: Option<String> },
    /// No key pinned and trust on first use is off: refuse every host.
    Reject,
}

/// Why a username cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "username {shown} is not a valid Linux account name ({problem}); names match ^[a-z_][a-z0-9_.-]{{0,31}}$"
)]
pub struct InvalidUsername {
    /// The name, escaped and shortened for display.
    pub shown: String,
    pub problem: &'static str,
}

/// Checks `^[a-z_][a-z0-9_.-]{0,31}$`: safe on a command line, in a `chpasswd` line and
/// in a log.
pub fn validate_username(username: &str) -> Result<(), InvalidUsername> {
    let invalid = |problem| InvalidUsername {
        shown: shorten_for_display(username),
        problem,
    };
    let mut characters = username.chars();
    let Some(first) = characters.next() else {
        return Err(invalid("it is empty"));
    };
    if !(first.is_ascii_lowercase() || first == '_') {
        return Err(invalid("it must start with a-z or _"));
    }
    if username.len() > 32 {
        return Err(invalid("it is longer than 32 characters"));
    }
    if !characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)) {
        return Err(invalid("only a-z, 0-9, _, . and - are allowed"));
    }
    Ok(())
}

/// Why a password cannot be typed into `passwd` or fed to `chpasswd`. Never holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsendablePassword {
    Empty,
    TooLong,
    /// A control character (newline, NUL, ^C, ^U, DEL …): it would end the line early or be
    /// interpreted by the terminal.
    ControlCharacter,
}

impl std::fmt::Display for UnsendablePassword {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            UnsendablePassword::Empty => "the password is empty",
            UnsendablePassword::TooLong => "the password is longer than 512 bytes",
            UnsendablePassword::ControlCharacter => {
                "the password contains a control character (newline, NUL, ...)"
            }
        })
    }
}

/// Checks that a password can travel as one line of text.
pub fn check_password_sendable(password: &Password) -> Result<(), UnsendablePassword> {
    let value = password.expose();
    if value.is_empty() {
        Err(UnsendablePassword::Empty)
    } else if value.len() > MAX_PASSWORD_BYTES {
        Err(UnsendablePassword::TooLong)
    } else if value.chars().any(char::is_control) {
        Err(UnsendablePassword::ControlCharacter)
    } else {
        Ok(())
    }
}

/// A possibly hostile string made safe for a message: escaped, at most 40 characters.
pub(crate) fn shorten_for_display(text: &str) -> String {
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > 40 {
        let mut cut: String = escaped.chars().take(40).collect();
        cut.push('…');
        format!("\"{cut}\"")
    } else {
        format!("\"{escaped}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_linux_rules() {
        for good in ["app1", "_svc", "a", "web-01.x_y", &"a".repeat(32)] {
            assert_eq!(validate_username(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1app",
            "App",
            "-rf",
            "a:b",
            "a b",
            "a\nb",
            "a$",
            "é",
            &"a".repeat(33),
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        let error = validate_username("root\nx").expect_err("newline refused");
        assert!(error.to_string().contains(r#""root\nx""#), "{error}");
    }

    #[test]
    fn passwords_must_be_one_printable_line() {
        let check = |text: &str| check_password_sendable(&Password::new(text.to_owned()));
        assert_eq!(check("Correct-Horse 9:é"), Ok(()));
        assert_eq!(check(""), Err(UnsendablePassword::Empty));
        assert_eq!(check("a\nb"), Err(UnsendablePassword::ControlCharacter));
        assert_eq!(check("a\rb"), Err(UnsendablePassword::ControlCharacter));
        assert_eq!(check("a\0b"), Err(UnsendablePassword::ControlCharacter));
        assert_eq!(check("a\u{15}b"), Err(UnsendablePassword::ControlCharacter));
        assert_eq!(check("a\u{7f}b"), Err(UnsendablePassword::ControlCharacter));
        assert_eq!(check(&"x".repeat(513)), Err(UnsendablePassword::TooLong));
        assert_eq!(check(&"x".repeat(512)), Ok(()));
    }

    #[test]
    fn describe_names_host_and_endpoint() {
        let mut target = HostTarget::new("web-03", "10.0.4.7");
        assert_eq!(target.describe(), "web-03 (10.0.4.7:22)");
        target.address = "fd00::7".to_owned();
        target.port = 2222;
        assert_eq!(target.describe(), "web-03 ([fd00::7]:2222)");
    }
}
