//! Certificates: Rotor's own CA, agent certificates signed from CSRs, the controller's server
//! certificate, and reading identities and fingerprints back out of certificates.
//!
//! Pure computation over PEM/DER: no files, no store, no revocation list (the controller keeps
//! those). Keys are ECDSA P-256 generated with aws-lc-rs. An agent's private key is created by
//! [`generate_agent_key_and_csr`] on the agent and never passes through the CA's code.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::ids::{AgentId, IdError};
use crate::secret::PrivateKeyPem;
use crate::tls::ServerIdentity;

/// The DNS name every controller server certificate carries. Agents verify the controller by
/// this name and their pinned CA, whatever address they dialled.
pub const CONTROLLER_SERVER_NAME: &str = "controller.rotor.internal";

/// Prefix of the SAN URI that names an agent: `rotor://agent/<id>`.
pub const AGENT_URI_PREFIX: &str = "rotor://agent/";

/// Validity of a CA made by [`CertificateAuthority::generate`].
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// How far back `not_before` is set on issued certificates, to tolerate clocks that lag.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// What went wrong with a certificate, key or CSR. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Text that should hold a PEM section could not be decoded.
    #[error("{what} is not valid PEM ({detail}): expected a '-----BEGIN ...-----' block")]
    BadPem {
        /// What was being read, e.g. "CA certificate".
        what: &'static str,
        /// The PEM decoder's complaint.
        detail: String,
    },
    /// PEM text contained no certificate.
    #[error("{what} contains no '-----BEGIN CERTIFICATE-----' block")]
    NoCertificate {
        /// What was being read.
        what: &'static str,
    },
    /// DER bytes are not an X.509 certificate.
    #[error("{what} is not a readable X.509 certificate: {detail}")]
    BadCertificate {
        /// What was being read.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// A private key could not be loaded.
    #[error(
        "{what} is not a usable private key ({detail}): expected a PKCS#8 ECDSA/Ed25519/RSA key in PEM"
    )]
    BadPrivateKey {
        /// Which key.
        what: &'static str,
        /// The loader's complaint (never the key).
        detail: String,
    },
    /// The certificate given as a CA is not marked as one.
    #[error("the CA certificate is not a CA (basic constraints CA:false or missing)")]
    NotACa,
    /// The CA key and certificate do not belong together.
    #[error(
        "the CA private key does not match the CA certificate's public key: check that both files come from the same CA"
    )]
    CaKeyMismatch,
    /// A CSR could not be parsed.
    #[error(
        "the certificate signing request is unreadable: {0}; create a new one with `rotor-agent enroll`"
    )]
    BadCsr(String),
    /// A CSR's self-signature does not verify: it was altered or corrupted.
    #[error(
        "the certificate signing request's signature is invalid (altered or corrupted in transit): create a new one with `rotor-agent enroll`"
    )]
    CsrSignatureInvalid,
    /// A CSR asks for something this CA does not understand.
    #[error("the certificate signing request uses an unsupported {0}")]
    CsrUnsupported(&'static str),
    /// A certificate has no `rotor://agent/<id>` SAN URI.
    #[error(
        "the certificate has no SAN URI {AGENT_URI_PREFIX}<id>: it is not a Rotor agent certificate"
    )]
    NoAgentUri,
    /// A certificate names more than one agent.
    #[error("the certificate names several agents ({0}): refusing an ambiguous identity")]
    AmbiguousAgentUri(String),
    /// The agent id inside a certificate is invalid.
    #[error("the certificate's agent id is invalid: {0}")]
    BadAgentId(#[from] IdError),
    /// A DNS name, URI or validity is not acceptable in a certificate.
    #[error("cannot put {what} into a certificate: {detail}")]
    BadParameter {
        /// Which parameter.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// Key generation or signing failed inside the crypto library.
    #[error("certificate operation failed: {0}")]
    Crypto(String),
}

/// A certificate this CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The certificate (leaf only) in PEM.
    pub cert_pem: String,
    /// Serial number, lowercase hex without leading zero bytes (as [`certificate_serial_hex`]).
    pub serial_hex: String,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
}

