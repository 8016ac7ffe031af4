//! The ssh engine's path table: `config/ca`, `public_key` (unauthenticated, plain text),
//! `roles`, `roles/:name`, `sign/:role` and `issue/:role`, as the reference lays them out.
//!
//! Owns reading requests into the engine's types and rendering answers. Decisions live in
//! `policy.rs`, key handling in `keys.rs` and `ca.rs`, signing in `sign.rs`. Never returns
//! or logs the CA's private key.

use std::sync::LazyLock;

use russh::keys::ssh_key::PublicKey;
use serde_json::Value;

use super::ca::{self, CaKey};
use super::keys::{self, KeySpec};
use super::otp;
use super::policy::{self, CertificatePlan, CertificateRequest, Refusal};
use super::roles::{self, SshRole, string_map};
use super::sign::{self, Signed};
use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::tokens::now_unix;

const CA_FIELDS: &[Field] = &[
    Field::new(
        "generate_signing_key",
        FieldKind::Bool,
        "generate the CA key pair here (default true unless private_key and public_key are given)",
    ),
    Field::new(
        "key_type",
        FieldKind::String,
        "generated key: ssh-rsa (default), ecdsa-sha2-nistp256/384/521, ssh-ed25519, or rsa, ec, ed25519",
    ),
    Field::new(
        "key_bits",
        FieldKind::Int,
        "generated key size: RSA 2048/3072/4096 (default 4096), EC 256/384/521 (default 256)",
    ),
    Field::new(
        "private_key",
        FieldKind::String,
        "imported CA private key (OpenSSH or PEM); sealed, never returned",
    )
    .sensitive(),
    Field::new(
        "public_key",
        FieldKind::String,
        "imported CA public key, OpenSSH format",
    ),
];

const ROLE_FIELDS: &[Field] = &[
    Field::new(
        "key_type",
        FieldKind::String,
        "ca (certificates) or otp (one-time passwords)",
    )
    .required(),
    Field::new(
        "default_user",
        FieldKind::String,
        "ca: the principal when a request names none; otp: the user when creds names none",
    ),
    Field::new(
        "default_user_template",
        FieldKind::Bool,
        "identity templates in default_user (not supported: must be false)",
    ),
    Field::new(
        "allowed_users",
        FieldKind::StringList,
        "users a certificate or OTP may be for; * for any (ca: empty allows none)",
    ),
    Field::new(
        "allowed_users_template",
        FieldKind::Bool,
        "identity templates in allowed_users (not supported: must be false)",
    ),
    Field::new(
        "cidr_list",
        FieldKind::StringList,
        "otp: CIDR blocks of the hosts the role serves (none: only as a zero-address role)",
    ),
    Field::new(
        "exclude_cidr_list",
        FieldKind::StringList,
        "otp: CIDR blocks taken out of cidr_list",
    ),
    Field::new(
        "port",
        FieldKind::Int,
        "otp: SSH port told to clients (default 22)",
    ),
    Field::new(
        "allowed_domains",
        FieldKind::StringList,
        "ca: domains host certificates may name; * for any",
    ),
    Field::new(
        "allowed_domains_template",
        FieldKind::Bool,
        "identity templates in allowed_domains (not supported: must be false)",
    ),
    Field::new(
        "allow_bare_domains",
        FieldKind::Bool,
        "ca: host certificates may name a domain of allowed_domains itself",
    ),
    Field::new(
        "allow_subdomains",
        FieldKind::Bool,
        "ca: host certificates may name subdomains of allowed_domains",
    ),
    Field::new(
        "allow_user_certificates",
        FieldKind::Bool,
        "ca: user certificates may be signed",
    ),
    Field::new(
        "allow_host_certificates",
        FieldKind::Bool,
        "ca: host certificates may be signed",
    ),
    Field::new(
        "allowed_critical_options",
        FieldKind::StringList,
        "ca: critical options a request may set; empty allows any",
    ),
    Field::new(
        "allowed_extensions",
        FieldKind::StringList,
        "ca: extensions a request may set; * for any, empty for none",
    ),
    Field::new(
        "default_critical_options",
        FieldKind::Map,
        "ca: critical options of a request that sets none",
    ),
    Field::new(
        "default_extensions",
        FieldKind::Map,
        "ca: extensions of a request that sets none",
    ),
    Field::new(
        "default_extensions_template",
        FieldKind::Bool,
        "identity templates in default_extensions (not supported: must be false)",
    ),
    Field::new(
        "allow_user_key_ids",
        FieldKind::Bool,
        "ca: requests may choose the key id",
    ),
    Field::new(
        "key_id_format",
        FieldKind::String,
        "ca: key id with {{token_display_name}}, {{role_name}}, {{public_key_hash}}",
    ),
    Field::new(
        "allowed_user_key_lengths",
        FieldKind::Map,
        "ca: key type → allowed sizes, e.g. {\"rsa\": [3072, 4096], \"ed25519\": 0}",
    ),
    Field::new(
        "algorithm_signer",
        FieldKind::String,
        "ca: default, rsa-sha2-256, rsa-sha2-512 or ssh-rsa (RSA CA keys only)",
    ),
    Field::new(
        "ttl",
        FieldKind::Duration,
        "ca: certificate life when a request names none; otp: life of an OTP and its lease (default 10m)",
    ),
    Field::new(
        "max_ttl",
        FieldKind::Duration,
        "ca: longest certificate life",
    ),
    Field::new(
        "not_before_duration",
        FieldKind::Duration,
        "ca: how far valid_after is backdated (default 30s)",
    ),
    Field::new(
        "allow_empty_principals",
        FieldKind::Bool,
        "certificates for every principal (never offered: must be false)",
    ),
];

