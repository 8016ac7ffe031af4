//! AppRole secret IDs: generating one (`role/:name/secret-id`), listing their accessors,
//! looking one up or destroying it by value or by accessor, and the pure rules of spending
//! one at login ([`spend`]).
//!
//! A secret ID is stored only as its SHA-256 (the row key `<mount>secret_id/<role>/<hash>`),
//! like a token; its accessor (`<mount>secret_id_accessor/<role>/<accessor>` → hash) names it
//! without being able to log in. The value is answered once, at generation. Must not issue
//! tokens (`login.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::role::existing_role;
use super::{accessor_index_key, secret_id_key, store_prefix};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::auth::cidr;
use crate::store::{StoreError, Table};
use crate::tokens::{self, token_key};

/// One secret ID, as the store keeps it (never its value).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecretIdRecord {
    pub accessor: String,
    pub created_unix: u64,
    /// When it stops working; `None` for never.
    pub expire_unix: Option<u64>,
    /// Logins left; 0 for unlimited.
    pub uses_left: u64,
    /// The uses it was issued with (0: unlimited), for lookups.
    pub num_uses: u64,
    /// Client addresses it may log in from (empty: the role's `secret_id_bound_cidrs`).
    #[serde(default)]
    pub cidr_list: Vec<String>,
    /// Bound CIDRs of the tokens it logs in to (empty: the role's `token_bound_cidrs`).
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub last_updated_unix: u64,
}

/// What spending one login of a secret ID does to it.
#[derive(Debug, Clone, PartialEq)]
pub enum Spent {
    /// It expired: delete it, refuse the login.
    Expired,
    /// The login may go on; the record to keep (`None`: that was its last use, delete it).
    Allowed(Option<SecretIdRecord>),
}

/// Spends one login of `record` at `now`. Pure.
pub fn spend(record: &SecretIdRecord, now: u64) -> Spent {
    if record.expire_unix.is_some_and(|expire| expire <= now) {
        return Spent::Expired;
    }
    match record.uses_left {
        0 => Spent::Allowed(Some(record.clone())),
        1 => Spent::Allowed(None),
        left => {
            let mut kept = record.clone();
            kept.uses_left = left - 1;
            kept.last_updated_unix = now;
            Spent::Allowed(Some(kept))
        }
    }
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

fn render(record: &SecretIdRecord, now: u64) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("secret_id_accessor".into(), json!(record.accessor));
    data.insert("cidr_list".into(), json!(record.cidr_list));
    data.insert("token_bound_cidrs".into(), json!(record.token_bound_cidrs));
    data.insert("creation_time".into(), json!(rfc3339(record.created_unix)));
    data.insert(
        "expiration_time".into(),
        json!(
            record
                .expire_unix
                .map(rfc3339)
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
        ),
    );
    data.insert(
        "last_updated_time".into(),
        json!(rfc3339(record.last_updated_unix)),
    );
    data.insert("metadata".into(), json!(record.metadata));
    data.insert("secret_id_num_uses".into(), json!(record.uses_left));
    data.insert(
        "secret_id_ttl".into(),
        json!(
            record
                .expire_unix
                .map(|expire| expire.saturating_sub(now))
                .unwrap_or(0)
        ),
    );
    data
}

/// `metadata`: a JSON object of strings, given as an object or (as hvac and the CLI send it)
/// as a string holding one.
fn metadata(request: &Request) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(text) = request.string("metadata")? else {
        return Ok(BTreeMap::new());
    };
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let invalid = || {
        ApiError::bad_request(
            "field 'metadata': expected a JSON object of string values, e.g. {\"host\": \"web-01\"}",
        )
    };
    let parsed: Map<String, Value> = serde_json::from_str(&text).map_err(|_| invalid())?;
    parsed
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key, text)),
            _ => Err(invalid()),
        })
        .collect()
}

fn non_negative(request: &Request, field: &str) -> Result<Option<u64>, ApiError> {
    request
        .int(field)?
        .map(|value| {
            u64::try_from(value).map_err(|_| {
                ApiError::bad_request(format!("field '{field}': must be zero (unlimited) or more"))
            })
        })
        .transpose()
}

