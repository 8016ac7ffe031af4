//! Response wrapping (Vault's secure introduction): an answer put away under a single-use
//! wrapping token, shown to the caller as `wrap_info` instead of the answer itself.
//!
//! A request with `X-Vault-Wrap-TTL` gets its answer wrapped here after its handler ran
//! (`api/mod.rs`); `sys/wrapping/*` (`api/sys/wrapping.rs`) unwraps, looks up, rewraps and
//! wraps given data. The table `wrapped_responses` is keyed by the SHA-256 of the wrapping
//! token (never the token), and the answer is sealed. Unwrapping takes the answer out in the
//! same transaction that reads it, so it is handed out exactly once; the row stays (without
//! the answer) until the token's TTL ends, so a second unwrap is told apart from a token that
//! never existed: it is logged as a possible interception and counted
//! (`rotor_wrapping_token_reuse_total`), while the caller gets Vault's one message for both.
//! Wrapping tokens are not API tokens: they open nothing but `sys/wrapping/*`.
//! Must not decide which answers may be wrapped beyond "has data or auth".

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{ApiError, ApiResponse, AppState};
use crate::store::{StoreError, Table};
use crate::tokens::{self, token_key};

/// Vault's answer to a wrapping token that is unknown, expired or already unwrapped.
pub const INVALID_TOKEN: &str = "wrapping token is not valid or does not exist";

/// The longest a wrapped answer is kept: the system's maximum token TTL.
const MAX_WRAP_TTL_SECS: u64 = tokens::SYSTEM_MAX_TTL_SECS;

/// A wrapped answer as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedRecord {
    accessor: String,
    created_unix: u64,
    ttl_secs: u64,
    creation_path: String,
    /// The sealed answer (hex); `None` once it was unwrapped.
    sealed_hex: Option<String>,
    unwrapped_unix: Option<u64>,
}

impl WrappedRecord {
    fn expire_unix(&self) -> u64 {
        self.created_unix.saturating_add(self.ttl_secs)
    }
}

/// The parts of an answer that are wrapped.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedAnswer {
    data: Option<Map<String, Value>>,
    auth: Option<Value>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    warnings: Vec<String>,
}

/// Reads `X-Vault-Wrap-TTL` (`90`, `90s`, `5m`); `None` when absent.
pub fn parse_wrap_ttl(header: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(text) = header.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let ttl = super::paths::parse_duration(text)
        .map(|duration| duration.as_secs())
        .filter(|secs| *secs > 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "error parsing wrap TTL '{}': give a duration above zero such as 60, 60s or 5m",
                rotor_common::names::quote_for_message(text)
            ))
        })?;
    if ttl > MAX_WRAP_TTL_SECS {
        return Err(ApiError::bad_request(format!(
            "wrap TTL {ttl}s is longer than the maximum, {MAX_WRAP_TTL_SECS}s (768h)"
        )));
    }
    Ok(Some(ttl))
}