const CERTIFICATE_OPTION_FIELDS: [Field; 6] = [
    Field::new(
        "ttl",
        FieldKind::Duration,
        "certificate life, at most the role's max_ttl",
    ),
    Field::new(
        "valid_principals",
        FieldKind::StringList,
        "users (user certificates) or host names (host certificates)",
    ),
    Field::new("cert_type", FieldKind::String, "user (default) or host"),
    Field::new(
        "key_id",
        FieldKind::String,
        "key id, when the role has allow_user_key_ids",
    ),
    Field::new(
        "critical_options",
        FieldKind::Map,
        "critical options (user certificates)",
    ),
    Field::new(
        "extensions",
        FieldKind::Map,
        "extensions (user certificates)",
    ),
];

const SIGN_FIELDS: &[Field] = &[
    Field::new(
        "public_key",
        FieldKind::String,
        "the SSH public key to sign, OpenSSH format",
    )
    .required(),
    CERTIFICATE_OPTION_FIELDS[0],
    CERTIFICATE_OPTION_FIELDS[1],
    CERTIFICATE_OPTION_FIELDS[2],
    CERTIFICATE_OPTION_FIELDS[3],
    CERTIFICATE_OPTION_FIELDS[4],
    CERTIFICATE_OPTION_FIELDS[5],
];

const ISSUE_FIELDS: &[Field] = &[
    Field::new(
        "key_type",
        FieldKind::String,
        "key to generate: rsa (default), ec or ed25519",
    ),
    Field::new(
        "key_bits",
        FieldKind::Int,
        "RSA 2048 (default)/3072/4096, EC 256 (default)/384/521",
    ),
    CERTIFICATE_OPTION_FIELDS[0],
    CERTIFICATE_OPTION_FIELDS[1],
    CERTIFICATE_OPTION_FIELDS[2],
    CERTIFICATE_OPTION_FIELDS[3],
    CERTIFICATE_OPTION_FIELDS[4],
    CERTIFICATE_OPTION_FIELDS[5],
];