pub fn generate(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let role = existing_role(&state, &request)?;
        let prefix = store_prefix(&request);
        let cidr_list = request.string_list("cidr_list")?.unwrap_or_default();
        cidr::validate(&cidr_list)
            .map_err(|error| ApiError::bad_request(format!("field 'cidr_list': {error}")))?;
        if !role.secret_id_bound_cidrs.is_empty() {
            // Vault: a secret ID's blocks must lie inside the role's.
            for block in &cidr_list {
                if !block_within(block, &role.secret_id_bound_cidrs) {
                    return Err(ApiError::bad_request(format!(
                        "field 'cidr_list': {block} is not within the role's secret_id_bound_cidrs"
                    )));
                }
            }
        }
        let token_bound_cidrs = request
            .string_list("token_bound_cidrs")?
            .unwrap_or_default();
        cidr::validate(&token_bound_cidrs).map_err(|error| {
            ApiError::bad_request(format!("field 'token_bound_cidrs': {error}"))
        })?;
        let num_uses = non_negative(&request, "num_uses")?.unwrap_or(role.secret_id_num_uses);
        if role.secret_id_num_uses > 0 && (num_uses == 0 || num_uses > role.secret_id_num_uses) {
            return Err(ApiError::bad_request(
                "field 'num_uses': cannot be higher than the role's secret_id_num_uses",
            ));
        }
        let mut ttl_secs = request
            .duration("ttl")?
            .map(|ttl| ttl.as_secs())
            .unwrap_or(role.secret_id_ttl_secs);
        if role.secret_id_ttl_secs > 0 && (ttl_secs == 0 || ttl_secs > role.secret_id_ttl_secs) {
            ttl_secs = role.secret_id_ttl_secs;
        }
        let now = tokens::now_unix();
        let secret_id = tokens::random_uuid();
        let record = SecretIdRecord {
            accessor: tokens::random_uuid(),
            created_unix: now,
            expire_unix: (ttl_secs > 0).then(|| now.saturating_add(ttl_secs)),
            uses_left: num_uses,
            num_uses,
            cidr_list,
            token_bound_cidrs,
            metadata: metadata(&request)?,
            last_updated_unix: now,
        };
        let hash = token_key(&secret_id);
        state.store.write(|tx| {
            tx.put(
                Table::AuthRecords,
                &secret_id_key(&prefix, &role.name, &hash),
                &record,
            )?;
            tx.put(
                Table::AuthRecords,
                &accessor_index_key(&prefix, &role.name, &record.accessor),
                &hash,
            )?;
            Ok::<_, StoreError>(())
        })?;
        Ok(ApiResponse::data(crate::data_map! {
            "secret_id" => secret_id,
            "secret_id_accessor" => record.accessor,
            "secret_id_ttl" => ttl_secs,
            "secret_id_num_uses" => num_uses,
        }))
    })
}

/// Whether `block` lies inside one of `outer` (its network and every address it covers).
fn block_within(block: &str, outer: &[String]) -> bool {
    let (address, prefix) = block.split_once('/').unwrap_or((block, ""));
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = if prefix.is_empty() {
        max
    } else {
        prefix.parse().unwrap_or(0)
    };
    outer.iter().any(|outer_block| {
        let Ok(parsed) = cidr::Cidr::parse(outer_block) else {
            return false;
        };
        let outer_prefix: u8 = outer_block
            .split_once('/')
            .and_then(|(_, length)| length.parse().ok())
            .unwrap_or(max);
        parsed.contains(address) && prefix >= outer_prefix
    })
}

pub fn list_accessors(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let role = existing_role(&state, &request)?;
        let prefix = accessor_index_key(&store_prefix(&request), &role.name, "");
        let keys: Vec<String> = state
            .store
            .scan::<String>(Table::AuthRecords, &prefix)?
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(String::from))
            .collect();
        Ok(ApiResponse::keys(keys))
    })
}

