//! Audit entries: one JSON object per request and one per response, in Vault's file-device
//! layout (`time`, `type`, `auth`, `request`, `response`, `error`), with every string of
//! request data, response data and auth replaced by `hmac-sha256:<hex>`.
//!
//! Rendering serialises straight from the request and response (no intermediate JSON
//! tree), and a request's `auth` and `request` objects are rendered once per device
//! ([`Fragments`]) and reused by its response line. Pure: rendering takes the hasher and
//! the time as arguments. Must not write anywhere.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

/// The hasher a device lends to rendering.
pub type Hash<'a> = &'a dyn Fn(&str) -> String;

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
    /// A wrapped answer's `wrap_info` (its token written as an HMAC).
    pub wrap_info: Option<&'a Value>,
}

/// Serialises `value` with every string (at any depth) replaced by its HMAC.
struct Redacted<'a> {
    value: &'a Value,
    hash: Hash<'a>,
}

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::String(text) => serializer.serialize_str(&(self.hash)(text)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Redacted {
                        value,
                        hash: self.hash,
                    })?;
                }
                seq.end()
            }
            Value::Object(map) => RedactedMap::all(map, self.hash).serialize(serializer),
            other => other.serialize(serializer),
        }
    }
}

/// Serialises a map with every string value (at any depth) replaced by its HMAC, except the
/// values of the keys in `in_clear`; keys stay.
struct RedactedMap<'a> {
    map: &'a Map<String, Value>,
    hash: Hash<'a>,
    in_clear: &'static [&'static str],
}

impl<'a> RedactedMap<'a> {
    fn all(map: &'a Map<String, Value>, hash: Hash<'a>) -> Self {
        Self {
            map,
            hash,
            in_clear: &[],
        }
    }
}

impl Serialize for RedactedMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(Some(self.map.len()))?;
        for (key, value) in self.map {
            if self.in_clear.contains(&key.as_str()) {
                out.serialize_entry(key, value)?;
            } else {
                out.serialize_entry(
                    key,
                    &Redacted {
                        value,
                        hash: self.hash,
                    },
                )?;
            }
        }
        out.end()
    }
}

/// Response `wrap_info` fields written in clear (the token and accessors are hashed).
const WRAP_INFO_IN_CLEAR: &[&str] = &["ttl", "creation_time", "creation_path"];

/// Response `auth` fields written in clear (everything else is hashed).
const AUTH_IN_CLEAR: &[&str] = &[
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

#[derive(Serialize)]
struct AuthEntry<'a> {
    client_token: &'a str,
    accessor: &'a str,
    display_name: &'a str,
    policies: &'a [String],
    token_policies: &'a [String],
    metadata: Option<BTreeMap<&'a str, String>>,
    entity_id: &'static str,
    token_type: &'static str,
    token_ttl: u64,
    token_issue_time: String,
}

#[derive(Serialize)]
struct Namespace {
    id: &'static str,
}

#[derive(Serialize)]
struct RequestEntry<'a> {
    id: &'a str,
    operation: &'static str,
    mount_type: &'a str,
    client_token: &'a str,
    client_token_accessor: &'a str,
    namespace: Namespace,
    path: &'a str,
    data: Option<RedactedMap<'a>>,
    remote_address: Option<&'a str>,
}

#[derive(Serialize)]
struct Secret<'a> {
    lease_id: &'a str,
}

/// A part of a response as written: a map (some keys maybe in clear) or any other value,
/// redacted.
enum ResponsePart<'a> {
    Map(RedactedMap<'a>),
    Raw(Redacted<'a>),
}

impl<'a> ResponsePart<'a> {
    /// The response's `auth`: an object's fields in [`AUTH_IN_CLEAR`] shown, the rest hashed.
    fn auth(value: &'a Value, hash: Hash<'a>) -> Self {
        match value {
            Value::Object(map) => ResponsePart::Map(RedactedMap {
                map,
                hash,
                in_clear: AUTH_IN_CLEAR,
            }),
            value => ResponsePart::Raw(Redacted { value, hash }),
        }
    }
}

impl Serialize for ResponsePart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ResponsePart::Map(map) => map.serialize(serializer),
            ResponsePart::Raw(raw) => raw.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct ResponseEntry<'a> {
    mount_type: &'a str,
    auth: Option<ResponsePart<'a>>,
    secret: Option<Secret<'a>>,
    data: Option<ResponsePart<'a>>,
    lease_duration: u64,
    renewable: bool,
    warnings: &'a [String],
    wrap_info: Option<ResponsePart<'a>>,
}