const CREDS_FIELDS: &[Field] = &[
    Field::new(
        "ip",
        FieldKind::String,
        "address of the host the OTP is for",
    )
    .required(),
    Field::new(
        "username",
        FieldKind::String,
        "account on the host (default: the role's default_user)",
    ),
];

const IP_FIELDS: &[Field] = &[Field::new("ip", FieldKind::String, "a host address").required()];

const VERIFY_FIELDS: &[Field] =
    &[Field::new("otp", FieldKind::String, "the one-time password to check").sensitive()];

const ZEROADDRESS_FIELDS: &[Field] = &[Field::new(
    "roles",
    FieldKind::StringList,
    "otp roles that may give OTPs for any address",
)];

const BINDING_FIELDS: &[Field] = &[Field::new(
    "agent",
    FieldKind::String,
    "id of the agent whose PAM helper serves this address",
)];

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    vec![
        PathSpec::new(
            "config/ca",
            "The CA key that signs certificates: generate or import, read (public key), delete.",
            "A write generates the mount's CA key pair (generate_signing_key, key_type, \
             key_bits) or imports one (private_key and public_key); it refuses to replace an \
             existing key: delete it first, knowing every host and client trusting it must be \
             updated. A read answers the public key. The private key is sealed in the store \
             and never returned or logged.",
            CA_FIELDS,
            vec![
                (Operation::Read, read_ca as fn(_, _) -> _),
                (Operation::Write, write_ca),
                (Operation::Delete, delete_ca),
            ],
        ),
        PathSpec::new(
            "public_key",
            "The CA's public key as plain text, for TrustedUserCAKeys and known_hosts.",
            "Served without a token, as text/plain, so hosts can fetch it with curl at \
             provisioning.",
            &[],
            vec![(Operation::Read, read_public_key)],
        )
        .unauthenticated(),
        PathSpec::new(
            "roles",
            "Lists roles with their key_type.",
            "Every role's name, with its key_type in key_info.",
            &[],
            vec![(Operation::List, list_roles)],
        ),
        PathSpec::new(
            "roles/{role}",
            "Creates (replaces), reads or deletes a role (key_type ca or otp).",
            "A role says what the mount may give: for key_type=ca, which certificates sign and \
             issue may make (users, domains, extensions, TTLs, key sizes); for key_type=otp, \
             which hosts (cidr_list) and users creds gives one-time passwords for. A write \
             replaces the whole role: fields not given take their defaults, and fields of the \
             other key type are ignored with a warning.",
            ROLE_FIELDS,
            vec![
                (Operation::Read, read_role),
                (Operation::Write, write_role),
                (Operation::Delete, delete_role),
            ],
        ),
        PathSpec::new(
            "sign/{role}",
            "Signs an SSH public key with the CA, within the role's limits.",
            "Answers the signed certificate and its serial. Every request is checked against \
             the role (certificate type, principals, TTL, extensions, critical options, key \
             type and size); a refusal is a 400 naming the rule. A certificate always names \
             its principals.",
            SIGN_FIELDS,
            vec![(Operation::Write, sign_key)],
        ),
        PathSpec::new(
            "issue/{role}",
            "Generates a key pair and signs it, within the role's limits.",
            "As sign, but the key pair is generated here and its private key answered with the \
             certificate (once; Rotor keeps no copy).",
            ISSUE_FIELDS,
            vec![(Operation::Write, issue_key)],
        ),
        PathSpec::new(
            "creds/{role}",
            "A one-time password for a host address and user, under a lease (otp roles).",
            "The address must be in the role's cidr_list (and not its exclude_cidr_list) and \
             the user allowed by the role. The OTP is stored only as a hash; the host's agent \
             consumes it at the first login attempt. Revoking its lease destroys it.",
            CREDS_FIELDS,
            vec![(Operation::Write, otp::creds)],
        ),
        PathSpec::new(
            "lookup",
            "The otp roles that cover an address.",
            "The names of the otp roles whose CIDR blocks (or the zero-address list) include \
             the address.",
            IP_FIELDS,
            vec![(Operation::Write, otp::lookup)],
        ),
        PathSpec::new(
            "verify",
            "Verifies and consumes an OTP (unauthenticated, as in the reference).",
            "A valid OTP is consumed and answers its username, address and role; an unknown or \
             used one is a 400. Served without a token, as the reference's helper calls it.",
            VERIFY_FIELDS,
            vec![(Operation::Write, otp::verify)],
        )
        .unauthenticated(),
        PathSpec::new(
            "config/zeroaddress",
            "Otp roles that give OTPs for any address: read, write roles, delete.",
            "The roles listed here give OTPs for any address, whatever their cidr_list.",
            ZEROADDRESS_FIELDS,
            vec![
                (Operation::Read, otp::read_zeroaddress as fn(_, _) -> _),
                (Operation::Write, otp::write_zeroaddress),
                (Operation::Delete, otp::delete_zeroaddress),
            ],
        ),
        PathSpec::new(
            "config/otp_bindings/{ip}",
            "Which agent's PAM helper may consume OTPs for an address (learned at first use, or set here).",
            "An address is bound to the first agent that verifies an OTP for it; from then on \
             only that agent may consume OTPs for the address. Write to bind it ahead of use or \
             move it, delete to forget the binding.",
            BINDING_FIELDS,
            vec![
                (Operation::Read, otp::read_binding as fn(_, _) -> _),
                (Operation::Write, otp::write_binding),
                (Operation::Delete, otp::delete_binding),
            ],
        ),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

fn no_ca(mount: &str) -> ApiError {
    ApiError::bad_request(format!(
        "no CA key is configured at {mount}: write {mount}config/ca first (generate_signing_key=true, or private_key and public_key)"
    ))
}

fn refused(refusal: Refusal) -> ApiError {
    ApiError::bad_request(refusal.to_string())
}

fn read_ca(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let public_key =
            ca::public_key(&state.store, &request.mount)?.ok_or_else(|| no_ca(&request.mount))?;
        Ok(ApiResponse::data(data_map! {
            "public_key" => format!("{public_key}\n"),
        }))
    })
}

