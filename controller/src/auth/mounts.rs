//! The auth mount table: which auth method type serves which path under `auth/`
//! (`sys/auth/:path`). The token store is built in at `auth/token/` and is not in the table.
//!
//! Owns validating auth mount paths and types and the `auth_mounts` table; disabling a mount
//! deletes its records (Vault's behaviour for auth methods: its roles and users go with it).
//! Must not know what a method does with its mount.

use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::store::{Store, StoreError, StoreResult, Table};

/// The auth method types this server has (besides `token`, which is built in).
pub const KNOWN_TYPES: &[(&str, &str)] = &[
    (
        "approle",
        "AppRole: applications log in with a role ID and a secret ID",
    ),
    (
        "userpass",
        "userpass: people log in with a user name and a password",
    ),
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthMountRecord {
    /// Inside `auth/`, with its trailing slash: `approle/`, `team-a/people/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub accessor: String,
    pub created_unix: u64,
}

/// Normalises and checks a path inside `auth/`; answers it with a trailing slash.
pub fn normalize_path(path: &str) -> Result<String, ApiError> {
    let trimmed = crate::engines::mounts::checked_segments(path, "auth mount path")?;
    if trimmed == "token" || trimmed.starts_with("token/") {
        return Err(ApiError::bad_request(
            "cannot enable an auth method at 'token/': the token store is built in there",
        ));
    }
    Ok(format!("{trimmed}/"))
}

pub fn list(store: &Store) -> StoreResult<Vec<AuthMountRecord>> {
    Ok(store
        .scan::<AuthMountRecord>(Table::AuthMounts, "")?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// The mount that owns `rest` (the path inside `auth/`): the longest mount path it starts with.
pub fn owning(store: &Store, rest: &str) -> StoreResult<Option<AuthMountRecord>> {
    Ok(list(store)?
        .into_iter()
        .filter(|mount| rest == mount.path.trim_end_matches('/') || rest.starts_with(&mount.path))
        .max_by_key(|mount| mount.path.len()))
}

/// Enables a method of `kind` at `path`. Anything at, above or below another mount is
/// refused, as Vault refuses it ("path is already in use").
pub fn enable(
    store: &Store,
    path: &str,
    kind: &str,
    description: &str,
) -> Result<AuthMountRecord, ApiError> {
    let path = normalize_path(path)?;
    if !KNOWN_TYPES.iter().any(|(known, _)| *known == kind) {
        let known: Vec<&str> = KNOWN_TYPES.iter().map(|(name, _)| *name).collect();
        return Err(ApiError::bad_request(format!(
            "unknown auth method type '{kind}'; this server knows: {} (and token, built in at auth/token/)",
            known.join(", ")
        )));
    }
    let mut accessor_bytes = [0u8; 4];
    rand::fill(&mut accessor_bytes[..]);
    let record = AuthMountRecord {
        path: path.clone(),
        kind: kind.to_string(),
        description: description.to_string(),
        accessor: format!("auth_{kind}_{}", hex::encode(accessor_bytes)),
        created_unix: crate::tokens::now_unix(),
    };
    store.write(|tx| {
        for (existing_path, existing) in tx.scan::<AuthMountRecord>(Table::AuthMounts, "")? {
            if existing_path.starts_with(&path) || path.starts_with(&existing_path) {
                return Err(ApiError::bad_request(format!(
                    "path is already in use at auth/{existing_path} (type {}); choose another -path, or disable that one first (rotor auth disable {existing_path})",
                    existing.kind
                )));
            }
        }
        tx.put(Table::AuthMounts, &path, &record)?;
        Ok(record)
    })
}

/// Disables the method at `path` and deletes its records (roles, secret IDs, users) in the
/// same transaction. Answers whether something was mounted there.
pub fn disable(store: &Store, path: &str) -> Result<bool, ApiError> {
    let path = normalize_path(path)?;
    store
        .write(|tx| {
            let existed = tx.delete(Table::AuthMounts, &path)?;
            if existed {
                for (key, _) in tx.scan::<serde_json::Value>(Table::AuthRecords, &path)? {
                    tx.delete(Table::AuthRecords, &key)?;
                }
            }
            Ok::<_, StoreError>(existed)
        })
        .map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    #[test]
    fn auth_mounts_are_validated_exclusive_and_take_their_records_with_them() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let record = enable(&store, "approle", "approle", "apps").expect("enable");
        assert_eq!(record.path, "approle/");
        assert!(record.accessor.starts_with("auth_approle_"));
        let error = enable(&store, "approle/", "userpass", "").expect_err("taken");
        assert!(
            error.message.contains("already in use at auth/approle/"),
            "{error}"
        );
        assert!(enable(&store, "approle/inner", "userpass", "").is_err());
        let error = enable(&store, "ldap", "ldap", "").expect_err("unknown");
        assert!(
            error.message.contains("unknown auth method type 'ldap'"),
            "{error}"
        );
        let error = enable(&store, "token", "userpass", "").expect_err("token");
        assert!(error.message.contains("built in"), "{error}");
        assert!(enable(&store, "a/../b", "userpass", "").is_err());
        enable(&store, "people", "userpass", "").expect("userpass");
        assert_eq!(
            owning(&store, "approle/role/x")
                .expect("owning")
                .map(|m| m.kind),
            Some("approle".to_string())
        );
        assert!(owning(&store, "approles/x").expect("owning").is_none());

        store
            .write(|tx| tx.put(Table::AuthRecords, "approle/role/web", &1))
            .expect("record");
        store
            .write(|tx| tx.put(Table::AuthRecords, "people/user/alice", &1))
            .expect("record");
        assert!(disable(&store, "approle").expect("disable"));
        assert!(!disable(&store, "approle").expect("again"));
        let left: Vec<String> = store
            .scan::<serde_json::Value>(Table::AuthRecords, "")
            .expect("scan")
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(left, vec!["people/user/alice".to_string()]);
    }
}
