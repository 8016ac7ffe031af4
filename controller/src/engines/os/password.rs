//! Candidate passwords for the OS engine: which password policy an account uses and drawing
//! one from it.
//!
//! The policy is the first named by the account, its host, the engine's config
//! (`password_policy` on each), else the built-in default: every class of letters, digits and
//! symbols at least once, `password_length` long. Owns that order, the default, and the check
//! that a named policy exists. Generation itself is `password_policy::generate` (OS CSPRNG,
//! no modulo bias). Must not log or return a candidate anywhere but to the caller.

use rotor_common::secret::Password;

use super::model::{AccountRecord, HostRecord, OsConfig};
use crate::api::ApiError;
use crate::password_policy::{self, CharsetRule, PasswordPolicy, store as policies};
use crate::store::{Store, StoreError, Table};

const LOWER: &str = "abcdefghijkmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &str = "23456789";
const SYMBOLS: &str = "-_.,!@#%^*+=";

/// The built-in policy: `length` (8 to 128) characters with at least one of each class.
pub fn default_policy(length: usize) -> PasswordPolicy {
    let rules = [LOWER, UPPER, DIGITS, SYMBOLS]
        .into_iter()
        .map(|class| CharsetRule {
            charset: class.chars().collect(),
            min_chars: 1,
        })
        .collect();
    PasswordPolicy {
        length: length.clamp(8, 128),
        rules,
    }
}

/// The policy name that applies: the account's, else the host's, else the config's.
pub fn policy_name<'a>(
    config: &'a OsConfig,
    host: &'a HostRecord,
    account: &'a AccountRecord,
) -> Option<&'a str> {
    account
        .password_policy
        .as_deref()
        .or(host.password_policy.as_deref())
        .or(config.password_policy.as_deref())
}

/// The policy a rotation of `account` draws its candidate from.
pub fn policy_for(
    store: &Store,
    config: &OsConfig,
    host: &HostRecord,
    account: &AccountRecord,
) -> Result<PasswordPolicy, ApiError> {
    let Some(name) = policy_name(config, host, account) else {
        return Ok(default_policy(config.password_length));
    };
    match policies::load(store, name) {
        Ok(Some(policy)) => Ok(policy),
        Ok(None) => Err(ApiError::bad_request(format!(
            "account {} on host {}: password policy '{name}' does not exist; write it at sys/policies/password/{name} or name another",
            account.name, host.name
        ))),
        Err(policies::PasswordPolicyStoreError::Store(error)) => Err(error.into()),
        Err(error) => Err(ApiError::bad_request(format!(
            "account {} on host {}: {error}",
            account.name, host.name
        ))),
    }
}

/// A fresh candidate for `account`, from the policy that applies to it.
pub fn candidate(
    store: &Store,
    config: &OsConfig,
    host: &HostRecord,
    account: &AccountRecord,
) -> Result<Password, ApiError> {
    let policy = policy_for(store, config, host, account)?;
    password_policy::generate(&policy).map_err(|error| ApiError::internal(error.to_string()))
}

/// Refuses a `password_policy` field naming a policy that does not exist (an empty name
/// clears the field and is always fine).
pub fn check_named_policy(store: &Store, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || policies::read(store, name)?.is_some() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "field 'password_policy': no password policy named '{name}'; write it first at sys/policies/password/{name}"
    )))
}

