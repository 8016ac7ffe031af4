//! Roles of the ssh engine (`roles/:name`): one record per role whose `key_type` says which
//! half of the engine uses it: `ca` (certificates, this issue) or `otp` (one-time
//! passwords, `creds/`). Both kinds share `default_user` and `allowed_users`; the rest
//! lives in the kind's own settings, so either half grows without touching the other.
//!
//! Owns parsing a role write (400 naming the field), the stored layout (table `ssh_roles`,
//! key `<mount><name>`), and how a role reads back. Must not sign or issue anything.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rotor_common::names::{validate_object_name, validate_username};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keys::AllowedKeyLengths;
use crate::api::{ApiError, Request};
use crate::data_map;
use crate::store::{Store, StoreResult, Table};
use crate::tokens::now_unix;

/// Vault's system default and maximum lease TTL (32 days), which a role without `ttl` or
/// `max_ttl` falls back to.
pub const SYSTEM_MAX_TTL_SECS: u64 = 768 * 3600;
/// `not_before_duration` when a role does not say.
pub const DEFAULT_NOT_BEFORE_SECS: u64 = 30;
/// The variables `key_id_format` may use.
pub const KEY_ID_VARIABLES: [&str; 3] = [
    "{{token_display_name}}",
    "{{role_name}}",
    "{{public_key_hash}}",
];

/// Which half of the engine a role serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleKeyType {
    Otp,
    Ca,
}

impl RoleKeyType {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text.trim() {
            "otp" => Ok(RoleKeyType::Otp),
            "ca" => Ok(RoleKeyType::Ca),
            "dynamic" => Err(ApiError::bad_request(
                "field 'key_type': dynamic keys were removed from Vault's SSH engine and are not offered; use ca or otp",
            )),
            other => Err(ApiError::bad_request(format!(
                "field 'key_type': '{other}' is not a role type; use ca (certificates) or otp (one-time passwords)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RoleKeyType::Otp => "otp",
            RoleKeyType::Ca => "ca",
        }
    }
}

/// How the CA signs for a role (`algorithm_signer`). Only RSA CA keys have a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlgorithmSigner {
    /// rsa-sha2-256 for RSA keys; the only signature an EC or Ed25519 key makes.
    Default,
    /// SHA-1; OpenSSH 8.8 and later refuse it.
    SshRsa,
    RsaSha2_256,
    RsaSha2_512,
}

impl AlgorithmSigner {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text.trim() {
            "" | "default" => Ok(AlgorithmSigner::Default),
            "ssh-rsa" => Ok(AlgorithmSigner::SshRsa),
            "rsa-sha2-256" => Ok(AlgorithmSigner::RsaSha2_256),
            "rsa-sha2-512" => Ok(AlgorithmSigner::RsaSha2_512),
            other => Err(ApiError::bad_request(format!(
                "field 'algorithm_signer': '{other}' is not offered; use default, rsa-sha2-256, rsa-sha2-512 or ssh-rsa"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AlgorithmSigner::Default => "default",
            AlgorithmSigner::SshRsa => "ssh-rsa",
            AlgorithmSigner::RsaSha2_256 => "rsa-sha2-256",
            AlgorithmSigner::RsaSha2_512 => "rsa-sha2-512",
        }
    }
}

/// What an OTP role adds (issue 8 uses these; they are stored and read back already).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpSettings {
    pub cidr_list: Vec<String>,
    pub exclude_cidr_list: Vec<String>,
    pub port: u16,
    /// How long an OTP (and its lease) lives; `None`: the engine's default.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// What a CA role adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaSettings {
    pub allowed_domains: Vec<String>,
    pub allow_bare_domains: bool,
    pub allow_subdomains: bool,
    pub allow_user_certificates: bool,
    pub allow_host_certificates: bool,
    /// Empty allows any critical option.
    pub allowed_critical_options: Vec<String>,
    /// Empty allows none to be requested; `*` allows any.
    pub allowed_extensions: Vec<String>,
    pub default_critical_options: BTreeMap<String, String>,
    pub default_extensions: BTreeMap<String, String>,
    pub allow_user_key_ids: bool,
    pub key_id_format: String,
    pub allowed_user_key_lengths: AllowedKeyLengths,
    pub algorithm_signer: AlgorithmSigner,
    pub ttl_secs: Option<u64>,
    pub max_ttl_secs: Option<u64>,
    pub not_before_duration_secs: u64,
}

impl CaSettings {
    /// The role's upper bound on a certificate's life.
    pub fn effective_max_ttl_secs(&self) -> u64 {
        self.max_ttl_secs.unwrap_or(SYSTEM_MAX_TTL_SECS)
    }

