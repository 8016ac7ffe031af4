//! The mount table: which engine type serves which path prefix.
//!
//! Owns validating mount paths and types, and the `mounts` table. Must not know what an
//! engine does with its mount.

use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::store::{Store, StoreError, StoreResult, Table};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountRecord {
    /// With its trailing slash: `os/`, `team-a/os/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub accessor: String,
    pub created_unix: u64,
}

const RESERVED: &[&str] = &["sys", "agents", "auth", "identity", "cubbyhole"];

/// Normalises and checks a mount path; answers it with a trailing slash.
pub fn normalize_path(path: &str) -> Result<String, ApiError> {
    let trimmed = checked_segments(path, "mount path")?;
    let first = trimmed.split('/').next().unwrap_or("");
    if RESERVED.contains(&first) {
        return Err(ApiError::bad_request(format!(
            "cannot mount at '{trimmed}/': '{first}/' is reserved"
        )));
    }
    Ok(format!("{trimmed}/"))
}

/// `path` without its outer slashes, once every segment is a valid name: letters, digits,
/// `-`, `_` and `.`, never empty, `.` or `..` (path steps to every HTTP client, so a mount
/// there would be unreachable). `what` names the path in errors ("mount path"). Shared by
/// secrets engines' and auth methods' mounts.
pub fn checked_segments<'a>(path: &'a str, what: &str) -> Result<&'a str, ApiError> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(ApiError::bad_request(format!("{what} must not be empty")));
    }
    for segment in trimmed.split('/') {
        let valid = !matches!(segment, "" | "." | "..")
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid {
            return Err(ApiError::bad_request(format!(
                "{what} '{path}' is invalid: segments may hold letters, digits, '-', '_' and '.', and may not be '.' or '..'"
            )));
        }
    }
    Ok(trimmed)
}

pub fn list(store: &Store) -> StoreResult<Vec<MountRecord>> {
    Ok(store
        .scan::<MountRecord>(Table::Mounts, "")?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// What [`enable`] did.
#[derive(Debug, Clone)]
pub enum Enabled {
    /// A new mount.
    Mounted(MountRecord),
    /// The path already held an engine of that type (Rotor mounts `os/` and `ssh/` at
    /// initialisation, so the reference's `secrets enable` finds them): nothing changed.
    AlreadyMounted(MountRecord),
}

impl Enabled {
    pub fn record(&self) -> &MountRecord {
        match self {
            Enabled::Mounted(record) | Enabled::AlreadyMounted(record) => record,
        }
    }
}

/// Mounts an engine of `kind` (or a type it is an alias of) at `path`. The same type at the
/// same path again changes nothing; anything else at, above or below a mount is refused.
pub fn enable(
    store: &Store,
    path: &str,
    kind: &str,
    description: &str,
) -> Result<Enabled, ApiError> {
    let path = normalize_path(path)?;
    let kind = super::canonical_type(kind);
    if !super::KNOWN_TYPES.iter().any(|(known, _)| *known == kind) {
        let known: Vec<&str> = super::KNOWN_TYPES.iter().map(|(name, _)| *name).collect();
        return Err(ApiError::bad_request(format!(
            "unknown secrets engine type '{kind}'; this server knows: {} (and {} as os)",
            known.join(", "),
            super::TYPE_ALIASES
                .iter()
                .map(|(alias, _)| *alias)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut accessor_bytes = [0u8; 4];
    rand::fill(&mut accessor_bytes[..]);
    let record = MountRecord {
        path: path.clone(),
        kind: kind.to_string(),
        description: description.to_string(),
        accessor: format!("{kind}_{}", hex::encode(accessor_bytes)),
        created_unix: crate::tokens::now_unix(),
    };
    store.write(|tx| {
        for (existing_path, existing) in tx.scan::<MountRecord>(Table::Mounts, "")? {
            if existing_path == path && existing.kind == kind {
                return Ok(Enabled::AlreadyMounted(existing));
            }
            if existing_path.starts_with(&path) || path.starts_with(&existing_path) {
                return Err(ApiError::bad_request(format!(
                    "path is already in use at {existing_path} (type {}); choose another -path, or disable that one first (rotor secrets disable {existing_path})",
                    existing.kind
                )));
            }
        }
        tx.put(Table::Mounts, &path, &record)?;
        Ok(Enabled::Mounted(record))
    })
}

/// Unmounts `path`; answers whether something was mounted there.
pub fn disable(store: &Store, path: &str) -> Result<bool, ApiError> {
    let path = normalize_path(path)?;
    store
        .write(|tx| tx.delete(Table::Mounts, &path))
        .map_err(|error: StoreError| ApiError::from(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    #[test]
    fn mount_paths_are_validated_and_exclusive() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        enable(&store, "os", "os", "").expect("mount os");
        // The same type again (by its alias too) is no change; another type is refused.
        for kind in ["os", "vault-plugin-secrets-os"] {
            let again = enable(&store, "os/", kind, "").expect("same type again");
            assert!(matches!(again, Enabled::AlreadyMounted(_)), "{again:?}");
        }
        let error = enable(&store, "os/", "ssh", "").expect_err("taken");
        assert!(
            error.message.contains("already in use at os/ (type os)"),
            "{error}"
        );
        let plugin = enable(&store, "os2", "vault-plugin-secrets-os", "").expect("alias");
        assert_eq!(plugin.record().kind, "os");
        let error = enable(&store, "os/inner", "ssh", "").expect_err("nested");
        assert!(error.message.contains("already in use"), "{error}");
        let error = enable(&store, "kv", "kv", "").expect_err("unknown type");
        assert!(
            error.message.contains("unknown secrets engine type 'kv'"),
            "{error}"
        );
        assert!(enable(&store, "sys/x", "os", "").is_err());
        assert!(enable(&store, "a b", "os", "").is_err());
        for dotted in [".", "..", "team/..", "./os", "a/./b"] {
            let error = enable(&store, dotted, "os", "").expect_err(dotted);
            assert!(error.message.contains("'..'"), "{dotted}: {error}");
        }
        assert!(disable(&store, "os").expect("disable"));
        assert!(!disable(&store, "os").expect("disable twice"));
    }
}
