//! How tokens appear in answers: the envelope's `auth` block (create, renew) and the `data`
//! of a lookup, field for field as Vault and hvac expect them.
//!
//! Pure. Must not look anything up.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::tokens::TokenRecord;

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

fn metadata(record: &TokenRecord) -> Value {
    if record.meta.is_empty() {
        Value::Null
    } else {
        json!(record.meta)
    }
}

/// The `auth` block. `token` is shown here once (at creation) and on renewals of a token the
/// caller presented; never otherwise.
pub fn auth_block(token: &str, record: &TokenRecord, now: u64) -> Value {
    json!({
        "client_token": token,
        "accessor": record.accessor,
        "policies": record.policies,
        "token_policies": record.policies,
        "metadata": metadata(record),
        "lease_duration": record.ttl_remaining(now),
        "renewable": record.renewable && record.expire_unix.is_some(),
        "entity_id": "",
        "token_type": "service",
        "orphan": record.orphan(),
        "mfa_requirement": Value::Null,
        "num_uses": record.num_uses,
    })
}

/// A lookup's `data`. `id` is the token's value when the caller presented it, else empty
/// (lookups by accessor never reveal it).
pub fn lookup_data(id: &str, record: &TokenRecord, now: u64) -> Map<String, Value> {
    let mut data = Map::new();
    let mut put = |key: &str, value: Value| {
        data.insert(key.to_string(), value);
    };
    put("accessor", json!(record.accessor));
    put("creation_time", json!(record.created_unix));
    put("creation_ttl", json!(record.creation_ttl_secs));
    put("display_name", json!(record.display_name));
    put("entity_id", json!(""));
    put(
        "expire_time",
        record
            .expire_unix
            .map(rfc3339)
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put("explicit_max_ttl", json!(record.explicit_max_ttl_secs));
    put("id", json!(id));
    put("issue_time", json!(rfc3339(record.created_unix)));
    put("meta", metadata(record));
    put("num_uses", json!(record.num_uses));
    put("orphan", json!(record.orphan()));
    put("path", json!(record.path));
    put("policies", json!(record.policies));
    put(
        "renewable",
        json!(record.renewable && record.expire_unix.is_some()),
    );
    put("ttl", json!(record.ttl_remaining(now)));
    put("type", json!("service"));
    if record.period_secs > 0 {
        put("period", json!(record.period_secs));
    }
    if let Some(renewed) = record.last_renewal_unix {
        put("last_renewal", json!(rfc3339(renewed)));
        put("last_renewal_time", json!(renewed));
    }
    data
}