    /// The life of a certificate whose request names no TTL.
    pub fn effective_default_ttl_secs(&self) -> u64 {
        self.ttl_secs
            .unwrap_or(SYSTEM_MAX_TTL_SECS)
            .min(self.effective_max_ttl_secs())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSettings {
    Otp(OtpSettings),
    Ca(CaSettings),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRole {
    pub name: String,
    /// For `ca`: the principal when a request names none; allowed even when not in
    /// `allowed_users` (as Vault does), but only if `allowed_users` is not empty.
    /// For `otp`: the user when `creds` names none.
    pub default_user: String,
    /// For `ca`: empty allows no user, `*` any. For `otp`: empty or `*` allows any.
    pub allowed_users: Vec<String>,
    pub settings: RoleSettings,
    pub created_unix: u64,
}

impl SshRole {
    pub fn key_type(&self) -> RoleKeyType {
        match self.settings {
            RoleSettings::Otp(_) => RoleKeyType::Otp,
            RoleSettings::Ca(_) => RoleKeyType::Ca,
        }
    }

    pub fn ca(&self) -> Option<&CaSettings> {
        match &self.settings {
            RoleSettings::Ca(settings) => Some(settings),
            RoleSettings::Otp(_) => None,
        }
    }

    pub fn otp(&self) -> Option<&OtpSettings> {
        match &self.settings {
            RoleSettings::Otp(settings) => Some(settings),
            RoleSettings::Ca(_) => None,
        }
    }
}

/// An IPv4 or IPv6 block, `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = text.trim().split_once('/')?;
        let network: IpAddr = address.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

fn valid_role_name(name: &str) -> Result<(), ApiError> {
    validate_object_name("role", name).map_err(|invalid| ApiError::bad_request(invalid.to_string()))
}

/// A JSON object of strings (`default_extensions`, `critical_options`, …); numbers and
/// booleans are taken as their text.
pub fn string_map(
    request: &Request,
    field: &str,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let Some(map) = request.object(field)? else {
        return Ok(None);
    };
    map.iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                Value::Null => String::new(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "field '{field}': the value of '{key}' must be a string"
                    )));
                }
            };
            Ok((key.clone(), text))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map(Some)
}

fn refuse_template(request: &Request, field: &str) -> Result<(), ApiError> {
    if request.bool(field)? == Some(true) {
        return Err(ApiError::bad_request(format!(
            "field '{field}': identity templates are not supported by Rotor; list the values literally"
        )));
    }
    Ok(())
}

fn list(request: &Request, field: &str) -> Result<Vec<String>, ApiError> {
    Ok(request.string_list(field)?.unwrap_or_default())
}

fn seconds(request: &Request, field: &str) -> Result<Option<u64>, ApiError> {
    Ok(request
        .duration(field)?
        .map(|duration| duration.as_secs())
        .filter(|secs| *secs > 0))
}

const OTP_ONLY: [&str; 3] = ["cidr_list", "exclude_cidr_list", "port"];
const CA_ONLY: [&str; 19] = [
    "allowed_domains",
    "allowed_domains_template",
    "allow_bare_domains",
    "allow_subdomains",
    "allow_user_certificates",
    "allow_host_certificates",
    "allowed_critical_options",
    "allowed_extensions",
    "default_critical_options",
    "default_extensions",
    "default_extensions_template",
    "allow_user_key_ids",
    "key_id_format",
    "allowed_user_key_lengths",
    "algorithm_signer",
    "ttl",
    "max_ttl",
    "not_before_duration",
    "allow_empty_principals",
];

/// Builds the role a write describes. A write replaces the whole role, as Vault's does:
/// fields not given take their defaults. Answers warnings for fields the role's type ignores.
pub fn parse_role(name: &str, request: &Request) -> Result<(SshRole, Vec<String>), ApiError> {
    valid_role_name(name)?;
    let key_type = RoleKeyType::parse(&request.required_string("key_type")?)?;
    let default_user = request.string("default_user")?.unwrap_or_default();
    let allowed_users = list(request, "allowed_users")?;
    refuse_template(request, "default_user_template")?;
    refuse_template(request, "allowed_users_template")?;
    let mut warnings = Vec::new();
    let ignored: &[&str] = match key_type {
        RoleKeyType::Otp => &CA_ONLY,
        RoleKeyType::Ca => &OTP_ONLY,
    };
    for field in ignored
        .iter()
        .filter(|field| !(key_type == RoleKeyType::Otp && **field == "ttl"))
    {
        if request.is_set(field)? {
            warnings.push(format!(
                "field '{field}' does not apply to key_type={} roles; it was ignored",
                key_type.name()
            ));
        }
    }
    let settings = match key_type {
        RoleKeyType::Otp => RoleSettings::Otp(parse_otp(request, &default_user)?),
        RoleKeyType::Ca => RoleSettings::Ca(parse_ca(request)?),
    };
    if let RoleSettings::Otp(otp) = &settings
        && otp.cidr_list.is_empty()
    {
        warnings.push(
            "cidr_list is empty: this role gives OTPs only while config/zeroaddress lists it"
                .to_string(),
        );
    }
    let role = SshRole {
        name: name.to_string(),
        default_user,
        allowed_users,
        settings,
        created_unix: now_unix(),
    };
    Ok((role, warnings))
}

fn parse_cidrs(request: &Request, field: &str) -> Result<Vec<String>, ApiError> {
    let blocks = list(request, field)?;
    for block in &blocks {
        if Cidr::parse(block).is_none() {
            return Err(ApiError::bad_request(format!(
                "field '{field}': '{block}' is not a CIDR block such as 10.0.0.0/8 or fd00::/8"
            )));
        }
    }
    Ok(blocks)
}

fn parse_otp(request: &Request, default_user: &str) -> Result<OtpSettings, ApiError> {
    if default_user.trim().is_empty() {
        return Err(ApiError::bad_request(
            "missing required field 'default_user': an otp role needs the user its passwords are for",
        ));
    }
    // Its OTPs are for this Linux account; `creds` and the agent's PAM helper refuse others.
    validate_username(default_user)
        .map_err(|invalid| ApiError::bad_request(format!("field 'default_user': {invalid}")))?;
    // Optional, as in Vault: a role without blocks serves only while it is a zero-address role.
    let cidr_list = parse_cidrs(request, "cidr_list")?;
    let exclude_cidr_list = parse_cidrs(request, "exclude_cidr_list")?;
    let port = match request.int("port")? {
        None => 22,
        Some(port) => u16::try_from(port)
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!("field 'port': {port} is out of range (1-65535)"))
            })?,
    };
    Ok(OtpSettings {
        cidr_list,
        exclude_cidr_list,
        port,
        ttl_secs: seconds(request, "ttl")?,
    })
}

