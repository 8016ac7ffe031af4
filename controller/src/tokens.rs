//! API tokens as the store keeps them: only a SHA-256 of the token, never the token.
//!
//! Owns token records and their indexes (accessor → token, parent → children), TTL
//! arithmetic (creation, renewal, expiry; pure functions taking `now`), use counting and
//! revoking a token with its whole subtree in one transaction. Must not decide what a token
//! may do (the ACL's job) nor revoke leases itself (callers pass the revoked accessors on).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, StoreResult, Table, WriteTx};

/// Vault's default and maximum token TTL: 768h (32 days).
pub const SYSTEM_MAX_TTL_SECS: u64 = 768 * 3600;

/// Where a root token says it came from.
const ROOT_PATH: &str = "auth/token/root";

fn default_root_path() -> String {
    ROOT_PATH.into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub accessor: String,
    /// Sorted, without duplicates; `["root"]` for a root token.
    pub policies: Vec<String>,
    pub display_name: String,
    pub created_unix: u64,
    /// The accessor of the token that created this one; `None` for an orphan.
    #[serde(default)]
    pub parent_accessor: Option<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Uses left; 0 means unlimited.
    #[serde(default)]
    pub num_uses: u64,
    /// The TTL the token was created with; 0 for a token that never expires.
    #[serde(default)]
    pub creation_ttl_secs: u64,
    /// A hard cap on the token's life from its creation; 0 for none.
    #[serde(default)]
    pub explicit_max_ttl_secs: u64,
    /// A periodic token renews to this period with no overall maximum; 0 for none.
    #[serde(default)]
    pub period_secs: u64,
    /// When the token stops working; `None` for never.
    #[serde(default)]
    pub expire_unix: Option<u64>,
    #[serde(default)]
    pub renewable: bool,
    /// The API path that created the token (`auth/token/create`, `auth/token/root`).
    #[serde(default = "default_root_path")]
    pub path: String,
    #[serde(default)]
    pub last_renewal_unix: Option<u64>,
    /// Client addresses (CIDR blocks) the token may be used from; empty for anywhere
    /// (AppRole's and userpass's `token_bound_cidrs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_cidrs: Vec<String>,
}

impl TokenRecord {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|policy| policy == "root")
    }

    pub fn is_expired(&self, now: u64) -> bool {
        self.expire_unix.is_some_and(|expire| expire <= now)
    }

    /// Seconds left; 0 for a token that never expires (as Vault reports it).
    pub fn ttl_remaining(&self, now: u64) -> u64 {
        self.expire_unix
            .map(|expire| expire.saturating_sub(now))
            .unwrap_or(0)
    }

    pub fn orphan(&self) -> bool {
        self.parent_accessor.is_none()
    }
}

/// A token as presented by a client: kept only for the request, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientToken(String);

impl ClientToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The one greppable way to the token's value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClientToken(<redacted>)")
    }
}

impl Drop for ClientToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Why a token operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store key of a token: hex SHA-256, so the file never holds a usable token.
pub fn token_key(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    hex::encode(digest.as_ref())
}

