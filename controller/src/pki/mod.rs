//! The controller's own certificate authority, kept in the store with its key sealed.
//!
//! Owns creating the CA on first start, reloading it afterwards, and issuing the
//! controller's server certificates (agents' QUIC listener, the HTTPS API). Agent
//! certificates are signed at enrollment by `dispatch`. Must not hand the CA key to anyone.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use rotor_common::pki::CertificateAuthority;
use rotor_common::secret::PrivateKeyPem;
use rotor_common::tls::ServerIdentity;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Table};

const CA_KEY: &str = "ca";
const CA_SEAL_LOCATION: &str = "meta/ca.key";
/// Server certificates are reissued at every start; a year is ample.
const SERVER_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Serialize, Deserialize)]
struct CaRecord {
    cert_pem: String,
    /// The CA's private key, sealed.
    key_sealed: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("certificate authority: {0}")]
    Pki(String),
}

/// Loads the CA from the store, creating it on first start.
pub fn load_or_create_ca(store: &Store) -> Result<CertificateAuthority, CaError> {
    if let Some(record) = store.get::<CaRecord>(Table::Meta, CA_KEY)? {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&record.key_sealed)
            .map_err(|_| CaError::Pki("the stored CA key is not valid base64".into()))?;
        let key_bytes = store.unseal(CA_SEAL_LOCATION, &sealed)?;
        let key_text = String::from_utf8(key_bytes.to_vec())
            .map_err(|_| CaError::Pki("the stored CA key is not PEM text".into()))?;
        return CertificateAuthority::from_pem(&record.cert_pem, &PrivateKeyPem::new(key_text))
            .map_err(|error| CaError::Pki(error.to_string()));
    }
    let ca = CertificateAuthority::generate("Rotor controller CA")
        .map_err(|error| CaError::Pki(error.to_string()))?;
    let sealed = store.seal(CA_SEAL_LOCATION, ca.key_pem().expose().as_bytes())?;
    let record = CaRecord {
        cert_pem: ca.cert_pem().to_string(),
        key_sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    store.write(|tx| {
        // Two controllers starting on one store at once must not both create a CA.
        if tx.get::<CaRecord>(Table::Meta, CA_KEY)?.is_some() {
            return Err(StoreError::Corrupt {
                table: "meta",
                key: CA_KEY.into(),
                detail: "a CA appeared while this one was being created; restart".into(),
            });
        }
        tx.put(Table::Meta, CA_KEY, &record)
    })?;
    tracing::info!(fingerprint = %ca.fingerprint(), "created the controller's certificate authority");
    Ok(ca)
}

/// A server identity (leaf + CA chain, key) issued by the CA for the given names.
pub fn issue_server_identity(
    ca: &CertificateAuthority,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
) -> Result<ServerIdentity, CaError> {
    let (issued, key) = ca
        .issue_server_certificate(dns_names, ip_addresses, SERVER_CERTIFICATE_VALIDITY)
        .map_err(|error| CaError::Pki(error.to_string()))?;
    Ok(ServerIdentity {
        cert_chain_pem: format!("{}{}", issued.cert_pem, ca.cert_pem()),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    #[test]
    fn ca_is_created_once_and_reloaded() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let first = load_or_create_ca(&store).expect("create");
        let again = load_or_create_ca(&store).expect("reload");
        assert_eq!(first.fingerprint(), again.fingerprint());
        let raw: serde_json::Value = store
            .get(Table::Meta, CA_KEY)
            .expect("get")
            .expect("present");
        assert!(
            !raw.to_string().contains("PRIVATE KEY"),
            "CA key stored in clear"
        );
    }
}
