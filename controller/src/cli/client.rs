//! The CLI's HTTP client: address, token and CA from `ROTOR_*` (falling back to `VAULT_*`),
//! one request per call, Vault's error shape turned into a readable message.
//!
//! Owns talking to the server. Must not format output for people (output.rs does).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Map, Value};

pub struct Client {
    http: reqwest::Client,
    address: String,
    token: Option<String>,
}

fn env_pair(primary: &str, fallback: &str) -> Option<String> {
    std::env::var(primary)
        .ok()
        .or_else(|| std::env::var(fallback).ok())
        .filter(|value| !value.is_empty())
}

/// A failed API call: the server's messages, and what was asked.
#[derive(Debug, thiserror::Error)]
#[error("Error making API request.\n\nURL: {method} {url}\nCode: {status}. Errors:\n\n{}", .errors.iter().map(|e| format!("* {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ApiFailure {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub errors: Vec<String>,
}

/// Where `rotor login` keeps the token: `~/.rotor-token` (Vault keeps `~/.vault-token`).
pub fn token_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|home| !home.is_empty())?;
    Some(PathBuf::from(home).join(".rotor-token"))
}

/// The token `rotor login` stored, if any.
fn stored_token() -> Option<String> {
    std::fs::read_to_string(token_file()?)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

impl Client {
    /// Address from the flag, `ROTOR_ADDR` or `VAULT_ADDR`; token from `ROTOR_TOKEN`,
    /// `VAULT_TOKEN`, then the file `rotor login` wrote.
    pub fn from_env(address_flag: Option<&str>) -> Result<Self> {
        let address = address_flag
            .map(String::from)
            .or_else(|| env_pair("ROTOR_ADDR", "VAULT_ADDR"))
            .unwrap_or_else(|| "https://127.0.0.1:8200".into());
        let token = env_pair("ROTOR_TOKEN", "VAULT_TOKEN").or_else(stored_token);
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca_path) = env_pair("ROTOR_CACERT", "VAULT_CACERT") {
            let pem = std::fs::read(&ca_path)
                .with_context(|| format!("reading ROTOR_CACERT {ca_path}"))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("ROTOR_CACERT {ca_path} is not a PEM certificate"))?;
            builder = builder.tls_certs_only([certificate]);
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Self {
            http,
            address: address.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Uses `token` instead of the one from the environment (`rotor login TOKEN` checks
    /// the token it was given before storing it).
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    /// [`Client::request`] on a runtime of its own, for commands that make one call.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Map<String, Value>>,
    ) -> Result<Value> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(self.request(method, path, body))
    }

    /// Sends one request to `/v1/<path>`; answers the JSON body (`Null` for 204).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Map<String, Value>>,
    ) -> Result<Value> {
        let path = path.trim_start_matches('/');
        let (http_method, url) = match method {
            "LIST" => (Method::GET, format!("{}/v1/{path}?list=true", self.address)),
            other => (
                Method::from_bytes(other.as_bytes()).context("invalid HTTP method")?,
                format!("{}/v1/{path}", self.address),
            ),
        };
        let mut request = self.http.request(http_method, &url);
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the Rotor server at {}: is it running, and is ROTOR_ADDR right?",
                self.address
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the server's answer")?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            // A plain-text answer (`ssh/public_key`) comes back as a JSON string.
            return Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)));
        }
        let errors = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|value| value.get("errors").cloned())
            .and_then(|errors| serde_json::from_value::<Vec<String>>(errors).ok())
            .unwrap_or_else(|| vec![text.trim().to_string()]);
        Err(ApiFailure {
            method: method.into(),
            url,
            status: status.as_u16(),
            errors,
        }
        .into())
    }
}
