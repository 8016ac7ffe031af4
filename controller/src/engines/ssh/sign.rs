//! Building and signing one OpenSSH certificate from an approved [`CertificatePlan`] with
//! ssh-key's `certificate::Builder` (no certificate encoding by hand), and choosing the
//! CA's signature algorithm from the role's `algorithm_signer`.
//!
//! Must not decide what is allowed (policy.rs). Blocking (RSA signing is slow in debug
//! builds): call [`sign_certificate`] from `spawn_blocking`.

use russh::keys::signature::{self, Signer};
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey, Signature};

use super::ca::CaKey;
use super::keys::KeyShape;
use super::policy::{CertKind, CertificatePlan, Refusal, Subject};
use super::roles::AlgorithmSigner;

/// The hash an RSA CA signs with; `None` is SHA-1 (`ssh-rsa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureChoice {
    rsa_hash: Option<HashAlg>,
}

/// Checks the role's `algorithm_signer` against the CA key; answers what to sign with.
pub fn signature_choice(
    ca: &CaKey,
    signer: AlgorithmSigner,
    role_name: &str,
) -> Result<SignatureChoice, Refusal> {
    if !ca.is_rsa() && signer != AlgorithmSigner::Default {
        return Err(Refusal::AlgorithmSignerMismatch {
            signer: signer.name(),
            role: role_name.to_string(),
            ca_algorithm: ca.algorithm_name(),
        });
    }
    let rsa_hash = match signer {
        AlgorithmSigner::Default | AlgorithmSigner::RsaSha2_256 => Some(HashAlg::Sha256),
        AlgorithmSigner::RsaSha2_512 => Some(HashAlg::Sha512),
        AlgorithmSigner::SshRsa => None,
    };
    Ok(SignatureChoice { rsa_hash })
}

/// The CA key with the chosen hash: what ssh-key's builder signs with.
struct CaSigner<'a> {
    key: &'a PrivateKey,
    choice: SignatureChoice,
}

impl Signer<Signature> for CaSigner<'_> {
    fn try_sign(&self, message: &[u8]) -> Result<Signature, signature::Error> {
        match self.key.key_data() {
            KeypairData::Rsa(pair) => (pair, self.choice.rsa_hash).try_sign(message),
            other => other.try_sign(message),
        }
    }
}

impl From<&CaSigner<'_>> for KeyData {
    fn from(signer: &CaSigner<'_>) -> KeyData {
        signer.key.public_key().key_data().clone()
    }
}

/// Hex SHA-256 of the key's wire encoding: `{{public_key_hash}}`.
pub fn subject_of(key: &PublicKey) -> Subject {
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    Subject {
        public_key_hash: hex::encode(fingerprint.as_bytes()),
        shape: KeyShape::of(key.key_data()),
    }
}

/// A signed certificate, as the API answers it.
pub struct Signed {
    pub serial: u64,
    /// `ssh-…-cert-v01@openssh.com AAAA…` with a trailing newline.
    pub signed_key: String,
    pub certificate: Certificate,
}

/// Builds the certificate the plan describes for `subject` and signs it with the CA.
pub fn sign_certificate(
    ca: &CaKey,
    choice: SignatureChoice,
    subject: &PublicKey,
    plan: &CertificatePlan,
) -> Result<Signed, String> {
    let fail = |what: &str, error: russh::keys::ssh_key::Error| format!("{what}: {error}");
    let mut nonce = vec![0u8; Builder::RECOMMENDED_NONCE_SIZE];
    rand::fill(&mut nonce[..]);
    let serial: u64 = rand::random();
    let mut builder = Builder::new(
        nonce,
        subject.key_data().clone(),
        plan.valid_after,
        plan.valid_before,
    )
    .map_err(|error| fail("certificate validity", error))?;
    builder
        .serial(serial)
        .and_then(|builder| {
            builder.cert_type(match plan.kind {
                CertKind::User => CertType::User,
                CertKind::Host => CertType::Host,
            })
        })
        .and_then(|builder| builder.key_id(plan.key_id.clone()))
        .map_err(|error| fail("certificate fields", error))?;
    for principal in &plan.principals {
        builder
            .valid_principal(principal.clone())
            .map_err(|error| fail("certificate principal", error))?;
    }
    for (name, value) in &plan.critical_options {
        builder
            .critical_option(name.clone(), value.clone())
            .map_err(|error| fail("certificate critical option", error))?;
    }
    for (name, value) in &plan.extensions {
        builder
            .extension(name.clone(), value.clone())
            .map_err(|error| fail("certificate extension", error))?;
    }
    let signer = CaSigner {
        key: ca.private(),
        choice,
    };
    let certificate = builder
        .sign(&signer)
        .map_err(|error| fail("signing the certificate", error))?;
    let text = certificate
        .to_openssh()
        .map_err(|error| fail("encoding the certificate", error))?;
    Ok(Signed {
        serial,
        signed_key: format!("{text}\n"),
        certificate,
    })
}
