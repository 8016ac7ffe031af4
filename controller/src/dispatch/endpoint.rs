//! The agents' QUIC endpoint, bound with a stateless-reset key that outlives the process.
//!
//! A controller killed with -9 sends no CONNECTION_CLOSE: an agent would notice only when its
//! heartbeats went unanswered for their timeout (20 s). QUIC's stateless reset ends that wait:
//! a restarted endpoint that receives a packet for a connection it does not know answers with
//! a reset token, and the agent drops the connection at once and reconnects. The token is an
//! HMAC of the connection id under the endpoint's reset key, so the key must be the same
//! before and after the restart: it is made once, sealed into the store (`meta`,
//! `quic-reset-key`) and read back at every start.
//!
//! Owns the key and binding the socket. Must not handle connections (`mod.rs` does).

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Table};

const RESET_KEY: &str = "quic-reset-key";
const RESET_KEY_SEAL_LOCATION: &str = "meta/quic-reset-key";
const RESET_KEY_BYTES: usize = 32;

#[derive(Serialize, Deserialize)]
struct ResetKeyRecord {
    /// The key, sealed and base64-encoded.
    key_sealed: String,
}

/// Why the agents' endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("the agents' QUIC reset key: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the agents' QUIC reset key in the store is damaged ({0}); delete meta/{RESET_KEY} to make a new one"
    )]
    Damaged(String),
    #[error("binding the agent listener on {address} (UDP): {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The stateless-reset key: read from the store, or made and stored on first start.
fn reset_key(store: &Store) -> Result<Vec<u8>, EndpointError> {
    let decode = |record: &ResetKeyRecord| -> Result<Vec<u8>, EndpointError> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&record.key_sealed)
            .map_err(|error| EndpointError::Damaged(error.to_string()))?;
        let key = store.unseal(RESET_KEY_SEAL_LOCATION, &sealed)?;
        if key.len() != RESET_KEY_BYTES {
            return Err(EndpointError::Damaged(format!(
                "{} bytes, expected {RESET_KEY_BYTES}",
                key.len()
            )));
        }
        Ok(key.to_vec())
    };
    if let Some(record) = store.get::<ResetKeyRecord>(Table::Meta, RESET_KEY)? {
        return decode(&record);
    }
    let mut key = vec![0u8; RESET_KEY_BYTES];
    rand::fill(&mut key[..]);
    let record = ResetKeyRecord {
        key_sealed: base64::engine::general_purpose::STANDARD
            .encode(store.seal(RESET_KEY_SEAL_LOCATION, &key)?),
    };
    // Another start racing this one cannot happen (the store file is locked), but keep the
    // first key written either way.
    let stored = store.write(|tx| {
        if let Some(existing) = tx.get::<ResetKeyRecord>(Table::Meta, RESET_KEY)? {
            return Ok::<_, StoreError>(existing);
        }
        tx.put(Table::Meta, RESET_KEY, &record)?;
        Ok(record)
    })?;
    decode(&stored)
}

/// Binds the agents' QUIC endpoint on `address` with the store's reset key.
pub fn bind(
    store: &Store,
    server_config: quinn::ServerConfig,
    address: SocketAddr,
) -> Result<quinn::Endpoint, EndpointError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &reset_key(store)?);
    // The endpoint answers a packet for an unknown connection with a reset only when its
    // connection id validates under the endpoint's id-generator key, so that key must
    // survive the restart too: it is derived from the reset key.
    let cid_key = hmac::sign(&key, b"rotor: quic connection id key");
    let mut cid_key_bytes = [0u8; 8];
    cid_key_bytes.copy_from_slice(&cid_key.as_ref()[..8]);
    let cid_key = u64::from_be_bytes(cid_key_bytes);
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let socket = std::net::UdpSocket::bind(address)
        .map_err(|source| EndpointError::Bind { address, source })?;
    quinn::Endpoint::new(
        config,
        Some(server_config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|source| EndpointError::Bind { address, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    #[test]
    fn the_reset_key_is_made_once_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rotor.redb");
        let key_file = dir.path().join("seal.key");
        let sealer = Sealer::create_key_file(&key_file).expect("seal key");
        let first = {
            let store = Store::open(&path, sealer).expect("store");
            let key = reset_key(&store).expect("made");
            assert_eq!(key.len(), RESET_KEY_BYTES);
            assert_eq!(
                reset_key(&store).expect("again"),
                key,
                "same store, same key"
            );
            key
        };
        let store = Store::open(&path, Sealer::load(&key_file).expect("load")).expect("reopen");
        assert_eq!(
            reset_key(&store).expect("after restart"),
            first,
            "a restarted controller must sign resets with the key its agents' tokens came from"
        );
    }
}
