//! Where password policies live: the `meta` table under `password-policy/<name>`, as the HCL
//! text the operator wrote (validated before it is stored).
//!
//! Owns reading, writing, listing and deleting policy records and turning a stored name into
//! a [`PasswordPolicy`]. Must not know who uses a policy (the engines check that).

use rotor_common::names::{InvalidName, validate_object_name};
use serde::{Deserialize, Serialize};

use super::policy::{PasswordPolicy, PasswordPolicyError};
use crate::store::{Store, StoreError, Table};
use crate::tokens::now_unix;

const KEY_PREFIX: &str = "password-policy/";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordPolicyRecord {
    pub name: String,
    /// The policy as written.
    pub text: String,
    pub created_unix: u64,
    pub updated_unix: u64,
}

/// Why a password policy could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PasswordPolicyStoreError {
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error(transparent)]
    Invalid(#[from] PasswordPolicyError),
    #[error("password policy '{name}' is stored but no longer valid: {error}; write it again")]
    StoredInvalid {
        name: String,
        error: PasswordPolicyError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// Checks a policy name: it is the last segment of `sys/policies/password/<name>`.
pub fn check_name(name: &str) -> Result<(), PasswordPolicyStoreError> {
    Ok(validate_object_name("password policy", name)?)
}

pub fn read(store: &Store, name: &str) -> Result<Option<PasswordPolicyRecord>, StoreError> {
    store.get(Table::Meta, &key(name))
}

/// The parsed policy named `name`, or `None` when there is none.
pub fn load(store: &Store, name: &str) -> Result<Option<PasswordPolicy>, PasswordPolicyStoreError> {
    let Some(record) = read(store, name)? else {
        return Ok(None);
    };
    PasswordPolicy::parse(&record.text)
        .map(Some)
        .map_err(|error| PasswordPolicyStoreError::StoredInvalid {
            name: name.to_string(),
            error,
        })
}

/// Validates and stores a policy (creating or replacing it).
pub fn write(store: &Store, name: &str, text: &str) -> Result<(), PasswordPolicyStoreError> {
    check_name(name)?;
    PasswordPolicy::parse(text)?;
    let now = now_unix();
    store.write(|tx| {
        let created_unix = tx
            .get::<PasswordPolicyRecord>(Table::Meta, &key(name))?
            .map(|old| old.created_unix)
            .unwrap_or(now);
        tx.put(
            Table::Meta,
            &key(name),
            &PasswordPolicyRecord {
                name: name.to_string(),
                text: text.to_string(),
                created_unix,
                updated_unix: now,
            },
        )
    })?;
    Ok(())
}

pub fn list(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(store
        .scan::<PasswordPolicyRecord>(Table::Meta, KEY_PREFIX)?
        .into_iter()
        .map(|(_, record)| record.name)
        .collect())
}

/// Deletes a policy; answers whether it existed.
pub fn delete(store: &Store, name: &str) -> Result<bool, StoreError> {
    store.write(|tx| tx.delete(Table::Meta, &key(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    const POLICY: &str = "length = 12\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = 2\n}";

    #[test]
    fn write_read_list_delete() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        write(&store, "web", POLICY).expect("write");
        write(&store, "db.v2", POLICY).expect("write");
        assert_eq!(list(&store).expect("list"), vec!["db.v2", "web"]);
        let record = read(&store, "web").expect("read").expect("exists");
        assert_eq!(record.text, POLICY);
        assert_eq!(
            load(&store, "web").expect("load").expect("exists").length,
            12
        );
        assert!(delete(&store, "web").expect("delete"));
        assert!(!delete(&store, "web").expect("delete again"));
        assert!(load(&store, "web").expect("load").is_none());
    }

    #[test]
    fn invalid_names_and_policies_are_not_stored() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        for name in ["a/b", ".", "..", "a\0b"] {
            assert!(
                matches!(
                    write(&store, name, POLICY),
                    Err(PasswordPolicyStoreError::InvalidName(_))
                ),
                "{name:?}"
            );
        }
        assert!(matches!(
            write(
                &store,
                "short",
                "length = 2\nrule \"charset\" { charset = \"a\" }"
            ),
            Err(PasswordPolicyStoreError::Invalid(_))
        ));
        assert!(list(&store).expect("list").is_empty());
    }
}
