//! The server's configuration file (HCL, in the manner of Vault's).
//!
//! Owns parsing and checking the file; every problem names the file and the setting. Must not
//! start anything.
//!
//! ```hcl
//! storage_path  = "/var/lib/rotor/rotor.redb"
//! seal_key_file = "/etc/rotor/seal.key"      # 0600; created by `rotor operator init`
//! ca_cert_file  = "/var/lib/rotor/ca.pem"    # optional: where the CA certificate is written
//! listener "tcp" {
//!   address       = "0.0.0.0:8200"
//!   tls_cert_file = "/etc/rotor/api.pem"     # optional: else a certificate from Rotor's CA
//!   tls_key_file  = "/etc/rotor/api-key.pem"
//!   tls_san       = ["rotor.example.com"]    # extra names for the CA-issued certificate
//!   http_read_header_timeout    = "10s"      # time to send a request's headers (and TLS hello)
//!   max_connections_per_address = 256        # open connections one client address may hold
//! }
//! agent_listener {
//!   address           = "0.0.0.0:8201"
//!   advertise_address = "rotor.example.com:8201"  # what enrolling agents are told to dial
//!   max_jobs_per_agent = 32                 # jobs one agent runs at once (more queue)
//!   max_jobs_per_host  = 1                  # jobs touching one host at once
//! }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub storage_path: PathBuf,
    pub seal_key_file: PathBuf,
    #[serde(default)]
    pub ca_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub listener: BTreeMap<String, ListenerConfig>,
    #[serde(default)]
    pub agent_listener: Option<AgentListenerConfig>,
    #[serde(default)]
    pub log_format: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: String,
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_san: Vec<String>,
    #[serde(default)]
    pub http_read_header_timeout: Option<String>,
    #[serde(default)]
    pub max_connections_per_address: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentListenerConfig {
    pub address: String,
    #[serde(default)]
    pub advertise_address: Option<String>,
    #[serde(default)]
    pub max_jobs_per_agent: Option<i64>,
    #[serde(default)]
    pub max_jobs_per_host: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: cannot read it: {detail}")]
    Read { path: String, detail: String },
    #[error("config file {path}: {detail}")]
    Invalid { path: String, detail: String },
}

/// What the server runs with, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub storage_path: PathBuf,
    pub seal_key_file: PathBuf,
    pub ca_cert_file: PathBuf,
    pub api_address: SocketAddr,
    pub api_tls_files: Option<(PathBuf, PathBuf)>,
    pub api_tls_san: Vec<String>,
    /// Header-read timeout and per-address connection cap of the API listener.
    pub api_limits: crate::api::connections::ConnectionLimits,
    pub agent_address: SocketAddr,
    pub agent_advertise_address: String,
    /// The dispatcher's caps, from `agent_listener` (defaults: `DispatchSettings::default()`).
    pub max_jobs_per_agent: usize,
    pub max_jobs_per_host: usize,
    pub log_format: Option<String>,
}

pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        detail: error.to_string(),
    })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
    let invalid = |detail: String| ConfigError::Invalid {
        path: path.display().to_string(),
        detail,
    };
    let config: ServerConfig = hcl::from_str(text).map_err(|error| invalid(error.to_string()))?;
    if config.listener.len() > 1 || config.listener.keys().any(|kind| kind != "tcp") {
        return Err(invalid(
            "exactly one listener \"tcp\" { address = ... } block is supported".into(),
        ));
    }
    let listener = config
        .listener
        .get("tcp")
        .cloned()
        .unwrap_or(ListenerConfig {
            address: "127.0.0.1:8200".into(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_san: Vec::new(),
            http_read_header_timeout: None,
            max_connections_per_address: None,
        });
    let api_address: SocketAddr = listener.address.parse().map_err(|_| {
        invalid(format!(
            "listener \"tcp\" address '{}' is not an IP:port such as 0.0.0.0:8200",
            listener.address
        ))
    })?;
    let api_limits = listener_limits(&listener).map_err(invalid)?;
    let api_tls_files = match (listener.tls_cert_file, listener.tls_key_file) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "listener \"tcp\": tls_cert_file and tls_key_file go together".into(),
            ));
        }
    };
    let agent = config.agent_listener.unwrap_or(AgentListenerConfig {
        address: "0.0.0.0:8201".into(),
        advertise_address: None,
        max_jobs_per_agent: None,
        max_jobs_per_host: None,
    });
    let defaults = crate::dispatch::DispatchSettings::default();
    let cap = |name: &str, value: Option<i64>, default: usize, most: usize| match value {
        None => Ok(default),
        Some(value) => usize::try_from(value)
            .ok()
            .filter(|value| (1..=most).contains(value))
            .ok_or_else(|| {
                invalid(format!(
                    "agent_listener {name} = {value}: must be a whole number from 1 to {most}"
                ))
            }),
    };
    let max_jobs_per_agent = cap(
        "max_jobs_per_agent",
        agent.max_jobs_per_agent,
        defaults.max_jobs_per_agent,
        4096,
    )?;
    let max_jobs_per_host = cap(
        "max_jobs_per_host",
        agent.max_jobs_per_host,
        defaults.max_jobs_per_host,
        64,
    )?;
    let agent_address: SocketAddr = agent.address.parse().map_err(|_| {
        invalid(format!(
            "agent_listener address '{}' is not an IP:port such as 0.0.0.0:8201",
            agent.address
        ))
    })?;
    let agent_advertise_address = agent.advertise_address.unwrap_or_else(|| {
        if agent_address.ip().is_unspecified() {
            let host = crate::server::hostname().unwrap_or_else(|| "localhost".into());
            format!("{host}:{}", agent_address.port())
        } else {
            agent_address.to_string()
        }
    });
    let ca_cert_file = config.ca_cert_file.unwrap_or_else(|| {
        config
            .storage_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("ca.pem")
    });
    if let Some(format) = &config.log_format
        && format != "json"
        && format != "standard"
    {
        return Err(invalid(format!(
            "log_format '{format}' is not one of: standard, json"
        )));
    }
    Ok(Settings {
        storage_path: config.storage_path,
        seal_key_file: config.seal_key_file,
        ca_cert_file,
        api_address,
        api_tls_files,
        api_tls_san: listener.tls_san,
        api_limits,
        agent_address,
        agent_advertise_address,
        max_jobs_per_agent,
        max_jobs_per_host,
        log_format: config.log_format,
    })
}