/// A request's `auth` and `request` objects as one device writes them, rendered once for
/// its request line and its response line.
#[derive(Debug, Clone)]
pub struct Fragments {
    auth: String,
    request: String,
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising these types cannot fail: every map key is a string.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Renders `request`'s `auth` and `request` objects with `hash`.
pub fn fragments(request: &AuditRequest, hash: Hash<'_>) -> Fragments {
    let (client_token, accessor) = request
        .auth
        .as_ref()
        .map(|auth| (hash(&auth.client_token), hash(&auth.accessor)))
        .unwrap_or_default();
    let auth = to_json(&request.auth.as_ref().map(|auth| {
        let metadata: BTreeMap<&str, String> = auth
            .metadata
            .iter()
            .map(|(key, value)| (key.as_str(), hash(value)))
            .collect();
        AuthEntry {
            client_token: &client_token,
            accessor: &accessor,
            display_name: &auth.display_name,
            policies: &auth.policies,
            token_policies: &auth.policies,
            metadata: (!metadata.is_empty()).then_some(metadata),
            entity_id: "",
            token_type: "service",
            token_ttl: auth.token_ttl_secs,
            token_issue_time: humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(auth.token_issue_unix),
            )
            .to_string(),
        }
    }));
    let request = to_json(&RequestEntry {
        id: &request.id,
        operation: request.operation,
        mount_type: &request.mount_type,
        client_token: &client_token,
        client_token_accessor: &accessor,
        namespace: Namespace { id: "root" },
        path: &request.path,
        data: (!request.data.is_empty()).then(|| RedactedMap::all(&request.data, hash)),
        remote_address: request.remote_address.as_deref(),
    });
    Fragments { auth, request }
}

/// `{"time":…,"type":…,"auth":…,"request":…[,"response":…],"error":…}`.
fn line(
    kind: &str,
    fragments: &Fragments,
    response: Option<String>,
    error: Option<&str>,
    now: std::time::SystemTime,
) -> String {
    let time = humantime::format_rfc3339_nanos(now).to_string();
    let response_len = response.as_ref().map_or(0, String::len);
    let mut out =
        String::with_capacity(fragments.auth.len() + fragments.request.len() + response_len + 128);
    out.push_str("{\"time\":\"");
    out.push_str(&time);
    out.push_str("\",\"type\":\"");
    out.push_str(kind);
    out.push_str("\",\"auth\":");
    out.push_str(&fragments.auth);
    out.push_str(",\"request\":");
    out.push_str(&fragments.request);
    if let Some(response) = response {
        out.push_str(",\"response\":");
        out.push_str(&response);
    }
    out.push_str(",\"error\":");
    out.push_str(&to_json(&error.unwrap_or_default()));
    out.push('}');
    out
}

/// The request line (without its newline).
pub fn request_line(
    fragments: &Fragments,
    error: Option<&str>,
    now: std::time::SystemTime,
) -> String {
    line("request", fragments, None, error, now)
}

/// The response line (without its newline); `error` for a failed request.
pub fn response_line(
    fragments: &Fragments,
    request: &AuditRequest,
    response: &AuditResponse<'_>,
    error: Option<&str>,
    hash: Hash<'_>,
    now: std::time::SystemTime,
) -> String {
    let data = match (response.data, &response.raw) {
        (Some(map), _) => Some(ResponsePart::Map(RedactedMap::all(map, hash))),
        (None, Some(value)) => Some(ResponsePart::Raw(Redacted { value, hash })),
        (None, None) => None,
    };
    let auth = response.auth.map(|value| ResponsePart::auth(value, hash));
    let body = to_json(&ResponseEntry {
        mount_type: &request.mount_type,
        auth,
        secret: (!response.lease_id.is_empty()).then_some(Secret {
            lease_id: response.lease_id,
        }),
        data,
        lease_duration: response.lease_duration,
        renewable: response.renewable,
        warnings: response.warnings,
        wrap_info: response.wrap_info.map(|value| match value {
            Value::Object(map) => ResponsePart::Map(RedactedMap {
                map,
                hash,
                in_clear: WRAP_INFO_IN_CLEAR,
            }),
            value => ResponsePart::Raw(Redacted { value, hash }),
        }),
    });
    line("response", fragments, Some(body), error, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let fragments = fragments(&request, &fake_hash);
        let line = request_line(&fragments, None, std::time::SystemTime::now());
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
            &fragments,
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
        assert_eq!(parsed["response"]["auth"]["client_token"], "hmac-sha256:9");
        assert_eq!(parsed["response"]["data"]["password"], "hmac-sha256:8");
        assert_eq!(parsed["response"]["secret"], Value::Null);
        assert_eq!(parsed["request"]["id"], "req-1");
        assert_eq!(parsed["type"], "response");
        assert_eq!(parsed["error"], "");

        let failed = response_line(
            &fragments,
            &request,
            &AuditResponse {
                raw: Some(json!(["raw-secret", 3])),
                lease_id: "os/creds/x/lease",
                ..AuditResponse::default()
            },
            Some("permission \"denied\""),
            &fake_hash,
            std::time::SystemTime::now(),
        );
        assert!(!failed.contains("raw-secret"), "{failed}");
        let parsed: Value = serde_json::from_str(&failed).expect("json");
        assert_eq!(parsed["error"], "permission \"denied\"");
        assert_eq!(parsed["response"]["data"][1], 3);
        assert_eq!(parsed["response"]["secret"]["lease_id"], "os/creds/x/lease");
        assert_eq!(
            parsed["request"]["client_token"],
            parsed["auth"]["client_token"]
        );
    }
}
