//! Audit entries: one JSON object per request and one per response, in Vault's file-device
//! layout (`time`, `type`, `auth`, `request`, `response`, `error`), with every string of
//! request data, response data and auth replaced by `hmac-sha256:<hex>`.
//!
//! Pure: rendering takes the hasher and the time as arguments. Must not write anywhere.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Who made the request, as far as the audit log needs it.
#[derive(Clone)]
pub struct AuditAuth {
    /// The presented token; only its HMAC is ever written.
    pub client_token: String,
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub token_ttl_secs: u64,
    pub token_issue_unix: u64,
}

impl std::fmt::Debug for AuditAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuditAuth")
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// A request as the audit log records it.
#[derive(Clone)]
pub struct AuditRequest {
    pub id: String,
    /// Vault's operation names: read, list, create, update, delete.
    pub operation: &'static str,
    pub mount_type: String,
    pub path: String,
    pub data: Map<String, Value>,
    pub remote_address: Option<String>,
    pub auth: Option<AuditAuth>,
}

/// A response as the audit log records it.
#[derive(Debug, Default)]
pub struct AuditResponse<'a> {
    pub data: Option<&'a Map<String, Value>>,
    pub raw: Option<Value>,
    pub auth: Option<&'a Value>,
    pub lease_id: &'a str,
    pub lease_duration: u64,
    pub renewable: bool,
    pub warnings: &'a [String],
}

/// Replaces every string in `value` (at any depth) by its HMAC.
pub fn redact(value: &Value, hash: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(hash(text)),
        Value::Array(items) => Value::Array(items.iter().map(|item| redact(item, hash)).collect()),
        Value::Object(map) => Value::Object(redact_map(map, hash)),
        other => other.clone(),
    }
}

fn redact_map(map: &Map<String, Value>, hash: &dyn Fn(&str) -> String) -> Map<String, Value> {
    map.iter()
        .map(|(key, value)| (key.clone(), redact(value, hash)))
        .collect()
}

fn rfc3339_nanos(now: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(now).to_string()
}

fn auth_json(auth: &AuditAuth, hash: &dyn Fn(&str) -> String) -> Value {
    let metadata: Map<String, Value> = auth
        .metadata
        .iter()
        .map(|(key, value)| (key.clone(), Value::String(hash(value))))
        .collect();
    json!({
        "client_token": hash(&auth.client_token),
        "accessor": hash(&auth.accessor),
        "display_name": auth.display_name,
        "policies": auth.policies,
        "token_policies": auth.policies,
        "metadata": if metadata.is_empty() { Value::Null } else { Value::Object(metadata) },
        "entity_id": "",
        "token_type": "service",
        "token_ttl": auth.token_ttl_secs,
        "token_issue_time": humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(auth.token_issue_unix)
        ).to_string(),
    })
}

fn request_json(request: &AuditRequest, hash: &dyn Fn(&str) -> String) -> Value {
    let auth = request.auth.as_ref();
    json!({
        "id": request.id,
        "operation": request.operation,
        "mount_type": request.mount_type,
        "client_token": auth.map(|auth| hash(&auth.client_token)).unwrap_or_default(),
        "client_token_accessor": auth.map(|auth| hash(&auth.accessor)).unwrap_or_default(),
        "namespace": { "id": "root" },
        "path": request.path,
        "data": if request.data.is_empty() { Value::Null } else { Value::Object(redact_map(&request.data, hash)) },
        "remote_address": request.remote_address,
    })
}

/// The request line (without its newline).
pub fn request_line(
    request: &AuditRequest,
    error: Option<&str>,
    hash: &dyn Fn(&str) -> String,
    now: std::time::SystemTime,
) -> String {
    json!({
        "time": rfc3339_nanos(now),
        "type": "request",
        "auth": request.auth.as_ref().map(|auth| auth_json(auth, hash)),
        "request": request_json(request, hash),
        "error": error.unwrap_or_default(),
    })
    .to_string()
}

