//! What a certificate request may get from a CA role: its type, principals, validity, key
//! id, critical options and extensions, decided as Vault's SSH engine decides them.
//!
//! Pure: no store, no clock (`now_unix` is an argument), no signing. Every refusal is a
//! [`Refusal`] whose text names the rule broken; the API answers it as a 400.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::KeyShape;
use super::roles::{CaSettings, SshRole, format_duration};

/// The key id a role without `key_id_format` gives.
pub const DEFAULT_KEY_ID_FORMAT: &str = "rotor-{{token_display_name}}-{{public_key_hash}}";

/// What `sign/:role` and `issue/:role` ask for, as sent.
#[derive(Debug, Clone, Default)]
pub struct CertificateRequest {
    pub cert_type: Option<String>,
    pub valid_principals: Option<Vec<String>>,
    pub ttl_secs: Option<u64>,
    pub key_id: Option<String>,
    pub critical_options: Option<BTreeMap<String, String>>,
    pub extensions: Option<BTreeMap<String, String>>,
}

/// The key being certified, as far as the rules care.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Hex SHA-256 of the public key's wire encoding (`{{public_key_hash}}`).
    pub public_key_hash: String,
    pub shape: KeyShape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    User,
    Host,
}

impl CertKind {
    pub fn name(self) -> &'static str {
        match self {
            CertKind::User => "user",
            CertKind::Host => "host",
        }
    }
}

/// A certificate the role allows, ready to be built and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePlan {
    pub kind: CertKind,
    pub principals: Vec<String>,
    pub key_id: String,
    pub valid_after: u64,
    pub valid_before: u64,
    pub ttl_secs: u64,
    pub critical_options: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "role '{role}' is an otp role: it gives one-time passwords (creds/{role}), not certificates; use a role with key_type=ca"
    )]
    NotACaRole { role: String },
    #[error("field 'cert_type': '{0}' is not a certificate type; use user or host")]
    UnknownCertType(String),
    #[error("{kind} certificate not allowed: role '{role}' has allow_{kind}_certificates=false")]
    CertTypeNotAllowed { role: String, kind: &'static str },
    #[error(
        "no principals: the request names no valid_principals and role '{role}' has no default_user; Rotor never signs a certificate valid for every principal"
    )]
    NoPrincipals { role: String },
    #[error("principal not allowed: role '{role}' allows no {kind} principals ({field} is empty)")]
    RoleAllowsNoPrincipals {
        role: String,
        kind: &'static str,
        field: &'static str,
    },
    #[error(
        "principal not allowed: '{principal}' is not in role '{role}''s allowed_users ({allowed})"
    )]
    UserPrincipalNotAllowed {
        principal: String,
        role: String,
        allowed: String,
    },
    #[error(
        "principal not allowed: host name '{principal}' does not match role '{role}''s allowed_domains ({allowed}) with allow_bare_domains={bare} and allow_subdomains={subdomains}"
    )]
    HostPrincipalNotAllowed {
        principal: String,
        role: String,
        allowed: String,
        bare: bool,
        subdomains: bool,
    },
    #[error("TTL over max: ttl {requested} is longer than role '{role}''s max_ttl {max}")]
    TtlOverMax {
        requested: String,
        max: String,
        role: String,
    },
    #[error(
        "key_id not allowed: role '{role}' does not let requests choose the key id (allow_user_key_ids=false)"
    )]
    KeyIdNotAllowed { role: String },
    #[error(
        "critical option not allowed: {options} not in role '{role}''s allowed_critical_options ({allowed})"
    )]
    CriticalOptionsNotAllowed {
        options: String,
        role: String,
        allowed: String,
    },
    #[error(
        "extension not allowed: {extensions} not in role '{role}''s allowed_extensions ({allowed})"
    )]
    ExtensionsNotAllowed {
        extensions: String,
        role: String,
        allowed: String,
    },
    #[error(
        "host certificates carry no critical options or extensions in OpenSSH; remove {0} from the request"
    )]
    HostCertificateOptions(String),
    #[error("{0}")]
    KeyNotAllowed(String),
    #[error(
        "algorithm_signer {signer} of role '{role}' needs an RSA CA key; this CA's key is {ca_algorithm}: set algorithm_signer=default"
    )]
    AlgorithmSignerMismatch {
        signer: &'static str,
        role: String,
        ca_algorithm: String,
    },
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "empty".to_string()
    } else {
        items.join(",")
    }
}