/// 128 random bits in the UUID-like form Vault uses for request ids, lease ids and OTPs.
pub fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes[..]);
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn random_text(bytes: usize) -> String {
    use base64::Engine;
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// A fresh token value (`rtr.` + 192 random bits).
pub fn generate_token() -> String {
    format!("rtr.{}", random_text(24))
}

/// A fresh accessor (144 random bits): names a token without being able to use it.
pub fn generate_accessor() -> String {
    random_text(18)
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Vault's policy clean-up: trimmed, lower-case, sorted, no duplicates, `default` added
/// when asked; a set holding `root` is just `["root"]`.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut cleaned: Vec<String> = policies
        .iter()
        .map(|policy| policy.trim().to_ascii_lowercase())
        .filter(|policy| !policy.is_empty())
        .collect();
    if cleaned.iter().any(|policy| policy == "root") {
        return vec!["root".into()];
    }
    if add_default {
        cleaned.push("default".into());
    }
    cleaned.sort();
    cleaned.dedup();
    cleaned
}

/// What a creator asked for, in seconds (0 = not given).
#[derive(Debug, Clone, Copy, Default)]
pub struct TtlRequest {
    pub ttl_secs: u64,
    pub explicit_max_ttl_secs: u64,
    pub period_secs: u64,
    pub root_policy: bool,
}

/// The TTL a new token gets (0 = never expires), as Vault computes it: a period wins, then
/// an explicit TTL, then none for root tokens, else the system default; every result is
/// capped by the explicit maximum and (unless periodic) the system maximum.
pub fn initial_ttl(request: TtlRequest) -> u64 {
    let mut ttl = if request.period_secs > 0 {
        request.period_secs
    } else if request.ttl_secs > 0 {
        request.ttl_secs.min(SYSTEM_MAX_TTL_SECS)
    } else if request.root_policy {
        0
    } else {
        SYSTEM_MAX_TTL_SECS
    };
    if request.explicit_max_ttl_secs > 0 && (ttl == 0 || ttl > request.explicit_max_ttl_secs) {
        ttl = request.explicit_max_ttl_secs;
    }
    ttl
}

/// The expiry after a renewal asking for `increment_secs` (0 = the token's own TTL or
/// period), capped by the explicit maximum and, for non-periodic tokens, the system maximum
/// counted from creation. `None` when the token never expires.
pub fn renewed_expiry(record: &TokenRecord, increment_secs: u64, now: u64) -> Option<u64> {
    record.expire_unix?;
    let wanted = if increment_secs > 0 {
        increment_secs
    } else if record.period_secs > 0 {
        record.period_secs
    } else {
        record.creation_ttl_secs
    };
    let mut expire = now.saturating_add(wanted);
    if record.explicit_max_ttl_secs > 0 {
        expire = expire.min(
            record
                .created_unix
                .saturating_add(record.explicit_max_ttl_secs),
        );
    }
    if record.period_secs == 0 {
        expire = expire.min(record.created_unix.saturating_add(SYSTEM_MAX_TTL_SECS));
    }
    Some(expire)
}

/// A token found by its value or accessor, with its store key.
#[derive(Debug, Clone)]
pub struct FoundToken {
    pub key: String,
    pub record: TokenRecord,
}

/// Records a new token, its accessor and its link to its parent, in one transaction.
pub fn insert(store: &Store, token: &str, record: &TokenRecord) -> Result<(), TokenError> {
    let key = token_key(token);
    store.write(|tx| {
        if tx.get::<TokenRecord>(Table::Tokens, &key)?.is_some() {
            return Err(TokenError::Invalid(
                "a token with that id already exists; choose another id".into(),
            ));
        }
        if let Some(parent) = &record.parent_accessor {
            if tx.get::<String>(Table::TokenAccessors, parent)?.is_none() {
                return Err(TokenError::Invalid(
                    "the parent token was revoked while this one was being created".into(),
                ));
            }
            tx.put(
                Table::TokenChildren,
                &format!("{parent}/{}", record.accessor),
                &(),
            )?;
        }
        tx.put(Table::Tokens, &key, record)?;
        tx.put(Table::TokenAccessors, &record.accessor, &key)?;
        Ok(())
    })
}

/// Records `token` as a root token (no parent, no expiry).
pub fn store_root_token(store: &Store, token: &str) -> StoreResult<()> {
    let record = TokenRecord {
        accessor: generate_accessor(),
        policies: vec!["root".into()],
        display_name: "root".into(),
        created_unix: now_unix(),
        parent_accessor: None,
        meta: BTreeMap::new(),
        num_uses: 0,
        creation_ttl_secs: 0,
        explicit_max_ttl_secs: 0,
        period_secs: 0,
        expire_unix: None,
        renewable: false,
        path: ROOT_PATH.into(),
        last_renewal_unix: None,
        bound_cidrs: Vec::new(),
    };
    insert(store, token, &record).map_err(|error| match error {
        TokenError::Store(error) => error,
        TokenError::Invalid(detail) => StoreError::Corrupt {
            table: Table::Tokens.name(),
            key: "<root token>".into(),
            detail,
        },
    })
}

/// The live token `token` names; `None` when unknown or expired.
pub fn lookup(store: &Store, token: &str, now: u64) -> StoreResult<Option<FoundToken>> {
    if token.is_empty() {
        return Ok(None);
    }
    let key = token_key(token);
    let record: Option<TokenRecord> = store.get(Table::Tokens, &key)?;
    Ok(record
        .filter(|record| !record.is_expired(now))
        .map(|record| FoundToken { key, record }))
}

/// The live token an accessor names; `None` when unknown or expired.
pub fn lookup_accessor(store: &Store, accessor: &str, now: u64) -> StoreResult<Option<FoundToken>> {
    if accessor.is_empty() {
        return Ok(None);
    }
    store.read(|tx| {
        let Some(key) = tx.get::<String>(Table::TokenAccessors, accessor)? else {
            return Ok(None);
        };
        let record: Option<TokenRecord> = tx.get(Table::Tokens, &key)?;
        Ok(record
            .filter(|record| !record.is_expired(now))
            .map(|record| FoundToken { key, record }))
    })
}

/// What counting one use did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseOutcome {
    /// Unlimited, or uses remain.
    Counted,
    /// That was the last use: the caller revokes the token once the request is done.
    LastUse,
    /// The token is gone or used up (a concurrent request took the last use).
    Exhausted,
}