fn response_auth(auth: &Value, hash: &dyn Fn(&str) -> String) -> Value {
    let Value::Object(fields) = auth else {
        return redact(auth, hash);
    };
    let kept_in_clear = [
        "policies",
        "token_policies",
        "identity_policies",
        "lease_duration",
        "renewable",
        "token_type",
        "orphan",
        "num_uses",
        "entity_id",
    ];
    Value::Object(
        fields
            .iter()
            .map(|(key, value)| {
                let shown = if kept_in_clear.contains(&key.as_str()) {
                    value.clone()
                } else {
                    redact(value, hash)
                };
                (key.clone(), shown)
            })
            .collect(),
    )
}

/// The response line (without its newline); `error` for a failed request.
pub fn response_line(
    request: &AuditRequest,
    response: &AuditResponse<'_>,
    error: Option<&str>,
    hash: &dyn Fn(&str) -> String,
    now: std::time::SystemTime,
) -> String {
    let data = match (response.data, &response.raw) {
        (Some(data), _) => Value::Object(redact_map(data, hash)),
        (None, Some(raw)) => redact(raw, hash),
        (None, None) => Value::Null,
    };
    let secret = if response.lease_id.is_empty() {
        Value::Null
    } else {
        json!({ "lease_id": response.lease_id })
    };
    json!({
        "time": rfc3339_nanos(now),
        "type": "response",
        "auth": request.auth.as_ref().map(|auth| auth_json(auth, hash)),
        "request": request_json(request, hash),
        "response": {
            "mount_type": request.mount_type,
            "auth": response.auth.map(|auth| response_auth(auth, hash)),
            "secret": secret,
            "data": data,
            "lease_duration": response.lease_duration,
            "renewable": response.renewable,
            "warnings": response.warnings,
        },
        "error": error.unwrap_or_default(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_hash(text: &str) -> String {
        format!("hmac-sha256:{}", text.len())
    }

    fn request() -> AuditRequest {
        let mut data = Map::new();
        data.insert("password".into(), json!("hunter2"));
        data.insert("nested".into(), json!({"list": ["a-secret", 7, true]}));
        AuditRequest {
            id: "req-1".into(),
            operation: "update",
            mount_type: "os".into(),
            path: "os/hosts/h/accounts/a".into(),
            data,
            remote_address: Some("127.0.0.1".into()),
            auth: Some(AuditAuth {
                client_token: "rtr.clear-token".into(),
                accessor: "clear-accessor".into(),
                display_name: "token-app".into(),
                policies: vec!["apps".into(), "default".into()],
                metadata: BTreeMap::from([("owner".to_string(), "alice".to_string())]),
                token_ttl_secs: 3600,
                token_issue_unix: 0,
            }),
        }
    }

    #[test]
    fn no_string_survives_in_clear() {
        let request = request();
        let line = request_line(&request, None, &fake_hash, std::time::SystemTime::now());
        for secret in [
            "hunter2",
            "a-secret",
            "rtr.clear-token",
            "clear-accessor",
            "alice",
        ] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        let parsed: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(parsed["type"], "request");
        assert_eq!(parsed["request"]["data"]["nested"]["list"][1], 7);
        assert_eq!(parsed["auth"]["policies"][0], "apps");
        assert_eq!(parsed["request"]["path"], "os/hosts/h/accounts/a");

        let mut data = Map::new();
        data.insert("password".into(), json!("n3w-pa55"));
        let auth = json!({"client_token": "rtr.child", "accessor": "acc", "policies": ["apps"], "metadata": {"k": "v-secret"}});
        let response = AuditResponse {
            data: Some(&data),
            auth: Some(&auth),
            ..AuditResponse::default()
        };
        let line = response_line(
            &request,
            &response,
            None,
            &fake_hash,
            std::time::SystemTime::now(),
        );
        for secret in ["n3w-pa55", "rtr.child", "\"acc\"", "v-secret", "hunter2"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        let parsed: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(parsed["response"]["auth"]["policies"][0], "apps");
        assert_eq!(parsed["request"]["id"], "req-1");
    }
}