fn write_ca(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let private_key = request
            .string("private_key")?
            .filter(|text| !text.trim().is_empty());
        let public_key = request
            .string("public_key")?
            .filter(|text| !text.trim().is_empty());
        let generate = request.bool("generate_signing_key")?;
        match (private_key, public_key) {
            (None, None) => {
                if generate == Some(false) {
                    return Err(ApiError::bad_request(
                        "missing required fields 'private_key' and 'public_key': with generate_signing_key=false the CA key pair must be imported",
                    ));
                }
                let key_type = request
                    .string("key_type")?
                    .unwrap_or_else(|| "ssh-rsa".to_string());
                let spec = KeySpec::parse(&key_type, request.int("key_bits")?, 4096)
                    .map_err(ApiError::bad_request)?;
                if ca::public_key(&state.store, &request.mount)?.is_some() {
                    return Err(ApiError::bad_request(format!(
                        "a CA key is already configured at {0}; delete {0}config/ca first (hosts and users that trust the old key must then be given the new one)",
                        request.mount
                    )));
                }
                let key = tokio::task::spawn_blocking(move || keys::generate(spec))
                    .await
                    .map_err(|_| ApiError::internal("the key generation task failed"))?
                    .map_err(ApiError::internal)?;
                let public_key = ca::install(&state.store, &request.mount, &key)?;
                tracing::info!(mount = %request.mount, algorithm = %key.algorithm().as_str(), "generated the SSH CA key");
                Ok(ApiResponse::data(data_map! {
                    "public_key" => format!("{public_key}\n"),
                }))
            }
            (Some(private_key), Some(public_key)) => {
                if generate == Some(true) {
                    return Err(ApiError::bad_request(
                        "private_key and public_key must not be given with generate_signing_key=true: either import a key pair or generate one",
                    ));
                }
                let key = keys::parse_private_key(&private_key).map_err(ApiError::bad_request)?;
                let public = keys::parse_public_key("public_key", &public_key)
                    .map_err(ApiError::bad_request)?;
                if public.key_data() != key.public_key().key_data() {
                    return Err(ApiError::bad_request(
                        "field 'public_key': it is not the public half of private_key",
                    ));
                }
                if let keys::KeyShape {
                    family: keys::KeyFamily::Rsa,
                    bits,
                } = keys::KeyShape::of(public.key_data())
                    && bits < 2048
                {
                    return Err(ApiError::bad_request(format!(
                        "field 'private_key': an RSA CA key of {bits} bits is too short; use at least 2048"
                    )));
                }
                ca::install(&state.store, &request.mount, &key)?;
                tracing::info!(mount = %request.mount, algorithm = %key.algorithm().as_str(), "imported the SSH CA key");
                Ok(ApiResponse::empty())
            }
            (Some(_), None) => Err(ApiError::bad_request(
                "missing required field 'public_key': an imported private_key needs its public key",
            )),
            (None, Some(_)) => Err(ApiError::bad_request(
                "missing required field 'private_key': an imported public_key needs its private key",
            )),
        }
    })
}