/// Counts one use of a limited-use token.
pub fn use_once(store: &Store, key: &str) -> StoreResult<UseOutcome> {
    store.write(|tx| {
        let Some(mut record) = tx.get::<TokenRecord>(Table::Tokens, key)? else {
            return Ok(UseOutcome::Exhausted);
        };
        match record.num_uses {
            0 => Ok(UseOutcome::Counted),
            1 => {
                // Mark it used up (expired now) so no other request can use it while this one
                // finishes; the caller revokes it afterwards.
                record.num_uses = 0;
                record.expire_unix = Some(0);
                tx.put(Table::Tokens, key, &record)?;
                Ok(UseOutcome::LastUse)
            }
            left => {
                record.num_uses = left - 1;
                tx.put(Table::Tokens, key, &record)?;
                Ok(UseOutcome::Counted)
            }
        }
    })
}

/// Renews a token; answers the updated record.
pub fn renew(
    store: &Store,
    key: &str,
    increment_secs: u64,
    now: u64,
) -> Result<TokenRecord, TokenError> {
    store.write(|tx| {
        let mut record: TokenRecord = tx
            .get(Table::Tokens, key)?
            .filter(|record: &TokenRecord| !record.is_expired(now))
            .ok_or_else(|| TokenError::Invalid("token not found or expired".into()))?;
        if record.expire_unix.is_none() {
            return Ok(record);
        }
        if !record.renewable {
            return Err(TokenError::Invalid(
                "token is not renewable (it was created with renewable=false)".into(),
            ));
        }
        record.expire_unix = renewed_expiry(&record, increment_secs, now);
        record.last_renewal_unix = Some(now);
        tx.put(Table::Tokens, key, &record)?;
        Ok(record)
    })
}

/// How a revocation treats the token's children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The token and every descendant (Vault's `revoke`).
    Tree,
    /// Only the token; its children become orphans (Vault's `revoke-orphan`).
    OrphanChildren,
}

/// Revokes the token with `accessor` inside `tx`; answers the accessors of every token
/// revoked (empty when it did not exist), so the caller can revoke their leases.
pub fn revoke_in(tx: &WriteTx<'_>, accessor: &str, mode: Revocation) -> StoreResult<Vec<String>> {
    let mut revoked = Vec::new();
    let mut pending = vec![accessor.to_string()];
    while let Some(current) = pending.pop() {
        let Some(key) = tx.get::<String>(Table::TokenAccessors, &current)? else {
            continue;
        };
        let record: Option<TokenRecord> = tx.get(Table::Tokens, &key)?;
        let children: Vec<String> = tx
            .scan::<()>(Table::TokenChildren, &format!("{current}/"))?
            .into_iter()
            .filter_map(|(link, ())| link.rsplit_once('/').map(|(_, child)| child.to_string()))
            .collect();
        for child in &children {
            tx.delete(Table::TokenChildren, &format!("{current}/{child}"))?;
            match mode {
                Revocation::Tree => pending.push(child.clone()),
                Revocation::OrphanChildren => make_orphan_in(tx, child)?,
            }
        }
        if let Some(parent) = record.as_ref().and_then(|r| r.parent_accessor.as_ref()) {
            tx.delete(Table::TokenChildren, &format!("{parent}/{current}"))?;
        }
        tx.delete(Table::Tokens, &key)?;
        tx.delete(Table::TokenAccessors, &current)?;
        revoked.push(current);
    }
    Ok(revoked)
}

fn make_orphan_in(tx: &WriteTx<'_>, accessor: &str) -> StoreResult<()> {
    let Some(key) = tx.get::<String>(Table::TokenAccessors, accessor)? else {
        return Ok(());
    };
    if let Some(mut record) = tx.get::<TokenRecord>(Table::Tokens, &key)? {
        record.parent_accessor = None;
        tx.put(Table::Tokens, &key, &record)?;
    }
    Ok(())
}