/// The store key of the secret ID a request names by value (`secret_id`) or accessor
/// (`secret_id_accessor`), if it exists.
fn find(
    state: &AppState,
    request: &Request,
    by_accessor: bool,
) -> Result<(String, String, Option<SecretIdRecord>), ApiError> {
    let role = existing_role(state, request)?;
    let prefix = store_prefix(request);
    let hash = if by_accessor {
        let accessor = request.required_string("secret_id_accessor")?;
        state
            .store
            .get::<String>(
                Table::AuthRecords,
                &accessor_index_key(&prefix, &role.name, &accessor),
            )?
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "failed to find accessor entry for secret_id_accessor: \"{accessor}\""
                ))
            })?
    } else {
        token_key(&request.required_string("secret_id")?)
    };
    let key = secret_id_key(&prefix, &role.name, &hash);
    let record = state.store.get(Table::AuthRecords, &key)?;
    Ok((role.name, key, record))
}

fn lookup_answer(record: Option<SecretIdRecord>) -> Result<ApiResponse, ApiError> {
    let now = tokens::now_unix();
    match record.filter(|record| record.expire_unix.is_none_or(|expire| expire > now)) {
        Some(record) => Ok(ApiResponse::data(render(&record, now))),
        // Vault answers an unknown secret ID with no data.
        None => Ok(ApiResponse::empty()),
    }
}

pub fn lookup(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let (_, _, record) = find(&state, &request, false)?;
        lookup_answer(record)
    })
}

pub fn lookup_by_accessor(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let (_, _, record) = find(&state, &request, true)?;
        lookup_answer(record)
    })
}

fn destroy_found(
    state: &AppState,
    request: &Request,
    role: &str,
    key: &str,
    record: Option<SecretIdRecord>,
) -> Result<ApiResponse, ApiError> {
    let prefix = store_prefix(request);
    state.store.write(|tx| {
        tx.delete(Table::AuthRecords, key)?;
        if let Some(record) = &record {
            tx.delete(
                Table::AuthRecords,
                &accessor_index_key(&prefix, role, &record.accessor),
            )?;
        }
        Ok::<_, StoreError>(())
    })?;
    Ok(ApiResponse::empty())
}

pub fn destroy(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let (role, key, record) = find(&state, &request, false)?;
        destroy_found(&state, &request, &role, &key, record)
    })
}

pub fn destroy_by_accessor(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let (role, key, record) = find(&state, &request, true)?;
        destroy_found(&state, &request, &role, &key, record)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uses: u64, expire: Option<u64>) -> SecretIdRecord {
        SecretIdRecord {
            accessor: "acc".into(),
            created_unix: 1000,
            expire_unix: expire,
            uses_left: uses,
            num_uses: uses,
            cidr_list: Vec::new(),
            token_bound_cidrs: Vec::new(),
            metadata: BTreeMap::new(),
            last_updated_unix: 1000,
        }
    }

    #[test]
    fn uses_count_down_to_deletion_and_unlimited_stays() {
        let two = record(2, None);
        let Spent::Allowed(Some(one)) = spend(&two, 1001) else {
            panic!("first use");
        };
        assert_eq!(one.uses_left, 1);
        assert_eq!(one.last_updated_unix, 1001);
        assert_eq!(
            spend(&one, 1002),
            Spent::Allowed(None),
            "last use deletes it"
        );
        let unlimited = record(0, None);
        assert_eq!(
            spend(&unlimited, 5000),
            Spent::Allowed(Some(unlimited.clone()))
        );
    }

    #[test]
    fn an_expired_secret_id_is_refused_from_its_expiry_on() {
        let expiring = record(0, Some(2000));
        assert!(matches!(spend(&expiring, 1999), Spent::Allowed(Some(_))));
        assert_eq!(spend(&expiring, 2000), Spent::Expired);
        assert_eq!(spend(&expiring, 9999), Spent::Expired);
    }

    #[test]
    fn secret_id_blocks_must_lie_inside_the_roles() {
        let outer = vec!["10.0.0.0/8".to_string()];
        assert!(block_within("10.1.0.0/16", &outer));
        assert!(block_within("10.1.2.3", &outer));
        assert!(!block_within("11.0.0.0/16", &outer));
        assert!(!block_within("0.0.0.0/0", &outer));
    }
}