fn parse_ca(request: &Request) -> Result<CaSettings, ApiError> {
    refuse_template(request, "allowed_domains_template")?;
    refuse_template(request, "default_extensions_template")?;
    if request.bool("allow_empty_principals")? == Some(true) {
        return Err(ApiError::bad_request(
            "field 'allow_empty_principals': Rotor never signs certificates valid for every principal",
        ));
    }
    let key_id_format = request.string("key_id_format")?.unwrap_or_default();
    let mut rest = key_id_format.clone();
    for variable in KEY_ID_VARIABLES {
        rest = rest.replace(variable, "");
    }
    if rest.contains("{{") || rest.contains("}}") {
        return Err(ApiError::bad_request(format!(
            "field 'key_id_format': '{key_id_format}' uses an unknown variable; the known ones are {}",
            KEY_ID_VARIABLES.join(", ")
        )));
    }
    let allowed_user_key_lengths = match request.object("allowed_user_key_lengths")? {
        Some(map) => AllowedKeyLengths::parse(map).map_err(ApiError::bad_request)?,
        None => AllowedKeyLengths::default(),
    };
    let algorithm_signer =
        AlgorithmSigner::parse(&request.string("algorithm_signer")?.unwrap_or_default())?;
    let ttl_secs = seconds(request, "ttl")?;
    let max_ttl_secs = seconds(request, "max_ttl")?;
    if let (Some(ttl), Some(max)) = (ttl_secs, max_ttl_secs)
        && ttl > max
    {
        return Err(ApiError::bad_request(format!(
            "field 'ttl': {} is longer than max_ttl {}",
            format_duration(ttl),
            format_duration(max)
        )));
    }
    let not_before_duration_secs = request
        .duration("not_before_duration")?
        .map_or(DEFAULT_NOT_BEFORE_SECS, |duration| duration.as_secs());
    Ok(CaSettings {
        allowed_domains: list(request, "allowed_domains")?,
        allow_bare_domains: request.bool("allow_bare_domains")?.unwrap_or(false),
        allow_subdomains: request.bool("allow_subdomains")?.unwrap_or(false),
        allow_user_certificates: request.bool("allow_user_certificates")?.unwrap_or(false),
        allow_host_certificates: request.bool("allow_host_certificates")?.unwrap_or(false),
        allowed_critical_options: list(request, "allowed_critical_options")?,
        allowed_extensions: list(request, "allowed_extensions")?,
        default_critical_options: string_map(request, "default_critical_options")?
            .unwrap_or_default(),
        default_extensions: string_map(request, "default_extensions")?.unwrap_or_default(),
        allow_user_key_ids: request.bool("allow_user_key_ids")?.unwrap_or(false),
        key_id_format,
        allowed_user_key_lengths,
        algorithm_signer,
        ttl_secs,
        max_ttl_secs,
        not_before_duration_secs,
    })
}

