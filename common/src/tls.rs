//! TLS and QUIC configurations for Rotor's processes: the controller's QUIC endpoint (mutual
//! TLS, client certificates optional so agents can enroll), the agent's authenticated and
//! enrollment clients, and the HTTPS API server.
//!
//! Builds configurations only: no sockets, no endpoints, no retries. Every configuration uses
//! its own aws-lc-rs provider, so no process-wide provider is required. Deciding whether an
//! authenticated agent is registered or revoked is the controller's job, not this module's.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::ids::AgentId;
use crate::pki::{
    CONTROLLER_SERVER_NAME, IssuedCertificate, PkiError, agent_id_from_certificate,
    fingerprint_der, pem_to_der_chain,
};
use crate::secret::PrivateKeyPem;
use crate::wire::ALPN;

/// A TLS or QUIC configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or chain could not be read.
    #[error("{what}: {source}")]
    Certificate {
        /// Which certificate(s).
        what: &'static str,
        /// What was wrong.
        source: PkiError,
    },
    /// A private key could not be read (the key itself is never shown).
    #[error(
        "{what} is not a usable private key ({detail}): expected a PKCS#8, SEC1 or PKCS#1 key in PEM"
    )]
    PrivateKey {
        /// Which key.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// rustls refused the configuration (e.g. key and certificate do not match).
    #[error("cannot build {what}: {source}")]
    Rustls {
        /// Which configuration.
        what: &'static str,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The certificate verifier could not be built.
    #[error("cannot build the {what} verifier: {detail}")]
    Verifier {
        /// Which side's verifier.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// quinn refused the TLS configuration.
    #[error("cannot use the TLS configuration for QUIC: {0}")]
    Quic(String),
    /// Keep-alive is not shorter than the idle timeout, so idle connections would drop.
    #[error(
        "keep-alive interval {keep_alive:?} must be non-zero and shorter than the idle timeout {idle_timeout:?}, or idle agents drop: lower the keep-alive or raise the idle timeout"
    )]
    KeepAliveNotBelowIdleTimeout {
        /// The configured idle timeout.
        idle_timeout: Duration,
        /// The configured keep-alive interval.
        keep_alive: Duration,
    },
    /// The idle timeout does not fit QUIC's limits.
    #[error("idle timeout {0:?} is too large for QUIC")]
    IdleTimeoutTooLarge(Duration),
    /// A CA fingerprint given for pinning is not in the expected form.
    #[error(
        "{shown:?} is not a CA fingerprint: expected SHA256: followed by 64 hex digits, as the controller prints it"
    )]
    BadFingerprint {
        /// The text given, truncated.
        shown: String,
    },
}

fn certificate_error(what: &'static str) -> impl FnOnce(PkiError) -> TlsError {
    move |source| TlsError::Certificate { what, source }
}

fn rustls_error(what: &'static str) -> impl FnOnce(rustls::Error) -> TlsError {
    move |source| TlsError::Rustls { what, source }
}

/// Installs aws-lc-rs as the process-wide rustls provider, for code (axum-server, reqwest)
/// that builds its own configurations with `builder()`. Idempotent; safe to call from tests.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = aws_lc_rs::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The controller's certificate chain (leaf first, then the CA) and its key.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    /// PEM: the leaf, then the CA certificate, so enrolling agents can pin the CA.
    pub cert_chain_pem: String,
    /// The leaf's private key.
    pub key: PrivateKeyPem,
}

impl ServerIdentity {
    /// Assembles an identity from an issued server certificate, its key and the CA's PEM.
    pub fn from_parts(issued: &IssuedCertificate, key: PrivateKeyPem, ca_pem: &str) -> Self {
        let mut cert_chain_pem = issued.cert_pem.trim_end().to_owned();
        cert_chain_pem.push('\n');
        cert_chain_pem.push_str(ca_pem.trim_end());
        cert_chain_pem.push('\n');
        Self {
            cert_chain_pem,
            key,
        }
    }
}

fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in pem_to_der_chain(ca_pem).map_err(certificate_error("the CA certificate"))? {
        roots
            .add(certificate)
            .map_err(rustls_error("the trusted CA set"))?;
    }
    Ok(roots)
}

fn private_key(
    key: &PrivateKeyPem,
    what: &'static str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|error| TlsError::PrivateKey {
        what,
        detail: error.to_string(),
    })
}

fn transport_config(
    idle_timeout: Duration,
    keep_alive: Duration,
) -> Result<Arc<quinn::TransportConfig>, TlsError> {
    if keep_alive.is_zero() || keep_alive >= idle_timeout {
        return Err(TlsError::KeepAliveNotBelowIdleTimeout {
            idle_timeout,
            keep_alive,
        });
    }
    let idle = quinn::IdleTimeout::try_from(idle_timeout)
        .map_err(|_| TlsError::IdleTimeoutTooLarge(idle_timeout))?;
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(keep_alive));
    Ok(Arc::new(transport))
}