/// Rotor's certificate authority: signs agent and controller certificates.
pub struct CertificateAuthority {
    /// As given or generated; handed to agents so they can pin it.
    cert_pem: String,
    /// Parsed once, for fingerprints and for building the issuer.
    cert_der: CertificateDer<'static>,
    /// The CA certificate's `notAfter`, Unix seconds; issued certificates never outlive it.
    not_after_unix: i64,
    key_pem: PrivateKeyPem,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

fn crypto_error(error: rcgen::Error) -> PkiError {
    PkiError::Crypto(error.to_string())
}

fn unix_seconds(moment: SystemTime) -> i64 {
    match moment.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn offset_date_time(unix: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|error| PkiError::BadParameter {
        what: "a validity date",
        detail: error.to_string(),
    })
}

/// Sets `not_before` (now minus the skew allowance) and `not_after` (now plus `validity`,
/// capped at `cap_unix` when given). Returns `not_after` in Unix seconds.
fn set_validity(
    params: &mut CertificateParams,
    validity: Duration,
    cap_unix: Option<i64>,
) -> Result<i64, PkiError> {
    let now = unix_seconds(SystemTime::now());
    let validity_secs = i64::try_from(validity.as_secs()).map_err(|_| PkiError::BadParameter {
        what: "the validity",
        detail: format!("{validity:?} is too long"),
    })?;
    let mut not_after = now
        .checked_add(validity_secs)
        .ok_or(PkiError::BadParameter {
            what: "the validity",
            detail: format!("{validity:?} is too long"),
        })?;
    if let Some(cap) = cap_unix {
        not_after = not_after.min(cap);
    }
    let skew = CLOCK_SKEW_ALLOWANCE.as_secs() as i64;
    params.not_before = offset_date_time(now - skew)?;
    params.not_after = offset_date_time(not_after)?;
    Ok(not_after)
}

/// A random positive 128-bit serial (RFC 5280 allows up to 20 octets).
fn random_serial() -> SerialNumber {
    use rand::RngExt;
    let mut bytes: [u8; 16] = rand::rng().random();
    // Keep the top bit clear (positive INTEGER) and the first byte non-zero (fixed length).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn new_p256_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto_error)
}

fn parse_certificate<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, PkiError> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|error| PkiError::BadCertificate {
            what,
            detail: error.to_string(),
        })?;
    Ok(certificate)
}

fn first_certificate_der(
    pem: &str,
    what: &'static str,
) -> Result<CertificateDer<'static>, PkiError> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(error)) => Err(PkiError::BadPem {
            what,
            detail: error.to_string(),
        }),
        None => Err(PkiError::NoCertificate { what }),
    }
}

fn load_key_pair(key_pem: &PrivateKeyPem, what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(key_pem.expose()).map_err(|error| PkiError::BadPrivateKey {
        what,
        detail: error.to_string(),
    })
}

fn issued(der: &CertificateDer<'_>, pem: String) -> Result<IssuedCertificate, PkiError> {
    Ok(IssuedCertificate {
        cert_pem: pem,
        serial_hex: certificate_serial_hex(der)?,
        not_after_unix: certificate_not_after(der)?,
    })
}