/// Accessors of tokens whose expiry has passed (the sweeper revokes them).
pub fn expired_accessors(store: &Store, now: u64) -> StoreResult<Vec<String>> {
    Ok(store
        .scan::<TokenRecord>(Table::Tokens, "")?
        .into_iter()
        .filter(|(_, record)| record.is_expired(now))
        .map(|(_, record)| record.accessor)
        .collect())
}

/// Every accessor, for `auth/token/accessors`.
pub fn list_accessors(store: &Store) -> StoreResult<Vec<String>> {
    Ok(store
        .scan::<String>(Table::TokenAccessors, "")?
        .into_iter()
        .map(|(accessor, _)| accessor)
        .collect())
}

/// Whether any token exists (an initialised store has its root token).
pub fn any_exist(store: &Store) -> StoreResult<bool> {
    store
        .read(|tx| tx.count(Table::Tokens))
        .map(|count| count > 0)
}

/// Gives tokens written before accessors were indexed (schema 1, 2) their index entry.
pub fn index_legacy_accessors(store: &Store) -> StoreResult<usize> {
    store.write(|tx| {
        let mut added = 0;
        for (key, record) in tx.scan::<TokenRecord>(Table::Tokens, "")? {
            if tx
                .get::<String>(Table::TokenAccessors, &record.accessor)?
                .is_none()
            {
                tx.put(Table::TokenAccessors, &record.accessor, &key)?;
                added += 1;
            }
        }
        Ok(added)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    fn child(parent: Option<&str>, accessor: &str, ttl: u64, now: u64) -> TokenRecord {
        TokenRecord {
            accessor: accessor.into(),
            policies: vec!["default".into()],
            display_name: "token".into(),
            created_unix: now,
            parent_accessor: parent.map(String::from),
            meta: BTreeMap::new(),
            num_uses: 0,
            creation_ttl_secs: ttl,
            explicit_max_ttl_secs: 0,
            period_secs: 0,
            expire_unix: (ttl > 0).then_some(now + ttl),
            renewable: true,
            path: "auth/token/create".into(),
            last_renewal_unix: None,
            bound_cidrs: Vec::new(),
        }
    }

    #[test]
    fn policies_are_sanitized_like_vault() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sanitize_policies(&list(&["Apps", " dev ", "apps"]), true),
            list(&["apps", "default", "dev"])
        );
        assert_eq!(
            sanitize_policies(&list(&["root", "apps"]), true),
            list(&["root"])
        );
        assert_eq!(sanitize_policies(&[], false), Vec::<String>::new());
    }

    #[test]
    fn initial_ttl_follows_vault_order() {
        let default = initial_ttl(TtlRequest::default());
        assert_eq!(default, SYSTEM_MAX_TTL_SECS);
        let root = TtlRequest {
            root_policy: true,
            ..TtlRequest::default()
        };
        assert_eq!(initial_ttl(root), 0);
        let capped = TtlRequest {
            ttl_secs: 7200,
            explicit_max_ttl_secs: 3600,
            ..TtlRequest::default()
        };
        assert_eq!(initial_ttl(capped), 3600);
        let root_capped = TtlRequest {
            explicit_max_ttl_secs: 60,
            root_policy: true,
            ..TtlRequest::default()
        };
        assert_eq!(initial_ttl(root_capped), 60);
        let periodic = TtlRequest {
            ttl_secs: 10,
            period_secs: 300,
            ..TtlRequest::default()
        };
        assert_eq!(initial_ttl(periodic), 300);
        let huge = TtlRequest {
            ttl_secs: SYSTEM_MAX_TTL_SECS * 2,
            ..TtlRequest::default()
        };
        assert_eq!(initial_ttl(huge), SYSTEM_MAX_TTL_SECS);
    }

    #[test]
    fn renewal_is_capped_by_explicit_and_system_maximum() {
        let mut record = child(None, "a", 3600, 1000);
        assert_eq!(renewed_expiry(&record, 0, 2000), Some(2000 + 3600));
        assert_eq!(renewed_expiry(&record, 60, 2000), Some(2060));
        record.explicit_max_ttl_secs = 1500;
        assert_eq!(renewed_expiry(&record, 3600, 2000), Some(2500));
        record.explicit_max_ttl_secs = 0;
        assert_eq!(
            renewed_expiry(&record, SYSTEM_MAX_TTL_SECS, 5000),
            Some(1000 + SYSTEM_MAX_TTL_SECS)
        );
        record.expire_unix = None;
        assert_eq!(renewed_expiry(&record, 60, 2000), None);
    }

    #[test]
    fn revoking_a_parent_revokes_the_tree_or_orphans_children() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let now = 1000;
        insert(&store, "t-root", &child(None, "root", 0, now)).expect("root");
        insert(&store, "t-a", &child(Some("root"), "a", 60, now)).expect("a");
        insert(&store, "t-b", &child(Some("a"), "b", 60, now)).expect("b");
        insert(&store, "t-c", &child(Some("b"), "c", 60, now)).expect("c");
        insert(&store, "t-d", &child(Some("root"), "d", 60, now)).expect("d");

        let revoked = store
            .write(|tx| revoke_in(tx, "a", Revocation::Tree))
            .expect("revoke");
        assert_eq!(revoked.len(), 3, "{revoked:?}");
        for gone in ["t-a", "t-b", "t-c"] {
            assert!(
                lookup(&store, gone, now).expect("lookup").is_none(),
                "{gone}"
            );
        }
        assert!(lookup(&store, "t-d", now).expect("lookup").is_some());

        insert(&store, "t-e", &child(Some("d"), "e", 60, now)).expect("e");
        let revoked = store
            .write(|tx| revoke_in(tx, "d", Revocation::OrphanChildren))
            .expect("revoke orphan");
        assert_eq!(revoked, vec!["d".to_string()]);
        let orphan = lookup(&store, "t-e", now)
            .expect("lookup")
            .expect("e lives");
        assert!(orphan.record.orphan());
        assert!(
            lookup_accessor(&store, "e", now)
                .expect("by accessor")
                .is_some()
        );
        assert!(
            store
                .scan::<()>(Table::TokenChildren, "")
                .expect("scan")
                .is_empty()
        );
    }

    #[test]
    fn expired_tokens_are_invisible_and_listed_for_the_sweeper() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        insert(&store, "short", &child(None, "s", 10, 1000)).expect("insert");
        assert!(lookup(&store, "short", 1005).expect("lookup").is_some());
        assert!(lookup(&store, "short", 1010).expect("lookup").is_none());
        assert!(
            lookup_accessor(&store, "s", 1011)
                .expect("lookup")
                .is_none()
        );
        assert_eq!(expired_accessors(&store, 1010).expect("expired"), vec!["s"]);
        assert!(expired_accessors(&store, 1009).expect("expired").is_empty());
    }

    #[test]
    fn limited_use_tokens_count_down_and_mark_the_last_use() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let mut record = child(None, "u", 0, 1000);
        record.num_uses = 2;
        insert(&store, "limited", &record).expect("insert");
        let key = token_key("limited");
        assert_eq!(use_once(&store, &key).expect("use"), UseOutcome::Counted);
        assert_eq!(use_once(&store, &key).expect("use"), UseOutcome::LastUse);
        assert!(lookup(&store, "limited", 1000).expect("lookup").is_none());
    }

    /// The database file never holds a token's value: only its SHA-256 (the row key).
    #[test]
    fn tokens_are_stored_only_as_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rotor.redb");
        let sealer = Sealer::create_key_file(&dir.path().join("seal.key")).expect("key");
        let token = generate_token();
        {
            let store = Store::open(&path, sealer).expect("open");
            insert(&store, &token, &child(None, "acc-hashed", 60, 1000)).expect("insert");
            assert!(lookup(&store, &token, 1001).expect("lookup").is_some());
        }
        let bytes = std::fs::read(&path).expect("read the database file");
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        assert!(
            contains(token_key(&token).as_bytes()),
            "the token's hash is the row key"
        );
        assert!(
            !contains(token.as_bytes()),
            "the token's value is in the database file"
        );
        let secret_part = token.trim_start_matches("rtr.");
        assert!(!contains(secret_part.as_bytes()));
    }

    #[test]
    fn renewing_a_non_renewable_token_is_refused() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let mut record = child(None, "n", 60, 1000);
        record.renewable = false;
        insert(&store, "fixed", &record).expect("insert");
        let error = renew(&store, &token_key("fixed"), 60, 1010).expect_err("refused");
        assert!(error.to_string().contains("not renewable"), "{error}");
        insert(&store, "free", &child(None, "f", 60, 1000)).expect("insert");
        let renewed = renew(&store, &token_key("free"), 600, 1010).expect("renewed");
        assert_eq!(renewed.expire_unix, Some(1610));
    }
}
