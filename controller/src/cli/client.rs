//! The CLI's HTTP client: address, token and CA from `ROTOR_*` (falling back to `VAULT_*`),
//! one request per call, Vault's error shape turned into a readable message.
//!
//! Owns talking to the server, and saying what to change when that fails (an untrusted
//! certificate names ROTOR_CACERT, `http://` against the HTTPS API says use `https://`, a 403
//! says where the token came from). Must not format output for people (output.rs does).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Map, Value};

/// The address used when neither `-address`, `ROTOR_ADDR` nor `VAULT_ADDR` names one.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";
/// The address source named in errors when the default is used.
const DEFAULT_SOURCE: &str = "the default address";

pub struct Client {
    http: reqwest::Client,
    address: String,
    /// What named the address (`ROTOR_ADDR`, `-address`, ...), for errors that say what to change.
    address_source: &'static str,
    token: Option<String>,
    /// What the token came from (`ROTOR_TOKEN`, `~/.rotor-token`, ...), for a 403's hint.
    token_source: &'static str,
    /// The `ROTOR_CACERT` file in use, for an untrusted certificate's error.
    ca_file: Option<String>,
    /// `-wrap-ttl`: sent as `X-Vault-Wrap-TTL`, so the server answers a wrapping token.
    wrap_ttl: Option<String>,
}

fn env_pair(primary: &'static str, fallback: &'static str) -> Option<String> {
    env_pair_named(primary, fallback).map(|(value, _)| value)
}

/// The first of two variables that is set and not empty, with its name.
fn env_pair_named(primary: &'static str, fallback: &'static str) -> Option<(String, &'static str)> {
    [primary, fallback].into_iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.is_empty())
            .map(|value| (value, name))
    })
}

/// Tells on stderr, once per process, which address is used when nothing names one: a
/// newcomer whose server listens elsewhere then knows what to set.
fn note_default_address() {
    static NOTED: std::sync::Once = std::sync::Once::new();
    NOTED.call_once(|| {
        eprintln!("note: ROTOR_ADDR is not set; using {DEFAULT_ADDRESS}");
    });
}

/// Refuses an address the client cannot use, saying what it needs (`127.0.0.1:8200` has no
/// scheme; reqwest would say only "relative URL without a base").
fn check_address(address: &str, source: &str) -> Result<()> {
    let usable = reqwest::Url::parse(address).is_ok_and(|url| {
        matches!(url.scheme(), "https" | "http") && url.host_str().is_some_and(|h| !h.is_empty())
    });
    if !usable {
        bail!(
            "{source} is '{address}': it needs https://host:port, like https://{}",
            address
                .split("://")
                .last()
                .unwrap_or(address)
                .trim_matches('/')
        );
    }
    Ok(())
}