/// The controller's QUIC server configuration.
///
/// Client certificates are verified against `ca_pem` when presented but are optional, so an
/// enrolling agent without one can connect: treat a connection as authenticated only once
/// [`peer_agent_id`] returns an id (and the registry agrees). The server sends its whole
/// chain; if `identity` lacks the CA certificates of `ca_pem`, they are appended so enrolling
/// agents can pin the CA. ALPN `rotor/1`, TLS 1.3.
pub fn quic_server_config(
    ca_pem: &str,
    identity: &ServerIdentity,
    idle_timeout: Duration,
    keep_alive: Duration,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let client_verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(ca_pem)?),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|error| TlsError::Verifier {
        what: "agent certificate",
        detail: error.to_string(),
    })?;

    let mut chain = pem_to_der_chain(&identity.cert_chain_pem)
        .map_err(certificate_error("the server certificate chain"))?;
    for ca_certificate in
        pem_to_der_chain(ca_pem).map_err(certificate_error("the CA certificate"))?
    {
        if !chain.contains(&ca_certificate) {
            chain.push(ca_certificate);
        }
    }
    let key = private_key(&identity.key, "the server key")?;

    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_error("the QUIC server configuration"))?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain, key)
        .map_err(rustls_error("the QUIC server configuration"))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];

    let quic =
        QuicServerConfig::try_from(tls).map_err(|error| TlsError::Quic(error.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport_config(idle_timeout, keep_alive)?);
    Ok(config)
}

fn controller_server_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls::pki_types::DnsName::try_from(CONTROLLER_SERVER_NAME)
            .map(|name| name.to_owned())
            .unwrap_or_else(|_| unreachable!("CONTROLLER_SERVER_NAME is a valid DNS name")),
    )
}

/// Verifies the controller against a CA as [`CONTROLLER_SERVER_NAME`], whatever name or
/// address the caller passed to `connect()`.
#[derive(Debug)]
struct ControllerNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ControllerNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            &controller_server_name(),
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn quic_client_from_tls(
    mut tls: rustls::ClientConfig,
    idle_timeout: Duration,
    keep_alive: Duration,
) -> Result<quinn::ClientConfig, TlsError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic =
        QuicClientConfig::try_from(tls).map_err(|error| TlsError::Quic(error.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config(idle_timeout, keep_alive)?);
    Ok(config)
}

/// The agent's QUIC client configuration: presents the agent certificate and verifies the
/// controller as [`CONTROLLER_SERVER_NAME`] against `ca_pem`, whatever address was dialled
/// (pass [`CONTROLLER_SERVER_NAME`] to `connect()` as the server name). ALPN `rotor/1`.
pub fn quic_client_config(
    ca_pem: &str,
    client_cert_pem: &str,
    client_key: &PrivateKeyPem,
    idle_timeout: Duration,
    keep_alive: Duration,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(
        Arc::new(root_store(ca_pem)?),
        provider.clone(),
    )
    .build()
    .map_err(|error| TlsError::Verifier {
        what: "controller certificate",
        detail: error.to_string(),
    })?;
    let chain =
        pem_to_der_chain(client_cert_pem).map_err(certificate_error("the agent certificate"))?;
    let key = private_key(client_key, "the agent key")?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_error("the QUIC client configuration"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ControllerNameVerifier { inner }))
        .with_client_auth_cert(chain, key)
        .map_err(rustls_error("the QUIC client configuration"))?;
    quic_client_from_tls(tls, idle_timeout, keep_alive)
}

/// Normalizes a CA fingerprint as operators may type it (`SHA256:AB12…`, `sha256:ab:12:…`,
/// bare hex) to the form [`fingerprint_der`] produces: `SHA256:` + 64 lowercase hex digits.
pub fn normalize_fingerprint(text: &str) -> Result<String, TlsError> {
    let trimmed = text.trim();
    let without_prefix = match trimmed.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &trimmed[7..],
        _ => trimmed,
    };
    let digits: String = without_prefix
        .chars()
        .filter(|character| *character != ':')
        .collect();
    if digits.len() != 64 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(TlsError::BadFingerprint {
            shown: trimmed.chars().take(100).collect(),
        });
    }
    Ok(format!("SHA256:{}", digits.to_ascii_lowercase()))
}

/// What the last handshake of an enrollment configuration saw.
#[derive(Debug, Default)]
struct PinObservation {
    /// Fingerprints of every certificate the controller sent, leaf first.
    offered_fingerprints: Vec<String>,
    /// Whether one of them had the pinned fingerprint.
    pinned_ca_offered: bool,
}

/// Reports what the controller offered during an enrollment handshake, so a refused handshake
/// can be explained ("expected SHA256:aa…, controller offered SHA256:bb…"). Cheap to clone;
/// all clones share the observation of the most recent handshake made with the configuration.
#[derive(Debug, Clone)]
pub struct PinnedCaObserver {
    expected_fingerprint: Arc<str>,
    // A std mutex: held only to copy a few strings, never across an await.
    observation: Arc<Mutex<PinObservation>>,
}

impl PinnedCaObserver {
    fn lock(&self) -> MutexGuard<'_, PinObservation> {
        // A panic while holding the lock cannot leave the data half-written in a way that
        // matters here, so a poisoned lock is still read.
        self.observation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pinned fingerprint, normalized (`SHA256:` + lowercase hex).
    pub fn expected_fingerprint(&self) -> &str {
        &self.expected_fingerprint
    }

