//! Where policies live: the `policies` table (HCL text as written), a cache of parsed
//! policies, and the built-in `root` and `default` policies.
//!
//! Owns creating, reading, listing and deleting policies and building a token's [`Acl`].
//! `root` is not stored and cannot be written or deleted; `default` is created on first start,
//! may be edited, never deleted. Must not decide which capability a request needs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rotor_common::names::validate_object_name;
use serde::{Deserialize, Serialize};

use super::{Acl, Policy, PolicyError};
use crate::store::{Store, StoreError, Table};

/// Vault's `default` policy, limited to the paths Rotor serves: a token may look itself up,
/// renew and revoke itself, ask what it may do, and look up and renew its leases.
pub const DEFAULT_POLICY: &str = r#"# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties (this requires knowing the lease ID)
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow wrapping data in a single-use wrapping token (unwrapping needs only that token)
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub name: String,
    /// The policy as written (HCL or JSON).
    pub text: String,
    pub created_unix: u64,
    pub updated_unix: u64,
}

/// Vault's answer to a policy write without a document (or with only whitespace).
pub const EMPTY_POLICY: &str = "'policy' parameter not supplied or empty";

/// Why a policy change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Parse(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Owns the policies table and its parsed cache. Cheap to clone.
#[derive(Clone)]
pub struct PolicyStore {
    store: Arc<Store>,
    /// Parsed policies by name; filled on first use, dropped on write or delete. A std lock:
    /// it is never held across an await.
    cache: Arc<RwLock<HashMap<String, Arc<Policy>>>>,
}

/// Names as Vault takes them, lower-cased; the last segment of `sys/policies/acl/<name>`.
pub fn normalize_name(name: &str) -> Result<String, PolicyStoreError> {
    let name = name.trim().to_ascii_lowercase();
    validate_object_name("policy", &name)
        .map_err(|invalid| PolicyStoreError::Invalid(invalid.to_string()))?;
    Ok(name)
}

impl PolicyStore {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            cache: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    /// Creates the `default` policy when the store has none (first start, or an old store).
    pub fn ensure_default(&self) -> Result<(), PolicyStoreError> {
        if self.read("default")?.is_none() {
            self.write("default", DEFAULT_POLICY)?;
        }
        Ok(())
    }

    pub fn read(&self, name: &str) -> Result<Option<PolicyRecord>, PolicyStoreError> {
        let name = normalize_name(name)?;
        Ok(self.store.get(Table::Policies, &name)?)
    }

