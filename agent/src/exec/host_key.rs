//! Who the server is: turns a host's key policy (pinned, trust on first use, reject) into
//! the check russh runs during key exchange, and opens sessions that passed it. The only
//! maker of `HostKeyVerified`, the proof authentication requires, so no credential can be
//! sent to an unchecked server. Sends nothing but the key exchange itself.

use std::sync::{Arc, Mutex};

use russh::AlgorithmKind;
use russh::client;
use russh::keys::ssh_key::PublicKey;
use russh::keys::{Algorithm, HashAlg, PublicKeyOrCertificate};
use tokio::time::timeout;

use crate::exec::target::{HostKeyPolicy, HostTarget};
use crate::exec::{BeforeChangeReason, ExecError};

/// An SSH session whose host key was checked by this module.
pub(crate) type CheckedSession = client::Handle<KeyCheckingHandler>;

/// The host key the server offered, for the controller to record on first use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostKeySeen {
    /// One-line OpenSSH form, `ssh-ed25519 AAAA…`.
    pub openssh: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// Proof that the server's host key passed the host's policy. Only
/// `open_verified_session` makes one, and authentication requires it.
pub(crate) struct HostKeyVerified {
    seen: HostKeySeen,
}

impl HostKeyVerified {
    /// The key that passed.
    pub(crate) fn seen(&self) -> &HostKeySeen {
        &self.seen
    }
}

/// What the key-exchange callback accepts.
enum KeyExpectation {
    Exactly { key: PublicKey, fingerprint: String },
    AnyKey,
    NoKey,
}

/// The russh callback object: checks and records the offered host key.
pub(crate) struct KeyCheckingHandler {
    expectation: Arc<KeyExpectation>,
    offered: Arc<Mutex<Option<HostKeySeen>>>,
}

impl client::Handler for KeyCheckingHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = server_public_key.public_key();
        let seen = describe_key(&key);
        if let Ok(mut slot) = self.offered.lock() {
            *slot = Some(seen);
        } else {
            return Ok(false);
        }
        Ok(key_is_expected(&self.expectation, &key))
    }
}

fn describe_key(key: &PublicKey) -> HostKeySeen {
    let mut plain = key.clone();
    plain.set_comment("");
    HostKeySeen {
        openssh: plain
            .to_openssh()
            .unwrap_or_else(|_| format!("{} (not encodable)", key.algorithm())),
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
    }
}

/// Compares the key material itself, not only the algorithm; the comment is ignored.
fn key_is_expected(expectation: &KeyExpectation, offered: &PublicKey) -> bool {
    match expectation {
        KeyExpectation::Exactly { key, .. } => key.key_data() == offered.key_data(),
        KeyExpectation::AnyKey => true,
        KeyExpectation::NoKey => false,
    }
}

fn parse_pinned_key(text: &str, host: &str) -> Result<KeyExpectation, ExecError> {
    let key = PublicKey::from_openssh(text.trim()).map_err(|error| {
        ExecError::before_change(
            host,
            BeforeChangeReason::HostKeyUnreadable {
                problem: error.to_string(),
            },
            "",
        )
    })?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    Ok(KeyExpectation::Exactly { key, fingerprint })
}

/// Host-key algorithms to ask for: the pinned key's own, so the server presents that key
/// and not another one it also has.
fn preferred_host_key_algorithms(expectation: &KeyExpectation) -> Option<Vec<Algorithm>> {
    let KeyExpectation::Exactly { key, .. } = expectation else {
        return None;
    };
    Some(match key.algorithm() {
        Algorithm::Rsa { .. } => vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            Algorithm::Rsa { hash: None },
        ],
        other => vec![other],
    })
}