fn delete_ca(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        if ca::delete(&state.store, &request.mount)? {
            tracing::info!(mount = %request.mount, "deleted the SSH CA key");
        }
        Ok(ApiResponse::empty())
    })
}

fn read_public_key(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let public_key = ca::public_key(&state.store, &request.mount)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "no CA key is configured at {0}: write {0}config/ca first",
                request.mount
            ))
        })?;
        Ok(ApiResponse::raw_text(format!("{public_key}\n")))
    })
}

fn list_roles(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let roles = roles::list_roles(&state.store, &request.mount)?;
        let mut key_info = serde_json::Map::new();
        for role in &roles {
            key_info.insert(
                role.name.clone(),
                serde_json::json!({ "key_type": role.key_type().name() }),
            );
        }
        let mut response = ApiResponse::keys(roles.iter().map(|role| role.name.clone()).collect());
        if let Some(data) = response.data.as_mut() {
            data.insert("key_info".into(), Value::Object(key_info));
        }
        Ok(response)
    })
}

fn read_role(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("role");
        let role = roles::get_role(&state.store, &request.mount, name)?.ok_or_else(|| {
            ApiError::not_found(format!("role '{name}' does not exist at {}", request.mount))
        })?;
        Ok(ApiResponse::data(roles::role_json(&role)))
    })
}

fn write_role(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("role").to_string();
        let (role, warnings) = roles::parse_role(&name, &request)?;
        roles::put_role(&state.store, &request.mount, &role)?;
        let mut response = ApiResponse::empty();
        for warning in warnings {
            response = response.with_warning(warning);
        }
        Ok(response)
    })
}

fn delete_role(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        roles::delete_role(&state.store, &request.mount, request.param("role"))?;
        Ok(ApiResponse::empty())
    })
}

/// `{{token_display_name}}`: the token's display name as Vault gives it (`root`, `token`,
/// `token-<name>`).
fn token_display_name(request: &Request) -> String {
    match &request.token {
        Some(token) if !token.record.display_name.is_empty() => token.record.display_name.clone(),
        Some(token) => token.accessor.clone(),
        None => "anonymous".into(),
    }
}

fn certificate_request(request: &Request) -> Result<CertificateRequest, ApiError> {
    Ok(CertificateRequest {
        cert_type: request.string("cert_type")?,
        valid_principals: request.string_list("valid_principals")?,
        ttl_secs: request.duration("ttl")?.map(|duration| duration.as_secs()),
        key_id: request.string("key_id")?,
        critical_options: string_map(request, "critical_options")?,
        extensions: string_map(request, "extensions")?,
    })
}