/// The API listener's connection limits, defaults filled in.
fn listener_limits(
    listener: &ListenerConfig,
) -> Result<crate::api::connections::ConnectionLimits, String> {
    let mut limits = crate::api::connections::ConnectionLimits::default();
    if let Some(text) = &listener.http_read_header_timeout {
        limits.header_read_timeout = crate::api::paths::parse_duration(text)
            .filter(|timeout| !timeout.is_zero() && timeout.as_secs() <= 3600)
            .ok_or_else(|| {
                format!(
                    "listener \"tcp\" http_read_header_timeout = \"{text}\": must be a duration from 1s to 1h, such as \"10s\""
                )
            })?;
    }
    if let Some(value) = listener.max_connections_per_address {
        limits.max_connections_per_address = usize::try_from(value)
            .ok()
            .filter(|value| (1..=65_536).contains(value))
            .ok_or_else(|| {
                format!(
                    "listener \"tcp\" max_connections_per_address = {value}: must be a whole number from 1 to 65536"
                )
            })?;
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let text = r#"
storage_path  = "/data/rotor.redb"
seal_key_file = "/data/seal.key"
listener "tcp" {
  address = "0.0.0.0:8200"
  tls_san = ["rotor.example.com"]
}
agent_listener {
  address = "0.0.0.0:8201"
  advertise_address = "ctl:8201"
  max_jobs_per_agent = 64
}
"#;
        let settings = parse(text, Path::new("t.hcl")).expect("parse");
        assert_eq!(settings.max_jobs_per_agent, 64);
        assert_eq!(settings.max_jobs_per_host, 1, "default kept");
        assert_eq!(settings.api_address.port(), 8200);
        assert_eq!(settings.agent_advertise_address, "ctl:8201");
        assert_eq!(settings.ca_cert_file, PathBuf::from("/data/ca.pem"));
        assert_eq!(settings.api_tls_san, vec!["rotor.example.com".to_string()]);
        assert_eq!(
            settings.api_limits,
            crate::api::connections::ConnectionLimits::default(),
            "the listener's connection limits default"
        );
    }

    #[test]
    fn listener_connection_limits_parse_and_are_checked_by_name() {
        let config = |lines: &str| {
            format!(
                "storage_path = \"/d/r.redb\"\nseal_key_file = \"/d/k\"\nlistener \"tcp\" {{\n  address = \"127.0.0.1:8200\"\n  {lines}\n}}\n"
            )
        };
        let settings = parse(
            &config("http_read_header_timeout = \"3s\"\n  max_connections_per_address = 8"),
            Path::new("t.hcl"),
        )
        .expect("parse");
        assert_eq!(
            settings.api_limits.header_read_timeout,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(settings.api_limits.max_connections_per_address, 8);
        for (line, named) in [
            (
                "http_read_header_timeout = \"0s\"",
                "http_read_header_timeout",
            ),
            (
                "http_read_header_timeout = \"soon\"",
                "http_read_header_timeout",
            ),
            (
                "max_connections_per_address = 0",
                "max_connections_per_address = 0",
            ),
        ] {
            let error = parse(&config(line), Path::new("t.hcl"))
                .expect_err(line)
                .to_string();
            assert!(error.contains("t.hcl") && error.contains(named), "{error}");
        }
    }

    #[test]
    fn mistakes_name_the_setting() {
        let error = parse("storage_path = \"/x\"\n", Path::new("t.hcl")).expect_err("missing key");
        assert!(error.to_string().contains("seal_key_file"), "{error}");
        let text =
            "storage_path=\"/x\"\nseal_key_file=\"/k\"\nlistener \"tcp\" { address = \"nope\" }\n";
        let error = parse(text, Path::new("t.hcl")).expect_err("bad address");
        assert!(error.to_string().contains("'nope'"), "{error}");
        let text = "storage_path=\"/x\"\nseal_key_file=\"/k\"\nbogus = 1\n";
        let error = parse(text, Path::new("t.hcl")).expect_err("unknown key");
        assert!(error.to_string().contains("bogus"), "{error}");
    }

    #[test]
    fn dispatcher_caps_out_of_range_are_refused_by_name() {
        for (line, name) in [
            ("max_jobs_per_agent = 0", "max_jobs_per_agent = 0"),
            ("max_jobs_per_host = -3", "max_jobs_per_host = -3"),
            ("max_jobs_per_host = 100000", "max_jobs_per_host = 100000"),
        ] {
            let text = format!(
                "storage_path = \"/d/r.redb\"\nseal_key_file = \"/d/k\"\nagent_listener {{\n  address = \"0.0.0.0:8201\"\n  {line}\n}}\n"
            );
            let error = parse(&text, Path::new("t.hcl"))
                .expect_err(line)
                .to_string();
            assert!(error.contains("t.hcl") && error.contains(name), "{error}");
        }
    }
}