/// TCP connect plus key exchange, with the host-key check inside it.
pub(crate) async fn open_verified_session(
    target: &HostTarget,
    host: &str,
) -> Result<(CheckedSession, HostKeyVerified), ExecError> {
    let expectation = match &target.host_key {
        HostKeyPolicy::Pinned(text) => parse_pinned_key(text, host)?,
        HostKeyPolicy::TrustOnFirstUse { known: Some(text) } => parse_pinned_key(text, host)?,
        HostKeyPolicy::TrustOnFirstUse { known: None } => KeyExpectation::AnyKey,
        HostKeyPolicy::Reject => KeyExpectation::NoKey,
    };
    let expectation = Arc::new(expectation);
    let offered = Arc::new(Mutex::new(None));
    let handler = KeyCheckingHandler {
        expectation: Arc::clone(&expectation),
        offered: Arc::clone(&offered),
    };
    let mut config = client::Config {
        nodelay: true,
        // Our own timeouts bound each step; this only reaps a forgotten connection.
        inactivity_timeout: Some(target.step_timeout * 10),
        ..client::Config::default()
    };
    if let Some(algorithms) = preferred_host_key_algorithms(&expectation) {
        config.preferred.key = algorithms.into();
    }
    let connecting = client::connect(
        Arc::new(config),
        (target.address.as_str(), target.port),
        handler,
    );
    let result = timeout(target.connect_timeout, connecting).await;
    let offered_key = offered.lock().ok().and_then(|slot| slot.clone());
    let session = match result {
        Err(_) => {
            return Err(ExecError::before_change(
                host,
                BeforeChangeReason::Timeout {
                    step: format!(
                        "connecting and exchanging keys (limit {} s)",
                        target.connect_timeout.as_secs_f32()
                    ),
                },
                "",
            ));
        }
        Ok(Err(russh::Error::UnknownKey)) => {
            let offered = offered_key
                .map(|seen| seen.fingerprint)
                .unwrap_or_else(|| "no key".to_owned());
            let reason = match expectation.as_ref() {
                KeyExpectation::Exactly { fingerprint, .. } => {
                    BeforeChangeReason::HostKeyMismatch {
                        expected: fingerprint.clone(),
                        offered,
                    }
                }
                KeyExpectation::AnyKey | KeyExpectation::NoKey => {
                    BeforeChangeReason::HostKeyUnknown { offered }
                }
            };
            return Err(ExecError::before_change(host, reason, ""));
        }
        // The server has no key of the pinned type at all: not the pinned host either.
        Ok(Err(russh::Error::NoCommonAlgo {
            kind: AlgorithmKind::Key,
            theirs,
            ..
        })) if matches!(expectation.as_ref(), KeyExpectation::Exactly { .. }) => {
            let expected = match expectation.as_ref() {
                KeyExpectation::Exactly { fingerprint, .. } => fingerprint.clone(),
                KeyExpectation::AnyKey | KeyExpectation::NoKey => String::new(),
            };
            return Err(ExecError::before_change(
                host,
                BeforeChangeReason::HostKeyMismatch {
                    expected,
                    offered: format!("no key of the pinned type (it has {})", theirs.join(", ")),
                },
                "",
            ));
        }
        Ok(Err(error)) => {
            return Err(ExecError::before_change(
                host,
                BeforeChangeReason::Connect,
                error.to_string(),
            ));
        }
        Ok(Ok(session)) => session,
    };
    // russh accepted the server only because `check_server_key` said yes; check again here
    // so the proof exists only for a key we have seen and approved.
    let Some(seen) = offered_key else {
        return Err(ExecError::before_change(
            host,
            BeforeChangeReason::Connect,
            "the server's host key was never checked",
        ));
    };
    let approved = match expectation.as_ref() {
        KeyExpectation::Exactly { key, .. } => PublicKey::from_openssh(&seen.openssh)
            .map(|offered| key.key_data() == offered.key_data())
            .unwrap_or(false),
        KeyExpectation::AnyKey => true,
        KeyExpectation::NoKey => false,
    };
    if !approved {
        return Err(ExecError::before_change(
            host,
            BeforeChangeReason::HostKeyUnknown {
                offered: seen.fingerprint,
            },
            "",
        ));
    }
    Ok((session, HostKeyVerified { seen }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGuFyQrkGWSdAKpitbnEMafmY3CFugzgniPHa1m2d9qo a@b";
    const ED25519_A_FINGERPRINT: &str = "SHA256:D/dQc1Vb1eW6M7MEzoxI2arGG1ksiMXNq0/VEyGou0E";
    const ED25519_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJVEKrXsHWGjipU9CYX7yMUp7vYqeLYhiCJMXIZEba4M c@d";

    #[test]
    fn pinned_keys_compare_key_material_not_comments() {
        let host = "h (a:22)";
        let expectation = parse_pinned_key(ED25519_A, host).expect("valid key");
        let same_other_comment =
            PublicKey::from_openssh(&ED25519_A.replace("a@b", "other")).expect("valid key");
        assert!(key_is_expected(&expectation, &same_other_comment));

        let other = PublicKey::from_openssh(ED25519_B).expect("valid key");
        assert!(!key_is_expected(&expectation, &other));
        assert!(!key_is_expected(&KeyExpectation::NoKey, &other));
        assert!(key_is_expected(&KeyExpectation::AnyKey, &other));
    }

    #[test]
    fn offered_keys_are_described_like_ssh_keygen() {
        let key = PublicKey::from_openssh(ED25519_A).expect("valid key");
        let seen = describe_key(&key);
        assert_eq!(seen.fingerprint, ED25519_A_FINGERPRINT);
        assert_eq!(seen.openssh, ED25519_A.trim_end_matches(" a@b"));
    }

    #[test]
    fn unreadable_pins_are_refused_before_connecting() {
        let error = parse_pinned_key("ssh-ed25519 not-base64", "h (a:22)")
            .err()
            .expect("refused");
        assert!(matches!(
            error,
            ExecError::BeforeChange {
                reason: BeforeChangeReason::HostKeyUnreadable { .. },
                ..
            }
        ));
    }

    #[test]
    fn the_pinned_algorithm_is_requested() {
        let expectation = parse_pinned_key(ED25519_A, "h").expect("valid key");
        assert_eq!(
            preferred_host_key_algorithms(&expectation),
            Some(vec![Algorithm::Ed25519])
        );
        assert_eq!(preferred_host_key_algorithms(&KeyExpectation::AnyKey), None);
    }
}