/// Decides the certificate `request` gets from `role` for `subject` at `now_unix`.
pub fn plan(
    role: &SshRole,
    request: &CertificateRequest,
    subject: &Subject,
    token_display_name: &str,
    now_unix: u64,
) -> Result<CertificatePlan, Refusal> {
    let ca = role.ca().ok_or_else(|| Refusal::NotACaRole {
        role: role.name.clone(),
    })?;
    let kind = match request.cert_type.as_deref().map(str::trim) {
        None | Some("") | Some("user") => CertKind::User,
        Some("host") => CertKind::Host,
        Some(other) => return Err(Refusal::UnknownCertType(other.to_string())),
    };
    let allowed = match kind {
        CertKind::User => ca.allow_user_certificates,
        CertKind::Host => ca.allow_host_certificates,
    };
    if !allowed {
        return Err(Refusal::CertTypeNotAllowed {
            role: role.name.clone(),
            kind: kind.name(),
        });
    }
    ca.allowed_user_key_lengths
        .check(subject.shape)
        .map_err(Refusal::KeyNotAllowed)?;
    let principals = principals(role, ca, kind, request)?;
    let ttl_secs = ttl(role, ca, request)?;
    let key_id = key_id(role, ca, request, subject, token_display_name)?;
    let (critical_options, extensions) = options(role, ca, kind, request)?;
    Ok(CertificatePlan {
        kind,
        principals,
        key_id,
        valid_after: now_unix.saturating_sub(ca.not_before_duration_secs),
        valid_before: now_unix.saturating_add(ttl_secs),
        ttl_secs,
        critical_options,
        extensions,
    })
}

