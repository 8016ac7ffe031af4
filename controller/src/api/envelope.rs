//! The Vault response envelope: `{request_id, lease_id, renewable, lease_duration, data,
//! wrap_info, warnings, auth}`.
//!
//! Owns what a successful answer looks like on the wire; handlers return [`ApiResponse`] and
//! never build JSON envelopes themselves. A response without data or warnings is a 204.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// What a handler answers.
#[derive(Debug, Default, Clone)]
pub struct ApiResponse {
    pub data: Option<Map<String, Value>>,
    pub warnings: Vec<String>,
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
    pub auth: Option<Value>,
    /// A raw body instead of an envelope (e.g. `sys/health` answers bare JSON, as Vault does).
    pub raw: Option<(StatusCode, Value)>,
    /// A plain-text body (`text/plain`, 200) instead of an envelope (e.g. `ssh/public_key`).
    pub raw_text: Option<String>,
    /// A wrapped answer's `wrap_info` (token, accessor, ttl, creation time and path); set only
    /// by `api/wrapping.rs`, never by handlers.
    pub wrap_info: Option<Value>,
}

impl ApiResponse {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn data(data: Map<String, Value>) -> Self {
        Self {
            data: Some(data),
            ..Self::default()
        }
    }

    /// `{"keys": [...]}`, the answer to LIST.
    pub fn keys(keys: Vec<String>) -> Self {
        let mut data = Map::new();
        data.insert("keys".into(), Value::from(keys));
        Self::data(data)
    }

    pub fn raw(status: StatusCode, body: Value) -> Self {
        Self {
            raw: Some((status, body)),
            ..Self::default()
        }
    }

    pub fn raw_text(body: impl Into<String>) -> Self {
        Self {
            raw_text: Some(body.into()),
            ..Self::default()
        }
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    pub fn render(self, request_id: &str) -> Response {
        if let Some((status, body)) = self.raw {
            return (status, axum::Json(body)).into_response();
        }
        if let Some(text) = self.raw_text {
            let content_type = [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )];
            return (StatusCode::OK, content_type, text).into_response();
        }
        if self.data.is_none()
            && self.warnings.is_empty()
            && self.auth.is_none()
            && self.wrap_info.is_none()
            && self.lease_id.is_empty()
        {
            return StatusCode::NO_CONTENT.into_response();
        }
        let warnings = if self.warnings.is_empty() {
            Value::Null
        } else {
            Value::from(self.warnings)
        };
        let body = serde_json::json!({
            "request_id": request_id,
            "lease_id": self.lease_id,
            "renewable": self.renewable,
            "lease_duration": self.lease_duration,
            "data": self.data.map(Value::Object).unwrap_or(Value::Null),
            "wrap_info": self.wrap_info.unwrap_or(Value::Null),
            "warnings": warnings,
            "auth": self.auth.unwrap_or(Value::Null),
        });
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

/// Builds a data map from `key => value` pairs.
#[macro_export]
macro_rules! data_map {
    ($($key:expr => $value:expr),* $(,)?) => {{
        let mut map = serde_json::Map::new();
        $( map.insert(String::from($key), serde_json::json!($value)); )*
        map
    }};
}