/// The role (which must be a CA role) and the CA key a signing request needs.
fn signing_context(state: &AppState, request: &Request) -> Result<(SshRole, CaKey), ApiError> {
    let name = request.param("role");
    let role = roles::get_role(&state.store, &request.mount, name)?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "role '{name}' does not exist at {}; create it with {}roles/{name}",
            request.mount, request.mount
        ))
    })?;
    if role.ca().is_none() {
        return Err(refused(Refusal::NotACaRole {
            role: role.name.clone(),
        }));
    }
    let ca = ca::load(&state.store, &request.mount)?.ok_or_else(|| no_ca(&request.mount))?;
    Ok((role, ca))
}

/// Decides and signs the certificate for `subject`.
async fn certify(
    request: &Request,
    role: &SshRole,
    ca: CaKey,
    subject: PublicKey,
) -> Result<(Signed, CertificatePlan), ApiError> {
    let certificate_request = certificate_request(request)?;
    let plan = policy::plan(
        role,
        &certificate_request,
        &sign::subject_of(&subject),
        &token_display_name(request),
        now_unix(),
    )
    .map_err(refused)?;
    let signer = role
        .ca()
        .map(|settings| settings.algorithm_signer)
        .unwrap_or(roles::AlgorithmSigner::Default);
    let choice = sign::signature_choice(&ca, signer, &role.name).map_err(refused)?;
    let planned = plan.clone();
    let signed = tokio::task::spawn_blocking(move || {
        sign::sign_certificate(&ca, choice, &subject, &planned)
    })
    .await
    .map_err(|_| ApiError::internal("the signing task failed"))?
    .map_err(|error| ApiError::internal(format!("signing failed: {error}")))?;
    tracing::info!(
        mount = %request.mount,
        role = %role.name,
        serial = %format!("{:x}", signed.serial),
        key_id = %plan.key_id,
        cert_type = plan.kind.name(),
        principals = %plan.principals.join(","),
        valid_before = plan.valid_before,
        "signed an SSH certificate"
    );
    Ok((signed, plan))
}

fn signed_response(signed: &Signed, plan: &CertificatePlan) -> ApiResponse {
    let mut response = ApiResponse::data(data_map! {
        // Hex without leading zeros, as Vault prints it.
        "serial_number" => format!("{:x}", signed.serial),
        "signed_key" => signed.signed_key,
    });
    response.lease_duration = plan.ttl_secs;
    response
}

fn sign_key(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let (role, ca) = signing_context(&state, &request)?;
        let subject = keys::parse_public_key("public_key", &request.required_string("public_key")?)
            .map_err(ApiError::bad_request)?;
        let (signed, plan) = certify(&request, &role, ca, subject).await?;
        Ok(signed_response(&signed, &plan))
    })
}

fn issue_key(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let (role, ca) = signing_context(&state, &request)?;
        let key_type = request
            .string("key_type")?
            .unwrap_or_else(|| "rsa".to_string());
        let spec = KeySpec::parse(&key_type, request.int("key_bits")?, 2048)
            .map_err(ApiError::bad_request)?;
        // Refuse before spending time on a key the role would not sign.
        if let Some(settings) = role.ca() {
            settings
                .allowed_user_key_lengths
                .check(spec.shape())
                .map_err(|message| refused(Refusal::KeyNotAllowed(message)))?;
        }
        let key = tokio::task::spawn_blocking(move || keys::generate(spec))
            .await
            .map_err(|_| ApiError::internal("the key generation task failed"))?
            .map_err(ApiError::internal)?;
        let private_key = ca::private_key_openssh(&key)?;
        let (signed, plan) = certify(&request, &role, ca, key.public_key().clone()).await?;
        let mut response = signed_response(&signed, &plan);
        if let Some(data) = response.data.as_mut() {
            data.insert("private_key".into(), Value::from(private_key));
            data.insert("private_key_type".into(), Value::from(spec.short_name()));
        }
        Ok(response)
    })
}