/// Seconds as Vault prints role durations: `4h`, `1h30m`, `90s` → `1m30s`; 0 → "".
pub fn format_duration(total_secs: u64) -> String {
    if total_secs == 0 {
        return String::new();
    }
    let (hours, minutes, seconds) = (total_secs / 3600, (total_secs % 3600) / 60, total_secs % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// The role as `read roles/:name` shows it.
pub fn role_json(role: &SshRole) -> Map<String, Value> {
    let mut data = data_map! {
        "key_type" => role.key_type().name(),
        "default_user" => role.default_user,
        "allowed_users" => role.allowed_users.join(","),
    };
    match &role.settings {
        RoleSettings::Otp(otp) => data.extend(data_map! {
            "cidr_list" => otp.cidr_list.join(","),
            "exclude_cidr_list" => otp.exclude_cidr_list.join(","),
            "port" => otp.port,
            "ttl" => format_duration(otp.ttl_secs.unwrap_or(0)),
        }),
        RoleSettings::Ca(ca) => data.extend(data_map! {
            "default_user_template" => false,
            "allowed_users_template" => false,
            "allowed_domains" => ca.allowed_domains.join(","),
            "allowed_domains_template" => false,
            "allow_bare_domains" => ca.allow_bare_domains,
            "allow_subdomains" => ca.allow_subdomains,
            "allow_user_certificates" => ca.allow_user_certificates,
            "allow_host_certificates" => ca.allow_host_certificates,
            "allowed_critical_options" => ca.allowed_critical_options.join(","),
            "allowed_extensions" => ca.allowed_extensions.join(","),
            "default_critical_options" => ca.default_critical_options,
            "default_extensions" => ca.default_extensions,
            "default_extensions_template" => false,
            "allow_user_key_ids" => ca.allow_user_key_ids,
            "key_id_format" => ca.key_id_format,
            "allowed_user_key_lengths" => ca.allowed_user_key_lengths.to_json(),
            "algorithm_signer" => ca.algorithm_signer.name(),
            "ttl" => format_duration(ca.ttl_secs.unwrap_or(0)),
            "max_ttl" => format_duration(ca.max_ttl_secs.unwrap_or(0)),
            "not_before_duration" => ca.not_before_duration_secs,
        }),
    }
    data
}

fn role_key(mount: &str, name: &str) -> String {
    format!("{mount}{name}")
}

pub fn get_role(store: &Store, mount: &str, name: &str) -> StoreResult<Option<SshRole>> {
    store.get(Table::SshRoles, &role_key(mount, name))
}

pub fn put_role(store: &Store, mount: &str, role: &SshRole) -> StoreResult<()> {
    store.write(|tx| tx.put(Table::SshRoles, &role_key(mount, &role.name), role))
}

/// Removes a role; answers whether it existed.
pub fn delete_role(store: &Store, mount: &str, name: &str) -> StoreResult<bool> {
    store.write(|tx| tx.delete(Table::SshRoles, &role_key(mount, name)))
}

/// Every role of `mount`, in name order.
pub fn list_roles(store: &Store, mount: &str) -> StoreResult<Vec<SshRole>> {
    Ok(store
        .scan::<SshRole>(Table::SshRoles, mount)?
        .into_iter()
        .filter(|(key, _)| !key[mount.len()..].contains('/'))
        .map(|(_, role)| role)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks_parse_and_match() {
        let block = Cidr::parse("10.1.0.0/16").expect("v4");
        assert!(block.contains("10.1.200.3".parse().expect("ip")));
        assert!(!block.contains("10.2.0.1".parse().expect("ip")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        let v6 = Cidr::parse("fd00::/8").expect("v6");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!(!v6.contains("10.1.0.1".parse().expect("ip")));
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "fd00::/129"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn durations_print_as_vault_prints_them() {
        assert_eq!(format_duration(4 * 3600), "4h");
        assert_eq!(format_duration(768 * 3600), "768h");
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(90), "1m30s");
        assert_eq!(format_duration(0), "");
    }

    #[test]
    fn the_stored_layout_keeps_key_type_apart() {
        let role = SshRole {
            name: "dev".into(),
            default_user: "app1".into(),
            allowed_users: vec!["app1".into()],
            settings: RoleSettings::Otp(OtpSettings {
                cidr_list: vec!["10.0.0.0/8".into()],
                exclude_cidr_list: Vec::new(),
                port: 22,
                ttl_secs: None,
            }),
            created_unix: 1,
        };
        let json = serde_json::to_value(&role).expect("json");
        assert!(json["settings"]["otp"]["cidr_list"].is_array(), "{json}");
        let back: SshRole = serde_json::from_value(json).expect("back");
        assert_eq!(back, role);
        assert_eq!(back.key_type(), RoleKeyType::Otp);
        assert!(back.ca().is_none());
    }
}