fn principals(
    role: &SshRole,
    ca: &CaSettings,
    kind: CertKind,
    request: &CertificateRequest,
) -> Result<Vec<String>, Refusal> {
    let requested: Vec<String> = match &request.valid_principals {
        Some(list) => list.clone(),
        None if kind == CertKind::User && !role.default_user.is_empty() => {
            vec![role.default_user.clone()]
        }
        None => Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let requested: Vec<String> = requested
        .into_iter()
        .map(|principal| principal.trim().to_string())
        .filter(|principal| !principal.is_empty() && seen.insert(principal.clone()))
        .collect();
    if requested.is_empty() {
        return Err(Refusal::NoPrincipals {
            role: role.name.clone(),
        });
    }
    let (allowed, field) = match kind {
        CertKind::User => (&role.allowed_users, "allowed_users"),
        CertKind::Host => (&ca.allowed_domains, "allowed_domains"),
    };
    if allowed.is_empty() {
        return Err(Refusal::RoleAllowsNoPrincipals {
            role: role.name.clone(),
            kind: kind.name(),
            field,
        });
    }
    if allowed.iter().any(|entry| entry == "*") {
        return Ok(requested);
    }
    for principal in &requested {
        let ok = match kind {
            // The role's own default_user is allowed with it, as in Vault.
            CertKind::User => {
                allowed.contains(principal)
                    || (!role.default_user.is_empty() && *principal == role.default_user)
            }
            CertKind::Host => allowed.iter().any(|domain| {
                (ca.allow_bare_domains && principal == domain)
                    || (ca.allow_subdomains && principal.ends_with(&format!(".{domain}")))
            }),
        };
        if !ok {
            return Err(match kind {
                CertKind::User => Refusal::UserPrincipalNotAllowed {
                    principal: principal.clone(),
                    role: role.name.clone(),
                    allowed: listed(allowed),
                },
                CertKind::Host => Refusal::HostPrincipalNotAllowed {
                    principal: principal.clone(),
                    role: role.name.clone(),
                    allowed: listed(allowed),
                    bare: ca.allow_bare_domains,
                    subdomains: ca.allow_subdomains,
                },
            });
        }
    }
    Ok(requested)
}

fn ttl(role: &SshRole, ca: &CaSettings, request: &CertificateRequest) -> Result<u64, Refusal> {
    let max = ca.effective_max_ttl_secs();
    match request.ttl_secs.filter(|secs| *secs > 0) {
        None => Ok(ca.effective_default_ttl_secs()),
        Some(requested) if requested > max => Err(Refusal::TtlOverMax {
            requested: format_duration(requested),
            max: format_duration(max),
            role: role.name.clone(),
        }),
        Some(requested) => Ok(requested),
    }
}

fn key_id(
    role: &SshRole,
    ca: &CaSettings,
    request: &CertificateRequest,
    subject: &Subject,
    token_display_name: &str,
) -> Result<String, Refusal> {
    if let Some(requested) = request.key_id.as_deref().filter(|id| !id.is_empty()) {
        if !ca.allow_user_key_ids {
            return Err(Refusal::KeyIdNotAllowed {
                role: role.name.clone(),
            });
        }
        return Ok(requested.to_string());
    }
    let format = if ca.key_id_format.is_empty() {
        DEFAULT_KEY_ID_FORMAT
    } else {
        &ca.key_id_format
    };
    Ok(format
        .replace("{{token_display_name}}", token_display_name)
        .replace("{{role_name}}", &role.name)
        .replace("{{public_key_hash}}", &subject.public_key_hash))
}

type Options = BTreeMap<String, String>;

fn options(
    role: &SshRole,
    ca: &CaSettings,
    kind: CertKind,
    request: &CertificateRequest,
) -> Result<(Options, Options), Refusal> {
    let requested_options = request.critical_options.clone().unwrap_or_default();
    let requested_extensions = request.extensions.clone().unwrap_or_default();
    if kind == CertKind::Host {
        let mut named: Vec<&str> = requested_options.keys().map(String::as_str).collect();
        named.extend(requested_extensions.keys().map(String::as_str));
        if !named.is_empty() {
            return Err(Refusal::HostCertificateOptions(named.join(", ")));
        }
        // The role's defaults are meant for user certificates (permit-pty, …).
        return Ok((Options::new(), Options::new()));
    }

    let critical_options = if requested_options.is_empty() {
        ca.default_critical_options.clone()
    } else {
        // An empty allowed_critical_options allows any, as the reference says.
        if !ca.allowed_critical_options.is_empty() {
            let refused: Vec<&str> = requested_options
                .keys()
                .filter(|name| !ca.allowed_critical_options.contains(name))
                .map(String::as_str)
                .collect();
            if !refused.is_empty() {
                return Err(Refusal::CriticalOptionsNotAllowed {
                    options: refused.join(", "),
                    role: role.name.clone(),
                    allowed: listed(&ca.allowed_critical_options),
                });
            }
        }
        requested_options
    };

    let extensions = if requested_extensions.is_empty() {
        ca.default_extensions.clone()
    } else {
        // An empty allowed_extensions allows none; `*` allows any.
        if !ca.allowed_extensions.iter().any(|entry| entry == "*") {
            let refused: Vec<&str> = requested_extensions
                .keys()
                .filter(|name| !ca.allowed_extensions.contains(name))
                .map(String::as_str)
                .collect();
            if !refused.is_empty() {
                return Err(Refusal::ExtensionsNotAllowed {
                    extensions: refused.join(", "),
                    role: role.name.clone(),
                    allowed: listed(&ca.allowed_extensions),
                });
            }
        }
        requested_extensions
    };
    Ok((critical_options, extensions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::ssh::keys::{AllowedKeyLengths, KeySpec};
    use crate::engines::ssh::roles::{
        AlgorithmSigner, DEFAULT_NOT_BEFORE_SECS, RoleSettings, SYSTEM_MAX_TTL_SECS,
    };

    fn role() -> SshRole {
        SshRole {
            name: "dev".into(),
            default_user: "app1".into(),
            allowed_users: vec!["app1".into(), "app2".into()],
            settings: RoleSettings::Ca(CaSettings {
                allowed_domains: vec!["example.com".into()],
                allow_bare_domains: false,
                allow_subdomains: true,
                allow_user_certificates: true,
                allow_host_certificates: true,
                allowed_critical_options: Vec::new(),
                allowed_extensions: vec!["permit-pty".into()],
                default_critical_options: Options::new(),
                default_extensions: [("permit-agent-forwarding".to_string(), String::new())].into(),
                allow_user_key_ids: false,
                key_id_format: String::new(),
                allowed_user_key_lengths: AllowedKeyLengths::default(),
                algorithm_signer: AlgorithmSigner::Default,
                ttl_secs: Some(3600),
                max_ttl_secs: Some(4 * 3600),
                not_before_duration_secs: DEFAULT_NOT_BEFORE_SECS,
            }),
            created_unix: 0,
        }
    }

    fn subject() -> Subject {
        Subject {
            public_key_hash: "ab12".into(),
            shape: KeySpec::Ed25519.shape(),
        }
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn defaults_come_from_the_role() {
        let plan = plan(
            &role(),
            &CertificateRequest::default(),
            &subject(),
            "root",
            NOW,
        )
        .expect("plan");
        assert_eq!(plan.kind, CertKind::User);
        assert_eq!(plan.principals, vec!["app1"]);
        assert_eq!(plan.key_id, "rotor-root-ab12");
        assert_eq!(plan.valid_after, NOW - 30);
        assert_eq!(plan.valid_before, NOW + 3600);
        assert!(plan.extensions.contains_key("permit-agent-forwarding"));
    }

    #[test]
    fn the_default_user_is_allowed_with_the_allowed_users() {
        let mut role = role();
        role.default_user = "deploy".into();
        let request = |name: &str| CertificateRequest {
            valid_principals: Some(vec![name.into()]),
            ..CertificateRequest::default()
        };
        let plan = plan(&role, &request("deploy"), &subject(), "root", NOW).expect("default");
        assert_eq!(plan.principals, vec!["deploy"]);
        assert!(plan_of(&role, &request("app2")).is_ok());
        let error = plan_of(&role, &request("root")).expect_err("root");
        assert!(
            error
                .to_string()
                .contains("'root' is not in role 'dev''s allowed_users"),
            "{error}"
        );
        // Without allowed_users the default alone allows nothing.
        role.allowed_users.clear();
        let error = plan_of(&role, &CertificateRequest::default()).expect_err("none");
        assert!(
            error.to_string().contains("allowed_users is empty"),
            "{error}"
        );
    }

    fn plan_of(role: &SshRole, request: &CertificateRequest) -> Result<CertificatePlan, Refusal> {
        plan(role, request, &subject(), "root", NOW)
    }

    #[test]
    fn a_role_without_ttls_falls_back_to_the_system_maximum() {
        let mut role = role();
        if let RoleSettings::Ca(ca) = &mut role.settings {
            ca.ttl_secs = None;
            ca.max_ttl_secs = None;
        }
        let plan = plan(
            &role,
            &CertificateRequest::default(),
            &subject(),
            "root",
            NOW,
        )
        .expect("plan");
        assert_eq!(plan.ttl_secs, SYSTEM_MAX_TTL_SECS);
    }

    #[test]
    fn key_id_format_substitutes_its_variables() {
        let mut role = role();
        if let RoleSettings::Ca(ca) = &mut role.settings {
            ca.key_id_format = "{{role_name}}:{{token_display_name}}:{{public_key_hash}}".into();
        }
        let plan = plan(
            &role,
            &CertificateRequest::default(),
            &subject(),
            "tok",
            NOW,
        )
        .expect("plan");
        assert_eq!(plan.key_id, "dev:tok:ab12");
    }

    #[test]
    fn host_names_follow_bare_and_subdomain_rules() {
        let request = |name: &str| CertificateRequest {
            cert_type: Some("host".into()),
            valid_principals: Some(vec![name.into()]),
            ..CertificateRequest::default()
        };
        assert!(plan(&role(), &request("web.example.com"), &subject(), "r", NOW).is_ok());
        let error =
            plan(&role(), &request("example.com"), &subject(), "r", NOW).expect_err("bare domain");
        assert!(
            error.to_string().contains("allow_bare_domains=false"),
            "{error}"
        );
        assert!(plan(&role(), &request("evil-example.com"), &subject(), "r", NOW).is_err());
        let plan = plan(&role(), &request("a.example.com"), &subject(), "r", NOW).expect("ok");
        assert!(
            plan.extensions.is_empty(),
            "user defaults must not reach host certificates"
        );
    }
}
