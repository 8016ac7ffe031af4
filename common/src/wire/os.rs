//! Jobs of the OS secrets engine, as they travel from controller to agent: log in to check a
//! password, rotate through a parent with `sudo chpasswd`, rotate an account's own password
//! with `passwd`, or rotate locally with `chpasswd`.
//!
//! Owns only the shapes. What the controller decides from an outcome lives in the engine;
//! how the agent performs a job lives in the agent's `exec`.

use serde::{Deserialize, Serialize};

use crate::secret::Password;

/// How the agent checks the host's SSH key before sending any credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostKeyRule {
    /// Only this key (OpenSSH one-line public key).
    Pinned(String),
    /// The key recorded at first contact; with none recorded yet, accept and report it.
    TrustOnFirstUse { known: Option<String> },
    /// No key pinned and trust on first use off: refuse.
    Reject,
}

/// One host, as a job needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// The operator's name for the host, used in every message.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub host_key: HostKeyRule,
    pub connect_timeout_ms: u64,
    pub step_timeout_ms: u64,
    /// Per-host overrides of `passwd`'s prompts, as the JSON of the agent's prompt set.
    pub passwd_prompts_json: Option<String>,
}

/// One account's new password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChange {
    pub username: String,
    pub new_password: Password,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsJob {
    /// Try to log in as `username` with each candidate in turn; report the first that works.
    VerifyLogin {
        host: HostSpec,
        username: String,
        candidates: Vec<Password>,
    },
    /// Log in as the parent and run `sudo -n <command>` with every change on stdin, over one
    /// SSH connection.
    RotateWithParent {
        host: HostSpec,
        parent_username: String,
        parent_password: Password,
        command: String,
        changes: Vec<AccountChange>,
    },
    /// Log in as the account and change its own password with `passwd` in a PTY.
    RotateSelf {
        host: HostSpec,
        username: String,
        current_password: Password,
        new_password: Password,
    },
    /// Run `chpasswd` on the agent's own host.
    RotateLocal {
        command: String,
        changes: Vec<AccountChange>,
    },
}

/// The host key the agent was offered (for trust on first use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeyObserved {
    pub openssh: String,
    pub fingerprint: String,
}

/// What happened to one account of a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountResult {
    /// The host has the new password.
    Changed,
    /// The host certainly kept the old password.
    Unchanged { reason: String },
    /// Either: verify by logging in.
    Unknown { detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsOutcome {
    /// Index of the first candidate that logged in, or none.
    Login {
        accepted: Option<u32>,
        host_key: Option<HostKeyObserved>,
    },
    /// Per account, by username.
    Rotated {
        accounts: Vec<(String, AccountResult)>,
        host_key: Option<HostKeyObserved>,
    },
}