/// Who names the policy `name`: OS engine configs, hosts and accounts, as `mount`,
/// `mount/host` and `mount/host/account` (for refusing to delete a policy in use).
pub fn policy_users(store: &Store, name: &str) -> Result<Vec<String>, StoreError> {
    let mut users = Vec::new();
    for mount in super::super::mounts::list(store)? {
        if mount.kind == "os"
            && super::model::read_config(store, &mount.path)?
                .password_policy
                .as_deref()
                == Some(name)
        {
            users.push(format!("{}config", mount.path));
        }
    }
    for (key, host) in store.scan::<HostRecord>(Table::Hosts, "")? {
        if host.password_policy.as_deref() == Some(name) {
            users.push(key);
        }
    }
    for (key, account) in store.scan::<AccountRecord>(Table::Accounts, "")? {
        if account.password_policy.as_deref() == Some(name) {
            users.push(key);
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::os::model::Connection;
    use crate::store::Sealer;

    fn host(policy: Option<&str>) -> HostRecord {
        HostRecord {
            name: "web-1".into(),
            address: "10.0.0.1".into(),
            port: 22,
            ssh_host_key: None,
            trusted_host_key: None,
            site: Some("dc1".into()),
            connection: Connection::Ssh,
            agent: None,
            chpasswd_command: "/usr/sbin/chpasswd".into(),
            passwd_prompts_json: None,
            created_unix: 0,
            password_policy: policy.map(String::from),
        }
    }

    fn account(policy: Option<&str>) -> AccountRecord {
        AccountRecord {
            current_version: 1,
            verify_connection: false,
            created_unix: 0,
            password_policy: policy.map(String::from),
            ..AccountRecord::new("web-1", "app")
        }
    }

    fn config(policy: Option<&str>) -> OsConfig {
        OsConfig {
            password_policy: policy.map(String::from),
            ..OsConfig::default()
        }
    }

    #[test]
    fn account_over_host_over_config_over_default() {
        assert_eq!(
            policy_name(&config(Some("c")), &host(Some("h")), &account(Some("a"))),
            Some("a")
        );
        assert_eq!(
            policy_name(&config(Some("c")), &host(Some("h")), &account(None)),
            Some("h")
        );
        assert_eq!(
            policy_name(&config(Some("c")), &host(None), &account(None)),
            Some("c")
        );
        assert_eq!(
            policy_name(&config(None), &host(None), &account(None)),
            None
        );
    }

    #[test]
    fn candidates_come_from_the_named_policy_or_the_default() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        policies::write(
            &store,
            "digits",
            "length = 30\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 30\n}",
        )
        .expect("policy");
        let named = candidate(&store, &config(None), &host(Some("digits")), &account(None))
            .expect("candidate");
        assert_eq!(named.expose().len(), 30);
        assert!(named.expose().bytes().all(|b| b.is_ascii_digit()));

        let default =
            candidate(&store, &config(None), &host(None), &account(None)).expect("candidate");
        assert!(default_policy(24).accepts(default.expose()));
        for class in [LOWER, UPPER, DIGITS, SYMBOLS] {
            assert!(default.expose().chars().any(|c| class.contains(c)));
        }

        let missing = candidate(&store, &config(None), &host(None), &account(Some("gone")))
            .expect_err("unknown policy");
        assert!(
            missing
                .message
                .contains("password policy 'gone' does not exist")
        );
        assert!(check_named_policy(&store, "digits").is_ok());
        assert!(check_named_policy(&store, "").is_ok());
        assert!(
            check_named_policy(&store, "gone")
                .expect_err("refused")
                .message
                .contains("field 'password_policy'")
        );
    }

    #[test]
    fn users_of_a_policy_are_configs_hosts_and_accounts() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        crate::engines::mounts::enable(&store, "os", "os", "").expect("mount");
        crate::engines::os::model::write_config(&store, "os/", &config(Some("p"))).expect("config");
        store
            .write(|tx| {
                tx.put(Table::Hosts, "os/web-1", &host(Some("p")))?;
                tx.put(Table::Hosts, "os/web-2", &host(Some("other")))?;
                tx.put(Table::Accounts, "os/web-1/app", &account(Some("p")))?;
                tx.put(Table::Accounts, "os/web-1/db", &account(None))
            })
            .expect("records");
        assert_eq!(
            policy_users(&store, "p").expect("scan"),
            vec!["os/config", "os/web-1", "os/web-1/app"]
        );
        assert_eq!(
            policy_users(&store, "other").expect("scan"),
            vec!["os/web-2"]
        );
        assert!(policy_users(&store, "unused").expect("scan").is_empty());
    }

    #[test]
    fn the_default_policy_is_valid_for_every_allowed_length() {
        for length in [8, 24, 128] {
            let policy = default_policy(length);
            assert_eq!(
                PasswordPolicy::new(policy.length, policy.rules.clone()),
                Ok(policy.clone())
            );
        }
        assert_eq!(default_policy(3).length, 8);
    }
}