fn location(key: &str) -> String {
    format!("wrapped_responses/{key}")
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// Whether a wrap request applies to `response` (an answer with data or auth).
pub fn wrappable(response: &ApiResponse) -> bool {
    response.raw.is_none()
        && response.raw_text.is_none()
        && (response.data.is_some() || response.auth.is_some())
}

/// Puts `response` away for `ttl_secs`; answers the envelope that carries only `wrap_info`.
pub fn wrap(
    state: &AppState,
    response: ApiResponse,
    ttl_secs: u64,
    creation_path: &str,
) -> Result<ApiResponse, ApiError> {
    let wrapped_accessor = response
        .auth
        .as_ref()
        .and_then(|auth| auth.get("accessor"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let answer = WrappedAnswer {
        data: response.data,
        auth: response.auth,
        lease_id: response.lease_id,
        lease_duration: response.lease_duration,
        renewable: response.renewable,
        warnings: response.warnings,
    };
    let token = tokens::generate_token();
    let key = token_key(&token);
    let plaintext = zeroize::Zeroizing::new(
        serde_json::to_vec(&answer)
            .map_err(|error| ApiError::internal(format!("encoding a wrapped answer: {error}")))?,
    );
    let sealed = state.store.seal(&location(&key), &plaintext)?;
    let now = tokens::now_unix();
    let record = WrappedRecord {
        accessor: tokens::generate_accessor(),
        created_unix: now,
        ttl_secs,
        creation_path: creation_path.to_string(),
        sealed_hex: Some(hex::encode(sealed)),
        unwrapped_unix: None,
    };
    state
        .store
        .write(|tx| tx.put(Table::WrappedResponses, &key, &record))?;
    let mut wrap_info = json!({
        "token": token,
        "accessor": record.accessor,
        "ttl": ttl_secs,
        "creation_time": rfc3339(now),
        "creation_path": creation_path,
    });
    if !wrapped_accessor.is_empty() {
        wrap_info["wrapped_accessor"] = json!(wrapped_accessor);
    }
    Ok(ApiResponse {
        wrap_info: Some(wrap_info),
        ..ApiResponse::default()
    })
}

/// Takes the answer out from under `token`, once.
pub fn unwrap(state: &AppState, token: &str) -> Result<ApiResponse, ApiError> {
    let (record, sealed) = take(state, token)?;
    let answer = open(state, token, &sealed)?;
    tracing::info!(creation_path = %record.creation_path, accessor = %record.accessor, "wrapped answer unwrapped");
    Ok(answer)
}

/// Unseals a taken answer.
fn open(state: &AppState, token: &str, sealed_hex: &str) -> Result<ApiResponse, ApiError> {
    let sealed = hex::decode(sealed_hex)
        .map_err(|error| ApiError::internal(format!("a wrapped answer is unreadable: {error}")))?;
    let plaintext = state.store.unseal(&location(&token_key(token)), &sealed)?;
    let answer: WrappedAnswer = serde_json::from_slice(&plaintext)
        .map_err(|error| ApiError::internal(format!("a wrapped answer is unreadable: {error}")))?;
    Ok(ApiResponse {
        data: answer.data,
        auth: answer.auth,
        lease_id: answer.lease_id,
        lease_duration: answer.lease_duration,
        renewable: answer.renewable,
        warnings: answer.warnings,
        ..ApiResponse::default()
    })
}

/// Empties the record of `token` in one transaction; answers it and its sealed answer.
fn take(state: &AppState, token: &str) -> Result<(WrappedRecord, String), ApiError> {
    if token.is_empty() {
        return Err(ApiError::bad_request(INVALID_TOKEN));
    }
    let key = token_key(token);
    let now = tokens::now_unix();
    let taken = state.store.write(|tx| {
        let Some(mut record) = tx.get::<WrappedRecord>(Table::WrappedResponses, &key)? else {
            return Ok::<_, StoreError>(Err(None));
        };
        if record.expire_unix() <= now {
            tx.delete(Table::WrappedResponses, &key)?;
            return Ok(Err(None));
        }
        let Some(sealed) = record.sealed_hex.take() else {
            return Ok(Err(Some(record)));
        };
        record.unwrapped_unix = Some(now);
        tx.put(Table::WrappedResponses, &key, &record)?;
        Ok(Ok((record, sealed)))
    })?;
    match taken {
        Ok(taken) => Ok(taken),
        Err(Some(spent)) => {
            crate::metrics::global().wrapping_token_reused();
            tracing::warn!(
                creation_path = %spent.creation_path,
                accessor = %spent.accessor,
                unwrapped_unix = spent.unwrapped_unix,
                "a wrapping token was presented again after its answer was unwrapped: if its intended recipient did not unwrap it, someone intercepted it"
            );
            Err(ApiError::bad_request(INVALID_TOKEN))
        }
        Err(None) => Err(ApiError::bad_request(INVALID_TOKEN)),
    }
}

/// What a wrapping token is, without spending it.
pub fn lookup(state: &AppState, token: &str) -> Result<Map<String, Value>, ApiError> {
    let now = tokens::now_unix();
    let record: Option<WrappedRecord> = if token.is_empty() {
        None
    } else {
        state
            .store
            .get(Table::WrappedResponses, &token_key(token))?
    };
    let record = record
        .filter(|record| record.sealed_hex.is_some() && record.expire_unix() > now)
        .ok_or_else(|| ApiError::bad_request(INVALID_TOKEN))?;
    Ok(crate::data_map! {
        "creation_path" => record.creation_path,
        "creation_time" => rfc3339(record.created_unix),
        "creation_ttl" => record.ttl_secs,
    })
}

/// Spends `token` and wraps its answer again under a new token with the same TTL.
pub fn rewrap(state: &AppState, token: &str) -> Result<ApiResponse, ApiError> {
    let (record, sealed) = take(state, token)?;
    let answer = open(state, token, &sealed)?;
    wrap(state, answer, record.ttl_secs, &record.creation_path)
}

/// Deletes rows whose TTL ended (the sweeper calls this); answers how many.
pub fn purge_expired(state: &AppState, now: u64) -> Result<usize, StoreError> {
    state.store.write(|tx| {
        let mut purged = 0;
        for (key, record) in tx.scan::<WrappedRecord>(Table::WrappedResponses, "")? {
            if record.expire_unix() <= now {
                tx.delete(Table::WrappedResponses, &key)?;
                purged += 1;
            }
        }
        Ok(purged)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::services;

    fn answer(secret: &str) -> ApiResponse {
        ApiResponse::data(crate::data_map! { "secret_id" => secret })
    }

    #[test]
    fn a_wrapped_answer_is_unwrapped_exactly_once() {
        let state = services();
        let wrapped = wrap(
            &state,
            answer("s3cr3t-id"),
            300,
            "auth/approle/role/web/secret-id",
        )
        .expect("wrap");
        assert!(wrapped.data.is_none() && wrapped.auth.is_none());
        let info = wrapped.wrap_info.expect("wrap_info");
        assert_eq!(info["ttl"], 300);
        assert_eq!(info["creation_path"], "auth/approle/role/web/secret-id");
        let token = info["token"].as_str().expect("token").to_string();

        // Neither the token nor the answer is in the store in clear.
        let rows = state
            .store
            .scan::<Value>(Table::WrappedResponses, "")
            .expect("scan");
        let stored = serde_json::to_string(&rows).expect("json");
        assert!(
            !stored.contains(&token) && !stored.contains("s3cr3t-id"),
            "{stored}"
        );

        let looked_up = lookup(&state, &token).expect("lookup");
        assert_eq!(looked_up["creation_ttl"], 300);
        let unwrapped = unwrap(&state, &token).expect("first unwrap");
        assert_eq!(unwrapped.data.expect("data")["secret_id"], "s3cr3t-id");

        let before = crate::metrics::global().snapshot().wrapping_reuse;
        let second = unwrap(&state, &token).expect_err("second unwrap");
        assert_eq!(second.status.as_u16(), 400);
        assert_eq!(second.message, INVALID_TOKEN);
        assert!(crate::metrics::global().snapshot().wrapping_reuse > before);
        assert_eq!(
            lookup(&state, &token).expect_err("spent").message,
            INVALID_TOKEN
        );
        assert_eq!(
            unwrap(&state, "never-issued").expect_err("unknown").message,
            INVALID_TOKEN
        );
        assert_eq!(
            unwrap(&state, "").expect_err("empty").message,
            INVALID_TOKEN
        );
    }

    #[test]
    fn rewrap_moves_the_answer_and_spends_the_old_token() {
        let state = services();
        let first = wrap(&state, answer("moved"), 60, "sys/wrapping/wrap").expect("wrap");
        let old = first.wrap_info.expect("info")["token"]
            .as_str()
            .expect("token")
            .to_string();
        let second = rewrap(&state, &old).expect("rewrap");
        let info = second.wrap_info.expect("info");
        assert_eq!(info["ttl"], 60);
        let new = info["token"].as_str().expect("token").to_string();
        assert_ne!(old, new);
        assert!(unwrap(&state, &old).is_err());
        assert_eq!(
            unwrap(&state, &new).expect("new").data.expect("data")["secret_id"],
            "moved"
        );
    }

    #[test]
    fn expired_answers_are_refused_and_purged() {
        let state = services();
        let wrapped = wrap(&state, answer("old"), 60, "x").expect("wrap");
        let token = wrapped.wrap_info.expect("info")["token"]
            .as_str()
            .expect("token")
            .to_string();
        let now = tokens::now_unix();
        assert_eq!(purge_expired(&state, now).expect("purge"), 0);
        assert_eq!(purge_expired(&state, now + 61).expect("purge"), 1);
        assert_eq!(
            unwrap(&state, &token).expect_err("gone").message,
            INVALID_TOKEN
        );
    }

    #[test]
    fn wrap_ttls_are_read_as_vault_clients_send_them() {
        assert_eq!(parse_wrap_ttl(None).expect("none"), None);
        assert_eq!(parse_wrap_ttl(Some("60")).expect("60"), Some(60));
        assert_eq!(parse_wrap_ttl(Some("5m")).expect("5m"), Some(300));
        for bad in ["0", "soon", "-1"] {
            let error = parse_wrap_ttl(Some(bad)).expect_err(bad);
            assert!(error.message.contains("error parsing wrap TTL"), "{error}");
        }
        assert!(parse_wrap_ttl(Some("10000h")).is_err());
    }
}
