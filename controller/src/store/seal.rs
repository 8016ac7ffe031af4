//! The seal: AES-256-GCM over every secret value the store keeps.
//!
//! Owns the key (which never enters the database file) and the sealed byte layout
//! `version(1) | nonce(12) | ciphertext+tag`. The associated data binds a sealed value to
//! the table and key it was written under, so a value copied to another row fails to open.
//! Must not decide what is secret: callers choose which fields to seal.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

/// Length of the raw key in bytes.
pub const KEY_LEN: usize = 32;
const LAYOUT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("seal key file {path}: {detail}")]
    KeyFile { path: String, detail: String },
    #[error(
        "a sealed value in {location} could not be opened: wrong seal key, or the value was tampered with"
    )]
    Open { location: String },
    #[error("sealing a value for {location} failed")]
    Seal { location: String },
}

/// The key that seals secret values. Debug never shows it.
pub struct Sealer {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sealer(<key redacted>)")
    }
}

impl Sealer {
    /// A fresh random key that lives only in memory (dev mode).
    pub fn ephemeral() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::fill(&mut bytes[..]);
        Self::from_bytes(&bytes[..]).unwrap_or_else(|_| unreachable!("a 32-byte key is valid"))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::KeyFile {
            path: String::from("<memory>"),
            detail: format!("a seal key must be {KEY_LEN} bytes"),
        })?;
        Ok(Self { key })
    }

    /// Reads the key file (hex, 0600). Refuses files readable by group or others.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let key_error = |detail: String| SealError::KeyFile {
            path: path.display().to_string(),
            detail,
        };
        let metadata = fs::metadata(path).map_err(|error| key_error(error.to_string()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_error(format!(
                "permissions are {mode:o}; it must be readable by its owner only: chmod 600 {}",
                path.display()
            )));
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?);
        let bytes = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| key_error("it does not hold a hex-encoded key".into()))?,
        );
        if bytes.len() != KEY_LEN {
            return Err(key_error(format!(
                "it holds {} bytes, a seal key has {KEY_LEN}",
                bytes.len()
            )));
        }
        Self::from_bytes(&bytes).map_err(|_| key_error("the key was refused".into()))
    }

    /// Creates a new key file with mode 0600; refuses to overwrite an existing one.
    pub fn create_key_file(path: &Path) -> Result<Self, SealError> {
        let key_error = |detail: String| SealError::KeyFile {
            path: path.display().to_string(),
            detail,
        };
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::fill(&mut bytes[..]);
        let text = Zeroizing::new(hex::encode(&bytes[..]));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|error| key_error(format!("cannot create it: {error}")))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|error| key_error(format!("cannot write it: {error}")))?;
        Self::from_bytes(&bytes[..])
    }

    /// Seals `plaintext` for the row named by `location` (e.g. `agents/ab12.ca_key`).
    pub fn seal(&self, location: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(location.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Seal {
                location: location.to_string(),
            })?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(LAYOUT_VERSION);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens a value sealed for `location`.
    pub fn open(&self, location: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let open_error = || SealError::Open {
            location: location.to_string(),
        };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != LAYOUT_VERSION {
            return Err(open_error());
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| open_error())?;
        let mut in_out = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(location.as_bytes()), &mut in_out[..])
            .map_err(|_| open_error())?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_at_its_location_with_its_key() {
        let sealer = Sealer::ephemeral();
        let sealed = sealer.seal("hosts/a.password", b"hunter2").expect("seal");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let opened = sealer.open("hosts/a.password", &sealed).expect("open");
        assert_eq!(&opened[..], b"hunter2");
        assert!(sealer.open("hosts/b.password", &sealed).is_err());
        assert!(
            Sealer::ephemeral()
                .open("hosts/a.password", &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(sealer.open("hosts/a.password", &tampered).is_err());
        assert!(sealer.open("hosts/a.password", &[1, 2]).is_err());
    }

    #[test]
    fn key_file_is_created_0600_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seal.key");
        let sealer = Sealer::create_key_file(&path).expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = sealer.seal("x", b"v").expect("seal");
        let reloaded = Sealer::load(&path).expect("load");
        assert_eq!(&reloaded.open("x", &sealed).expect("open")[..], b"v");
        assert!(
            Sealer::create_key_file(&path).is_err(),
            "never overwrite a key"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = Sealer::load(&path).expect_err("group-readable key refused");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}