/// A failed API call: the server's messages, and what was asked.
#[derive(Debug, thiserror::Error)]
#[error("Error making API request.\n\nURL: {method} {url}\nCode: {status}. Errors:\n\n{}{}", .errors.iter().map(|e| format!("* {e}")).collect::<Vec<_>>().join("\n"), .hint.as_ref().map(|hint| format!("\n\n{hint}")).unwrap_or_default())]
pub struct ApiFailure {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub errors: Vec<String>,
    /// What the caller can change (a 403: which token was sent and how to send another).
    pub hint: Option<String>,
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
        let (address, address_source) = match address_flag {
            Some(address) => (address.to_string(), "-address"),
            None => env_pair_named("ROTOR_ADDR", "VAULT_ADDR").unwrap_or_else(|| {
                note_default_address();
                (DEFAULT_ADDRESS.into(), DEFAULT_SOURCE)
            }),
        };
        check_address(&address, address_source)?;
        let (token, token_source) = match env_pair_named("ROTOR_TOKEN", "VAULT_TOKEN") {
            Some((token, name)) => (Some(token), name),
            None => match stored_token() {
                Some(token) => (Some(token), "~/.rotor-token (from rotor login)"),
                None => (None, "none"),
            },
        };
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10));
        let ca_file = env_pair("ROTOR_CACERT", "VAULT_CACERT");
        if let Some(ca_path) = &ca_file {
            let pem = std::fs::read(ca_path)
                .with_context(|| format!("reading ROTOR_CACERT {ca_path}"))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("ROTOR_CACERT {ca_path} is not a PEM certificate"))?;
            builder = builder.tls_certs_only([certificate]);
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Self {
            http,
            address: address.trim_end_matches('/').to_string(),
            address_source,
            token,
            token_source,
            ca_file,
            wrap_ttl: None,
        })
    }

    /// Asks the server to wrap every answer for `ttl` (`-wrap-ttl=5m`).
    pub fn with_wrap_ttl(mut self, ttl: Option<&str>) -> Self {
        self.wrap_ttl = ttl.map(String::from);
        self
    }

    /// Sends no token (a login, an unwrap with the wrapping token in the body).
    pub fn without_token(mut self) -> Self {
        self.token = None;
        self.token_source = "none";
        self
    }

    /// Uses `token` instead of the one from the environment (`rotor login TOKEN` checks
    /// the token it was given before storing it).
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self.token_source = "the command line";
        self
    }

    /// Why a request got no answer, naming what to change where the failure says it.
    fn explain_send_error(&self, error: &reqwest::Error) -> String {
        let address = &self.address;
        match classify_send_error(error) {
            SendFailure::UntrustedCertificate => match &self.ca_file {
                Some(ca_file) => format!(
                    "the server's certificate at {address} is not trusted: ROTOR_CACERT ({ca_file}) is not the CA that signed it; set ROTOR_CACERT to its CA (the dev server printed it)"
                ),
                None => format!(
                    "the server's certificate at {address} is not trusted: set ROTOR_CACERT to its CA (the dev server printed it)"
                ),
            },
            SendFailure::CertificateNotForName => format!(
                "the server's certificate is not valid for the host in {address}: use a name or IP address its certificate holds (the dev server's: 127.0.0.1, localhost)"
            ),
            SendFailure::PlainHttpToTls => format!(
                "the server at {address} speaks HTTPS, not HTTP: use {}",
                address.replacen("http://", "https://", 1)
            ),
            SendFailure::Other if self.address_source == DEFAULT_SOURCE => format!(
                "cannot reach the Rotor server at {address} (ROTOR_ADDR is not set, so the default): is it running? Set ROTOR_ADDR to its address (the dev server printed it)"
            ),
            SendFailure::Other => format!(
                "cannot reach the Rotor server at {address} (from {}): is it running, and is ROTOR_ADDR right?",
                self.address_source
            ),
        }
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
        if let Some(ttl) = &self.wrap_ttl {
            request = request.header("X-Vault-Wrap-TTL", ttl);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let explanation = self.explain_send_error(&error);
                return Err(anyhow::Error::new(error).context(explanation));
            }
        };
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
        // The hint says only what the client knows (where its token came from), never
        // whether the server knows the token.
        let hint = (status == reqwest::StatusCode::FORBIDDEN).then(|| match self.token_source {
            "none" => "No token was sent: set ROTOR_TOKEN, or run `rotor login`.".to_string(),
            source => format!(
                "The token sent (from {source}) is not allowed this: set ROTOR_TOKEN to a token whose policies allow it, or run `rotor login`."
            ),
        });
        Err(ApiFailure {
            method: method.into(),
            url,
            status: status.as_u16(),
            errors,
            hint,
        }
        .into())
    }
}

/// What a request that got no HTTP answer ran into, where the user can fix it.
#[derive(Debug, PartialEq, Eq)]
enum SendFailure {
    /// The certificate chains to no CA the client trusts (ROTOR_CACERT unset or another CA).
    UntrustedCertificate,
    /// The certificate is trusted but does not name the host that was dialled.
    CertificateNotForName,
    /// `http://` against a TLS listener: hyper reads the TLS alert as a bad HTTP version.
    PlainHttpToTls,
    Other,
}

fn classify_send_error(error: &reqwest::Error) -> SendFailure {
    let plain_http = error.url().is_some_and(|url| url.scheme() == "http");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(tls_error) = current.downcast_ref::<rustls::Error>() {
            return match tls_error {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => SendFailure::CertificateNotForName,
                rustls::Error::InvalidCertificate(_) => SendFailure::UntrustedCertificate,
                _ => SendFailure::Other,
            };
        }
        let text = current.to_string();
        if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
            return SendFailure::UntrustedCertificate;
        }
        if plain_http && text.contains("invalid HTTP version") {
            return SendFailure::PlainHttpToTls;
        }
        source = current.source();
    }
    SendFailure::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_scheme_says_what_it_needs() {
        for address in [
            "127.0.0.1:8200",
            "localhost:8200",
            "rotor.example",
            "ftp://x:1",
        ] {
            let error = check_address(address, "ROTOR_ADDR").expect_err(address);
            let text = error.to_string();
            assert!(
                text.contains("ROTOR_ADDR") && text.contains("https://host:port"),
                "{text}"
            );
        }
        assert!(
            check_address("127.0.0.1:8200", "ROTOR_ADDR")
                .expect_err("no scheme")
                .to_string()
                .contains("like https://127.0.0.1:8200")
        );
        for address in [
            "https://127.0.0.1:8200",
            "http://localhost:8200",
            "https://[::1]:1/",
        ] {
            check_address(address, "ROTOR_ADDR").expect(address);
        }
    }

    #[test]
    fn a_forbidden_answer_hints_at_the_token_without_judging_it() {
        let failure = ApiFailure {
            method: "GET".into(),
            url: "https://x/v1/os/hosts".into(),
            status: 403,
            errors: vec!["permission denied".into()],
            hint: Some("set ROTOR_TOKEN".into()),
        };
        let text = failure.to_string();
        assert!(
            text.ends_with("* permission denied\n\nset ROTOR_TOKEN"),
            "{text}"
        );
    }
}
