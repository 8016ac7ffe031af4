//! The console's API client: every read and action of a page is one `/v1/` request issued
//! in-process with the signed-in token (`api::call_as`), so the console sees and does exactly
//! what that token may, and each call is audited like one from curl.
//!
//! Owns turning the API's answers into what pages need (data maps, lists, "denied" as a
//! value rather than an error). Must not read the store: that would bypass the ACL.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::api::{self, ApiError, ApiResponse, AppState, InProcessCall};
use crate::tokens::ClientToken;

/// The API as one signed-in browser sees it.
pub struct ApiClient {
    state: AppState,
    token: ClientToken,
    remote: Option<String>,
}

impl ApiClient {
    pub fn new(state: AppState, token: ClientToken, remote: Option<String>) -> Self {
        Self {
            state,
            token,
            remote,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<ApiResponse, ApiError> {
        api::call_as(
            &self.state,
            InProcessCall {
                method,
                path,
                query,
                body,
                token: &self.token,
                remote: self.remote.clone(),
            },
        )
        .await
    }

    /// `GET /v1/path`: the answer's `data` (an empty map for a bare answer).
    pub async fn read(&self, path: &str) -> Result<Map<String, Value>, ApiError> {
        let response = self.call(Method::GET, path, &[], None).await?;
        Ok(data_of(response))
    }

    /// `GET /v1/path` with query parameters, whole (raw bodies such as `sys/metrics`).
    pub async fn read_raw(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<ApiResponse, ApiError> {
        self.call(Method::GET, path, query, None).await
    }

    /// `LIST /v1/path`: the keys, and the whole data (for `key_info`). A 404 is an empty list,
    /// as Vault's clients read it.
    pub async fn list(&self, path: &str) -> Result<(Vec<String>, Map<String, Value>), ApiError> {
        let method = Method::from_bytes(b"LIST").map_err(|e| ApiError::internal(e.to_string()))?;
        match self.call(method, path, &[], None).await {
            Ok(response) => {
                let data = data_of(response);
                let keys = data
                    .get("keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|key| key.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok((keys, data))
            }
            Err(error) if error.status == StatusCode::NOT_FOUND => Ok((Vec::new(), Map::new())),
            Err(error) => Err(error),
        }
    }

    /// `POST /v1/path` with a JSON body: the data and the warnings.
    pub async fn write(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(Map<String, Value>, Vec<String>), ApiError> {
        let response = self.call(Method::POST, path, &[], Some(body)).await?;
        let warnings = response.warnings.clone();
        Ok((data_of(response), warnings))
    }
}

/// The `data` of an answer (or a raw body's object).
fn data_of(response: ApiResponse) -> Map<String, Value> {
    if let Some(data) = response.data {
        return data;
    }
    match response.raw {
        Some((_, Value::Object(map))) => map,
        _ => Map::new(),
    }
}

/// A read that may be refused: the ACL's 403 is an answer a page shows, not a failure.
#[derive(Debug)]
pub enum Visible<T> {
    Shown(T),
    Denied,
}

impl<T> Visible<T> {
    pub fn from_result(result: Result<T, ApiError>) -> Result<Self, ApiError> {
        match result {
            Ok(value) => Ok(Visible::Shown(value)),
            Err(error) if error.status == StatusCode::FORBIDDEN => Ok(Visible::Denied),
            Err(error) => Err(error),
        }
    }
}

/// `value[key]` as text ("" when missing or null; numbers and booleans written out).
pub fn text(map: &Map<String, Value>, key: &str) -> String {
    match map.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}