    /// Parses, checks and stores a policy; answers its normalised name.
    pub fn write(&self, name: &str, text: &str) -> Result<String, PolicyStoreError> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Err(PolicyStoreError::Invalid(
                "cannot update the root policy: it is built in and allows everything".into(),
            ));
        }
        if text.trim().is_empty() {
            return Err(PolicyStoreError::Invalid(EMPTY_POLICY.into()));
        }
        Policy::parse(&name, text)?;
        let now = crate::tokens::now_unix();
        self.store.write(|tx| {
            let created_unix = tx
                .get::<PolicyRecord>(Table::Policies, &name)?
                .map(|old| old.created_unix)
                .unwrap_or(now);
            let record = PolicyRecord {
                name: name.clone(),
                text: text.to_string(),
                created_unix,
                updated_unix: now,
            };
            tx.put(Table::Policies, &name, &record)
        })?;
        self.forget(&name);
        Ok(name)
    }

    /// Deletes a policy; answers whether it existed. Tokens naming it simply lose it.
    pub fn delete(&self, name: &str) -> Result<bool, PolicyStoreError> {
        let name = normalize_name(name)?;
        if name == "root" || name == "default" {
            return Err(PolicyStoreError::Invalid(format!(
                "cannot delete the {name} policy: it is built in"
            )));
        }
        let existed = self.store.write(|tx| tx.delete(Table::Policies, &name))?;
        self.forget(&name);
        Ok(existed)
    }

    /// Every policy name, `root` included, sorted.
    pub fn list(&self) -> Result<Vec<String>, PolicyStoreError> {
        let mut names: Vec<String> = self
            .store
            .scan::<PolicyRecord>(Table::Policies, "")?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.push("root".into());
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(name);
        }
    }

    fn parsed(&self, name: &str) -> Result<Option<Arc<Policy>>, PolicyStoreError> {
        if let Ok(cache) = self.cache.read()
            && let Some(found) = cache.get(name)
        {
            return Ok(Some(found.clone()));
        }
        let Some(record) = self.store.get::<PolicyRecord>(Table::Policies, name)? else {
            return Ok(None);
        };
        let policy = Arc::new(Policy::parse(name, &record.text)?);
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(name.to_string(), policy.clone());
        }
        Ok(Some(policy))
    }

    /// The merged ACL of `policy_names`. Names with no stored policy grant nothing, as in
    /// Vault (a token may name a policy written later).
    pub fn acl(&self, policy_names: &[String]) -> Result<Acl, PolicyStoreError> {
        if policy_names.iter().any(|name| name == "root") {
            return Ok(Acl::new(policy_names, &[]));
        }
        let mut policies = Vec::with_capacity(policy_names.len());
        for name in policy_names {
            if let Some(policy) = self.parsed(name)? {
                policies.push(policy);
            }
        }
        Ok(Acl::new(policy_names, &policies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Capabilities;
    use crate::store::Sealer;

    fn policies() -> PolicyStore {
        PolicyStore::new(Arc::new(
            Store::in_memory(Sealer::ephemeral()).expect("store"),
        ))
    }

    #[test]
    fn default_policy_lets_a_token_look_itself_up_and_nothing_more() {
        let store = policies();
        store.ensure_default().expect("default");
        let acl = store.acl(&["default".into()]).expect("acl");
        assert!(
            acl.capabilities("auth/token/lookup-self")
                .allows(Capabilities::READ)
        );
        assert!(
            acl.capabilities("auth/token/renew-self")
                .allows(Capabilities::UPDATE)
        );
        assert!(!acl.capabilities("os/hosts/").allows(Capabilities::LIST));
        assert!(
            !acl.capabilities("sys/policies/acl/x")
                .allows(Capabilities::READ)
        );
    }

    #[test]
    fn writes_are_checked_cached_and_invalidated() {
        let store = policies();
        let error = store
            .write("bad", "path \"a\" { capabilities = [\"fly\"] }")
            .expect_err("bad policy");
        assert!(error.to_string().contains("fly"), "{error}");
        assert_eq!(
            store
                .write("Apps", "path \"os/*\" { capabilities = [\"read\"] }")
                .expect("write"),
            "apps"
        );
        let acl = store.acl(&["apps".into()]).expect("acl");
        assert!(acl.capabilities("os/hosts/a").allows(Capabilities::READ));
        store
            .write("apps", "path \"os/*\" { capabilities = [\"deny\"] }")
            .expect("rewrite");
        let acl = store.acl(&["apps".into()]).expect("acl");
        assert!(!acl.capabilities("os/hosts/a").allows(Capabilities::READ));
        assert!(store.delete("apps").expect("delete"));
        assert!(!store.delete("apps").expect("delete again"));
        let acl = store.acl(&["apps".into()]).expect("acl");
        assert!(!acl.capabilities("os/hosts/a").allows(Capabilities::READ));
    }

    #[test]
    fn built_in_policies_are_protected() {
        let store = policies();
        store.ensure_default().expect("default");
        assert!(
            store
                .write("root", "path \"a\" { capabilities = [\"read\"] }")
                .is_err()
        );
        assert!(store.delete("root").is_err());
        assert!(store.delete("default").is_err());
        assert_eq!(store.list().expect("list"), vec!["default", "root"]);
        assert!(store.write("no spaces", "").is_err());
    }
}