fn common_name(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

impl CertificateAuthority {
    /// A new self-signed CA: ECDSA P-256, valid for ten years, `CA:true` with path length 0
    /// (it signs leaves only).
    pub fn generate(common_name_text: &str) -> Result<Self, PkiError> {
        let key = new_p256_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(common_name_text);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Rotor");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let not_after_unix = set_validity(&mut params, CA_VALIDITY, None)?;
        let certificate = params.self_signed(&key).map_err(crypto_error)?;
        Ok(Self {
            cert_pem: certificate.pem(),
            cert_der: certificate.der().clone(),
            not_after_unix,
            key_pem: PrivateKeyPem::new(key.serialize_pem()),
        })
    }

    /// Reloads a CA, checking that the certificate is a CA and that the key belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &PrivateKeyPem) -> Result<Self, PkiError> {
        let cert_der = first_certificate_der(cert_pem, "CA certificate")?;
        let certificate = parse_certificate(&cert_der, "CA certificate")?;
        if !certificate.is_ca() {
            return Err(PkiError::NotACa);
        }
        let key = load_key_pair(key_pem, "CA private key")?;
        if key.subject_public_key_info() != certificate.public_key().raw {
            return Err(PkiError::CaKeyMismatch);
        }
        let not_after_unix = certificate.validity().not_after.timestamp();
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            cert_der: cert_der.clone(),
            not_after_unix,
            key_pem: key_pem.clone(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> &PrivateKeyPem {
        &self.key_pem
    }

    /// `SHA256:` + lowercase hex of SHA-256 over the CA certificate's DER; what operators
    /// compare and agents pin at enrollment.
    pub fn fingerprint(&self) -> String {
        fingerprint_der(&self.cert_der)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = load_key_pair(&self.key_pem, "CA private key")?;
        Issuer::from_ca_cert_der(&self.cert_der, key).map_err(crypto_error)
    }

    /// Signs an agent's CSR. The certificate names the agent by SAN URI
    /// `rotor://agent/<id>` and CN `<id>`, allows client authentication only, and is valid for
    /// `validity` (never beyond the CA's own expiry). Everything the CSR asks for apart from
    /// its public key (subject, SANs, key usages) is ignored.
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        agent_id: &AgentId,
        validity: Duration,
    ) -> Result<IssuedCertificate, PkiError> {
        let request =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|error| match error {
                rcgen::Error::InvalidCertificationRequestSignature => PkiError::CsrSignatureInvalid,
                rcgen::Error::UnsupportedExtension => PkiError::CsrUnsupported("extension"),
                rcgen::Error::UnsupportedSignatureAlgorithm => {
                    PkiError::CsrUnsupported("key or signature algorithm")
                }
                other => PkiError::BadCsr(other.to_string()),
            })?;

        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(agent_id.as_str());
        let uri = format!("{AGENT_URI_PREFIX}{agent_id}");
        params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(
            |error: rcgen::Error| PkiError::BadParameter {
                what: "the agent URI",
                detail: error.to_string(),
            },
        )?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        set_validity(&mut params, validity, Some(self.not_after_unix))?;

        let certificate = params
            .signed_by(&request.public_key, &self.issuer()?)
            .map_err(crypto_error)?;
        issued(certificate.der(), certificate.pem())
    }

    /// Issues the controller's TLS server certificate with a fresh P-256 key. It always names
    /// [`CONTROLLER_SERVER_NAME`] (what agents verify), plus the given DNS names and IP
    /// addresses (what browsers and API clients verify). Server authentication only.
    pub fn issue_server_certificate(
        &self,
        dns_names: &[String],
        ip_addresses: &[IpAddr],
        validity: Duration,
    ) -> Result<(IssuedCertificate, PrivateKeyPem), PkiError> {
        let key = new_p256_key()?;
        let mut names: Vec<&str> = vec![CONTROLLER_SERVER_NAME];
        for name in dns_names {
            if !names.iter().any(|known| known.eq_ignore_ascii_case(name)) {
                names.push(name);
            }
        }
        let mut subject_alt_names = Vec::with_capacity(names.len() + ip_addresses.len());
        for name in names {
            // rcgen accepts any ASCII; check hostname syntax so a typo fails here, not in
            // every client that later tries to verify the certificate.
            rustls::pki_types::DnsName::try_from(name).map_err(|error| PkiError::BadParameter {
                what: "a DNS name",
                detail: format!("{name:?}: {error}"),
            })?;
            let dns_name = name.to_owned().try_into().map_err(|error: rcgen::Error| {
                PkiError::BadParameter {
                    what: "a DNS name",
                    detail: format!("{name:?}: {error}"),
                }
            })?;
            subject_alt_names.push(SanType::DnsName(dns_name));
        }
        for address in ip_addresses {
            if !subject_alt_names.contains(&SanType::IpAddress(*address)) {
                subject_alt_names.push(SanType::IpAddress(*address));
            }
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(CONTROLLER_SERVER_NAME);
        params.subject_alt_names = subject_alt_names;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        set_validity(&mut params, validity, Some(self.not_after_unix))?;

        let certificate = params
            .signed_by(&key, &self.issuer()?)
            .map_err(crypto_error)?;
        let issued_certificate = issued(certificate.der(), certificate.pem())?;
        Ok((issued_certificate, PrivateKeyPem::new(key.serialize_pem())))
    }

    /// [`Self::issue_server_certificate`], packaged as the identity the QUIC and HTTPS server
    /// configurations take: chain = leaf + this CA, so enrolling agents can pin the CA.
    pub fn issue_server_identity(
        &self,
        dns_names: &[String],
        ip_addresses: &[IpAddr],
        validity: Duration,
    ) -> Result<ServerIdentity, PkiError> {
        let (issued_certificate, key) =
            self.issue_server_certificate(dns_names, ip_addresses, validity)?;
        Ok(ServerIdentity::from_parts(
            &issued_certificate,
            key,
            &self.cert_pem,
        ))
    }
}

/// On the agent: a fresh P-256 key and a CSR for it. `agent_id_hint` only fills the CSR's CN
/// for the operator's benefit; the CA decides the real identity.
pub fn generate_agent_key_and_csr(
    agent_id_hint: &str,
) -> Result<(PrivateKeyPem, String), PkiError> {
    let key = new_p256_key()?;
    let hint: String = agent_id_hint.chars().take(64).collect();
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(if hint.is_empty() {
        "rotor-agent"
    } else {
        &hint
    });
    let request = params.serialize_request(&key).map_err(crypto_error)?;
    let csr_pem = request.pem().map_err(crypto_error)?;
    Ok((PrivateKeyPem::new(key.serialize_pem()), csr_pem))
}

/// Fingerprint of the first certificate in `cert_pem`: `SHA256:` + lowercase hex.
pub fn fingerprint_pem(cert_pem: &str) -> Result<String, PkiError> {
    Ok(fingerprint_der(&first_certificate_der(
        cert_pem,
        "certificate",
    )?))
}

/// `SHA256:` + lowercase hex of SHA-256 over `der`.
pub fn fingerprint_der(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    format!("SHA256:{}", hex::encode(digest.as_ref()))
}

/// The agent a certificate names, from its SAN URI `rotor://agent/<id>`. Does not check the
/// signature or validity: use it on certificates TLS has already verified.
pub fn agent_id_from_certificate(der: &[u8]) -> Result<AgentId, PkiError> {
    let certificate = parse_certificate(der, "agent certificate")?;
    let extension = certificate
        .subject_alternative_name()
        .map_err(|error| PkiError::BadCertificate {
            what: "agent certificate's subject alternative names",
            detail: error.to_string(),
        })?
        .ok_or(PkiError::NoAgentUri)?;
    let mut agent_ids: Vec<&str> = extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(AGENT_URI_PREFIX),
            _ => None,
        })
        .collect();
    agent_ids.dedup();
    match agent_ids.as_slice() {
        [] => Err(PkiError::NoAgentUri),
        [only] => Ok(AgentId::new(*only)?),
        several => Err(PkiError::AmbiguousAgentUri(several.join(", "))),
    }
}

/// The certificate's `notAfter`, Unix seconds.
pub fn certificate_not_after(der: &[u8]) -> Result<i64, PkiError> {
    Ok(parse_certificate(der, "certificate")?
        .validity()
        .not_after
        .timestamp())
}

/// The certificate's serial number, lowercase hex without leading zero bytes.
pub fn certificate_serial_hex(der: &[u8]) -> Result<String, PkiError> {
    let certificate = parse_certificate(der, "certificate")?;
    let raw = certificate.raw_serial();
    let significant = match raw.iter().position(|byte| *byte != 0) {
        Some(first) => &raw[first..],
        None => &[0u8][..],
    };
    Ok(hex::encode(significant))
}

/// Every certificate in `pem`, in order (for a chain: leaf first). Other PEM sections (keys)
/// are skipped; no certificate at all is an error.
pub fn pem_to_der_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| PkiError::BadPem {
            what: "certificate chain",
            detail: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(PkiError::NoCertificate {
            what: "certificate chain",
        });
    }
    Ok(chain)
}

#[cfg(test)]
mod tests;
