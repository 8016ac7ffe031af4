//! TLS to PostgreSQL with rustls on aws-lc-rs: `sslmode=require` (encrypted, the server's
//! certificate not checked, as libpq's `require`) and `sslmode=verify-full` (the chain checked
//! against the configured CA, or the webpki roots, and the host name).
//!
//! Owns only building the connector; the connection is `postgres.rs`'s.

use std::sync::Arc;

use rotor_common::wire::database::{DatabaseTarget, SslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The connector for `target`'s `ssl_mode` (not `Disable`).
pub fn connector(target: &DatabaseTarget) -> Result<MakeRustlsConnect, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("no TLS version available: {error}"))?;
    let config = match target.ssl_mode {
        SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match &target.ca_pem {
                Some(pem) => {
                    for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                        let certificate = certificate
                            .map_err(|error| format!("the CA (tls_ca) is not PEM: {error}"))?;
                        roots
                            .add(certificate)
                            .map_err(|error| format!("the CA (tls_ca) is unusable: {error}"))?;
                    }
                    if roots.is_empty() {
                        return Err(
                            "sslmode=verify-full with a tls_ca holding no certificate".to_string()
                        );
                    }
                }
                None => {
                    return Err(
                        "sslmode=verify-full needs the database's CA: set tls_ca on the connection"
                            .to_string(),
                    );
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        SslMode::Require | SslMode::Prefer | SslMode::Disable => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `sslmode=require`: any certificate, but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
