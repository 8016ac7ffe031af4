//! What the agent is told about a host (address, host-key policy, timeouts, prompts) and the
//! rule for the passwords that may be sent to it (usernames follow `rotor_common::names`).
//! Pure data and checks: no IO, and a rejected password is described without being echoed.

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

#[cfg(test)]
mod tests {
    use super::*;

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
