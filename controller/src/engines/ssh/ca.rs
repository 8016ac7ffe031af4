//! The engine's signing key (`config/ca`): installing a generated or imported key, keeping
//! it sealed in the store (row `meta/ssh-ca:<mount>`), loading it to sign, deleting it.
//!
//! The private key leaves this module only inside a [`CaKey`], whose Debug shows the
//! algorithm and fingerprint; it is never returned by the API, logged or put in an error.

use base64::Engine;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::ssh_key::{HashAlg, LineEnding, PrivateKey};
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::store::{Store, StoreError, StoreResult, Table};
use crate::tokens::now_unix;

#[derive(Serialize, Deserialize)]
struct CaRecord {
    /// OpenSSH public key line, without comment or newline.
    public_key: String,
    /// The private key in OpenSSH binary form, sealed, base64.
    private_key_sealed: String,
    created_unix: u64,
}

fn record_key(mount: &str) -> String {
    format!("ssh-ca:{mount}")
}

fn seal_location(mount: &str) -> String {
    format!("meta/ssh-ca:{mount}")
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A loaded CA private key, ready to sign.
pub struct CaKey {
    key: PrivateKey,
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "CaKey({} {}, private key redacted)",
            self.key.algorithm().as_str(),
            self.key.fingerprint(HashAlg::Sha256)
        )
    }
}

impl CaKey {
    pub(super) fn private(&self) -> &PrivateKey {
        &self.key
    }

    pub fn is_rsa(&self) -> bool {
        matches!(self.key.key_data(), KeypairData::Rsa(_))
    }

    /// The OpenSSH name of the key (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`).
    pub fn algorithm_name(&self) -> String {
        self.key.algorithm().as_str().to_string()
    }
}

/// The public key as the API shows it: one OpenSSH line, no comment.
fn public_line(key: &PrivateKey) -> Result<String, ApiError> {
    let mut public = key.public_key().clone();
    public.set_comment("");
    public
        .to_openssh()
        .map_err(|error| ApiError::internal(format!("encoding the CA public key failed: {error}")))
}

/// The CA's public key line, or `None` when none is configured at `mount`.
pub fn public_key(store: &Store, mount: &str) -> StoreResult<Option<String>> {
    Ok(store
        .get::<CaRecord>(Table::Meta, &record_key(mount))?
        .map(|record| record.public_key))
}

/// Stores `key` as the CA of `mount`, sealed; answers its public key line. Refuses when a
/// CA is already configured: replacing it silently would lock out every host that trusts
/// the old one.
pub fn install(store: &Store, mount: &str, key: &PrivateKey) -> Result<String, ApiError> {
    let public_key = public_line(key)?;
    let bytes = key
        .to_bytes()
        .map_err(|error| ApiError::internal(format!("encoding the CA key failed: {error}")))?;
    let sealed = store.seal(&seal_location(mount), &bytes)?;
    let record = CaRecord {
        public_key: public_key.clone(),
        private_key_sealed: b64().encode(sealed),
        created_unix: now_unix(),
    };
    store.write(|tx| {
        if tx.get::<CaRecord>(Table::Meta, &record_key(mount))?.is_some() {
            return Err(ApiError::bad_request(format!(
                "a CA key is already configured at {mount}; delete {mount}config/ca first (hosts and users that trust the old key must then be given the new one)"
            )));
        }
        tx.put(Table::Meta, &record_key(mount), &record)
            .map_err(ApiError::from)
    })?;
    Ok(public_key)
}

/// Loads and unseals the CA of `mount`.
pub fn load(store: &Store, mount: &str) -> Result<Option<CaKey>, ApiError> {
    let Some(record) = store.get::<CaRecord>(Table::Meta, &record_key(mount))? else {
        return Ok(None);
    };
    let corrupt = |detail: &str| StoreError::Corrupt {
        table: Table::Meta.name(),
        key: record_key(mount),
        detail: detail.to_string(),
    };
    let sealed = b64()
        .decode(&record.private_key_sealed)
        .map_err(|_| corrupt("the sealed CA key is not base64"))?;
    let bytes = store.unseal(&seal_location(mount), &sealed)?;
    let key = PrivateKey::from_bytes(&bytes)
        .map_err(|_| corrupt("the unsealed CA key is not an OpenSSH private key"))?;
    Ok(Some(CaKey { key }))
}

/// Removes the CA of `mount`; answers whether there was one.
pub fn delete(store: &Store, mount: &str) -> StoreResult<bool> {
    store.write(|tx| tx.delete(Table::Meta, &record_key(mount)))
}

/// The private key as `ssh/issue` returns it: OpenSSH format, LF line endings.
pub fn private_key_openssh(key: &PrivateKey) -> Result<String, ApiError> {
    key.to_openssh(LineEnding::LF)
        .map(|text| text.to_string())
        .map_err(|error| {
            ApiError::internal(format!("encoding the new private key failed: {error}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::ssh::keys::{KeySpec, generate};
    use crate::store::Sealer;

    #[test]
    fn the_key_is_sealed_reloaded_and_never_replaced_silently() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let key = generate(KeySpec::Ed25519).expect("key");
        let public = install(&store, "ssh/", &key).expect("install");
        assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
        assert_eq!(
            public_key(&store, "ssh/").expect("read").as_deref(),
            Some(public.as_str())
        );

        // The row holds no clear key material.
        let raw: serde_json::Value = store
            .get(Table::Meta, "ssh-ca:ssh/")
            .expect("get")
            .expect("row");
        let clear = key.to_bytes().expect("bytes");
        let sealed_text = raw["private_key_sealed"].as_str().expect("sealed");
        assert!(!sealed_text.contains(&b64().encode(&clear[..])));

        let loaded = load(&store, "ssh/").expect("load").expect("present");
        assert_eq!(loaded.private().public_key(), key.public_key());
        let shown = format!("{loaded:?}");
        assert!(
            shown.contains("redacted") && shown.contains("SHA256:"),
            "{shown}"
        );

        let other = generate(KeySpec::Ed25519).expect("key");
        let error = install(&store, "ssh/", &other).expect_err("second CA");
        assert!(error.message.contains("already configured"), "{error}");
        assert!(load(&store, "other/").expect("load").is_none());

        assert!(delete(&store, "ssh/").expect("delete"));
        assert!(public_key(&store, "ssh/").expect("read").is_none());
        install(&store, "ssh/", &other).expect("install after delete");
    }
}