    /// Fingerprints of every certificate the controller sent in the last handshake, leaf
    /// first; empty if no handshake got that far.
    pub fn offered_fingerprints(&self) -> Vec<String> {
        self.lock().offered_fingerprints.clone()
    }

    /// Whether the last handshake offered a certificate with the pinned fingerprint.
    pub fn pinned_ca_offered(&self) -> bool {
        self.lock().pinned_ca_offered
    }

    /// If the last handshake failed because the pinned CA was not offered: an operator-facing
    /// explanation naming the expected and offered fingerprints. `None` otherwise.
    pub fn mismatch_message(&self) -> Option<String> {
        let observation = self.lock();
        if observation.pinned_ca_offered || observation.offered_fingerprints.is_empty() {
            return None;
        }
        let (leaf, ca_candidates) = observation.offered_fingerprints.split_first()?;
        let offered = if ca_candidates.is_empty() {
            format!("only its own certificate {leaf} and no CA certificate")
        } else {
            ca_candidates.join(", ")
        };
        Some(format!(
            "the controller's CA does not match the pinned fingerprint: expected {}, controller offered {offered}; \
             check the fingerprint given to enroll, or that you reached the right controller",
            self.expected_fingerprint
        ))
    }
}

/// Accepts the controller only if it sends a certificate with the pinned fingerprint and its
/// leaf chains to that certificate for [`CONTROLLER_SERVER_NAME`].
#[derive(Debug)]
struct PinnedCaVerifier {
    provider: Arc<CryptoProvider>,
    observer: PinnedCaObserver,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let offered: Vec<String> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|certificate| fingerprint_der(certificate))
            .collect();
        let pinned = intermediates.iter().find(|certificate| {
            fingerprint_der(certificate) == *self.observer.expected_fingerprint
        });
        {
            let mut observation = self.observer.lock();
            observation.offered_fingerprints = offered;
            observation.pinned_ca_offered = pinned.is_some();
        }
        let Some(pinned) = pinned else {
            return Err(rustls::Error::General(format!(
                "controller did not offer the pinned CA {}",
                self.observer.expected_fingerprint
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(pinned.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|error| {
                    rustls::Error::General(format!("cannot verify against the pinned CA: {error}"))
                })?;
        verifier.verify_server_cert(
            end_entity,
            intermediates,
            &controller_server_name(),
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Idle timeout of enrollment connections (short-lived: one request, one answer).
pub const ENROLLMENT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Keep-alive of enrollment connections.
pub const ENROLLMENT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The enrolling agent's QUIC client configuration: no client certificate; the controller is
/// accepted only if one of the certificates it sends has SHA-256 fingerprint `ca_fingerprint`
/// (any form [`normalize_fingerprint`] accepts) and its leaf chains to that certificate for
/// [`CONTROLLER_SERVER_NAME`]. When the handshake fails, the returned observer says what the
/// controller offered instead. Timeouts: [`ENROLLMENT_IDLE_TIMEOUT`], [`ENROLLMENT_KEEP_ALIVE`].
pub fn quic_enrollment_client_config(
    ca_fingerprint: &str,
) -> Result<(quinn::ClientConfig, PinnedCaObserver), TlsError> {
    let observer = PinnedCaObserver {
        expected_fingerprint: normalize_fingerprint(ca_fingerprint)?.into(),
        observation: Arc::default(),
    };
    let provider = provider();
    let verifier = PinnedCaVerifier {
        provider: provider.clone(),
        observer: observer.clone(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_error("the enrollment client configuration"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let config = quic_client_from_tls(tls, ENROLLMENT_IDLE_TIMEOUT, ENROLLMENT_KEEP_ALIVE)?;
    Ok((config, observer))
}

/// The agent a QUIC peer authenticated as: `None` if it sent no certificate (an enrolling
/// agent), `Some(Err)` if its certificate names no valid agent. The certificate itself was
/// already verified against the CA by the handshake.
pub fn peer_agent_id(conn: &quinn::Connection) -> Option<Result<AgentId, PkiError>> {
    let identity = conn.peer_identity()?;
    let chain = match identity.downcast::<Vec<CertificateDer<'static>>>() {
        Ok(chain) => chain,
        Err(_) => {
            return Some(Err(PkiError::BadCertificate {
                what: "peer identity",
                detail: "the TLS layer reported something other than an X.509 chain".to_owned(),
            }));
        }
    };
    let leaf = chain.first()?;
    Some(agent_id_from_certificate(leaf))
}

/// The HTTPS API's rustls configuration: TLS 1.2 and 1.3, no client certificates, ALPN `h2`
/// then `http/1.1`.
pub fn https_server_config(identity: &ServerIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let chain = pem_to_der_chain(&identity.cert_chain_pem)
        .map_err(certificate_error("the HTTPS certificate chain"))?;
    let key = private_key(&identity.key, "the HTTPS key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error("the HTTPS configuration"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rustls_error("the HTTPS configuration"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests;
