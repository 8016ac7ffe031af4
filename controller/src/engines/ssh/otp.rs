//! The OTP half of the ssh engine: one-time SSH passwords issued under a lease
//! (`creds/:role`), which roles cover an address (`lookup`), zero-address roles
//! (`config/zeroaddress`), and verify-and-consume, both for the reference's unauthenticated
//! `verify` and for the agents' PAM helper over QUIC (the dispatcher calls [`verifier`]).
//!
//! Owns the `ssh_otps` table (an OTP is stored only as its SHA-256, with the role, user,
//! address, lease and expiry) and `ssh_otp_bindings` (which agent serves which host
//! address). An OTP is consumed (deleted) the first time anyone presents it, whether the
//! rest of the check passes or not: a leaked OTP tried in the wrong place is burnt.
//!
//! Binding to the host's agent, beyond the reference: an OTP is for an address; the agent
//! whose helper first verifies an OTP for that address becomes bound to it (recorded, like a
//! trusted-on-first-use host key), and from then on only that agent's helper can consume
//! OTPs for the address. A helper may consume an OTP only when the address is bound to its
//! agent or is one of the host's own addresses, so an OTP issued for one host never opens
//! another. An operator can pre-bind an address (NAT, several addresses) with
//! `config/otp_bindings/:ip` (`agent`).
//!
//! Must not log an OTP or hold one in clear after answering `creds`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rotor_common::names::validate_username;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::roles::{self, Cidr, SshRole};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::dispatch::{OtpCheck, OtpVerifier};
use crate::leases::{LeaseManager, LeaseRecord, NewLease, RevokeFuture, Revoker};
use crate::store::{Store, StoreError, Table};
use crate::tokens::now_unix;

/// The secret kind OTP leases are registered under.
pub const SECRET_KIND: &str = "ssh_otp";
/// How long an OTP lives when its role names no `ttl`.
pub const DEFAULT_OTP_TTL: Duration = Duration::from_secs(10 * 60);

/// One issued OTP, keyed by the SHA-256 of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpRecord {
    pub mount: String,
    pub role: String,
    pub username: String,
    pub ip: String,
    pub lease_id: String,
    pub expire_unix: u64,
}

/// Which agent serves a host address, keyed by `<mount><ip>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpBinding {
    pub agent_id: String,
    /// `first_use` (learned from the first verification) or `operator`.
    pub source: String,
    pub bound_unix: u64,
}

/// The store key of an OTP: hex SHA-256; the file never holds a usable OTP.
pub fn otp_key(otp: &str) -> String {
    crate::tokens::token_key(otp)
}

fn zeroaddress_key(mount: &str) -> String {
    format!("ssh-zeroaddress:{mount}")
}

fn binding_key(mount: &str, ip: &IpAddr) -> String {
    format!("{mount}{ip}")
}

/// A fresh OTP: 128 random bits in the reference's UUID-like form.
fn fresh_otp() -> String {
    crate::tokens::random_uuid()
}

fn parse_ip(text: &str) -> Result<IpAddr, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "field 'ip': '{text}' is not an IPv4 or IPv6 address"
        ))
    })
}

/// The zero-address roles of `mount`.
pub fn zero_address_roles(store: &Store, mount: &str) -> Result<Vec<String>, StoreError> {
    Ok(store
        .get::<Vec<String>>(Table::Meta, &zeroaddress_key(mount))?
        .unwrap_or_default())
}

/// Whether `role` serves `ip`: in its CIDRs and not excluded, or a zero-address role.
pub fn role_covers(role: &SshRole, ip: IpAddr, zero_address: &[String]) -> bool {
    let Some(otp) = role.otp() else {
        return false;
    };
    let in_blocks = |blocks: &[String]| {
        blocks
            .iter()
            .filter_map(|block| Cidr::parse(block))
            .any(|cidr| cidr.contains(ip))
    };
    if in_blocks(&otp.exclude_cidr_list) {
        return false;
    }
    zero_address.iter().any(|name| name == &role.name) || in_blocks(&otp.cidr_list)
}

/// Whether `role` gives OTPs for `username`: `*`, a listed user, or its default user (an
/// empty `allowed_users` allows only the default user, as in the reference).
pub fn user_allowed(role: &SshRole, username: &str) -> bool {
    username == role.default_user
        || role
            .allowed_users
            .iter()
            .any(|allowed| allowed == "*" || allowed == username)
}

/// `creds/:role`: a fresh OTP for `ip` and `username`, under a lease.
pub fn creds(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = request.param("role").to_string();
        let role = roles::get_role(&state.store, &request.mount, &name)?.ok_or_else(|| {
            ApiError::bad_request(format!("role '{name}' does not exist at {}", request.mount))
        })?;
        let Some(settings) = role.otp().cloned() else {
            return Err(ApiError::bad_request(format!(
                "role '{name}' is a ca role: it signs certificates (sign/{name}), it gives no one-time passwords"
            )));
        };
        let ip_text = request.required_string("ip")?;
        let ip = parse_ip(&ip_text)?;
        let username = request
            .string("username")?
            .filter(|user| !user.trim().is_empty())
            .unwrap_or_else(|| role.default_user.clone());
        // The agent's PAM helper refuses any other PAM_USER: an OTP for it could never be used.
        validate_username(&username)
            .map_err(|invalid| ApiError::bad_request(format!("field 'username': {invalid}")))?;
        if !user_allowed(&role, &username) {
            return Err(ApiError::bad_request(format!(
                "username '{username}' is not allowed by role '{name}' (allowed_users: {}; default_user: {})",
                if role.allowed_users.is_empty() {
                    "only the default user".to_string()
                } else {
                    role.allowed_users.join(",")
                },
                role.default_user
            )));
        }
        let zero = zero_address_roles(&state.store, &request.mount)?;
        if !role_covers(&role, ip, &zero) {
            return Err(ApiError::bad_request(format!(
                "IP {ip} is not covered by role '{name}' (cidr_list {}, exclude_cidr_list {})",
                settings.cidr_list.join(","),
                if settings.exclude_cidr_list.is_empty() {
                    "none".to_string()
                } else {
                    settings.exclude_cidr_list.join(",")
                }
            )));
        }
        let ttl = settings
            .ttl_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_OTP_TTL);
        let otp = fresh_otp();
        let key = otp_key(&otp);
        let now = now_unix();
        // The lease first: a crash after it leaves a lease whose revocation finds nothing;
        // the other order could leave an OTP no lease would ever end.
        let lease = state
            .leases
            .register(
                NewLease {
                    path_prefix: format!("{}creds/{name}", request.mount),
                    secret_kind: SECRET_KIND.into(),
                    ttl,
                    max_ttl: ttl,
                    renewable: false,
                    revoke_data: json!({ "otp_key": key }),
                    owner_accessor: request.token.as_ref().map(|token| token.accessor.clone()),
                },
                now,
            )
            .map_err(|error| ApiError::internal(format!("registering the OTP's lease: {error}")))?;
        let record = OtpRecord {
            mount: request.mount.clone(),
            role: name.clone(),
            username: username.clone(),
            ip: ip.to_string(),
            lease_id: lease.lease_id.clone(),
            expire_unix: lease.expire_unix,
        };
        state
            .store
            .write(|tx| tx.put(Table::SshOtps, &key, &record))?;
        tracing::info!(mount = %request.mount, role = %name, user = %username, %ip, lease_id = %lease.lease_id, "issued an SSH OTP");
        let mut response = ApiResponse::data(data_map! {
            "key" => otp,
            "key_type" => "otp",
            "ip" => ip.to_string(),
            "username" => username,
            "port" => settings.port,
        });
        response.lease_id = lease.lease_id;
        response.lease_duration = ttl.as_secs();
        response.renewable = false;
        Ok(response)
    })
}

/// `lookup`: the roles of this mount that cover `ip`.
pub fn lookup(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let ip = parse_ip(&request.required_string("ip")?)?;
        let zero = zero_address_roles(&state.store, &request.mount)?;
        let names: Vec<String> = roles::list_roles(&state.store, &request.mount)?
            .into_iter()
            .filter(|role| role_covers(role, ip, &zero))
            .map(|role| role.name)
            .collect();
        Ok(ApiResponse::data(data_map! { "roles" => names }))
    })
}

/// Takes an OTP out of the store (it can be used once); answers its record if it existed.
fn consume(store: &Store, otp: &str) -> Result<Option<OtpRecord>, StoreError> {
    let key = otp_key(otp);
    // Most presentations that are not OTPs (a `sufficient` PAM stack hands the helper every
    // password) end here, on a read, without the durable commit a write costs.
    if store.get::<OtpRecord>(Table::SshOtps, &key)?.is_none() {
        return Ok(None);
    }
    store.write(|tx| {
        let record: Option<OtpRecord> = tx.get(Table::SshOtps, &key)?;
        if record.is_some() {
            tx.delete(Table::SshOtps, &key)?;
        }
        Ok(record)
    })
}

/// Ends the lease of a consumed OTP in the background (its record is already gone).
fn end_lease(leases: &LeaseManager, lease_id: String) {
    let leases = leases.clone();
    tokio::spawn(async move {
        if let Err(error) = leases.revoke(&lease_id, false, now_unix()).await {
            tracing::warn!(%lease_id, %error, "ending the lease of a used OTP");
        }
    });
}

const OTP_NOT_FOUND: &str = "OTP not found";

/// `verify` (unauthenticated, as in the reference): a valid OTP is consumed and answers its
/// address and user; anything else is 400 `OTP not found`.
pub fn verify(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let otp = request.string("otp")?.unwrap_or_default();
        let otp = otp.trim();
        if otp.is_empty() {
            return Err(ApiError::bad_request(OTP_NOT_FOUND));
        }
        let record =
            consume(&state.store, otp)?.ok_or_else(|| ApiError::bad_request(OTP_NOT_FOUND))?;
        end_lease(&state.leases, record.lease_id.clone());
        if record.expire_unix <= now_unix() {
            return Err(ApiError::bad_request(OTP_NOT_FOUND));
        }
        tracing::info!(mount = %record.mount, role = %record.role, user = %record.username, ip = %record.ip, "an SSH OTP was verified over HTTP");
        Ok(ApiResponse::data(data_map! {
            "ip" => record.ip,
            "username" => record.username,
            "role_name" => record.role,
        }))
    })
}

/// The dispatcher's verifier for agents' PAM helpers.
pub fn verifier(store: Arc<Store>, leases: LeaseManager) -> OtpVerifier {
    Arc::new(move |check: OtpCheck| {
        let store = store.clone();
        let leases = leases.clone();
        Box::pin(async move { verify_for_agent(&store, &leases, check, now_unix()) })
    })
}

/// Verify-and-consume for an agent's helper: the OTP must exist and be unexpired, be for
/// this user, and be for an address served by this agent. Answers the refusal's reason.
pub fn verify_for_agent(
    store: &Store,
    leases: &LeaseManager,
    check: OtpCheck,
    now: u64,
) -> Result<(), String> {
    let internal = |error: StoreError| {
        tracing::error!(%error, "store error while verifying an OTP");
        "internal error".to_string()
    };
    let record = consume(store, check.otp.expose())
        .map_err(internal)?
        .ok_or_else(|| OTP_NOT_FOUND.to_string())?;
    let verdict = check_consumed(store, &record, check, now).map_err(internal)?;
    // After the verdict, so the lease's own commit does not queue before the binding's.
    end_lease(leases, record.lease_id.clone());
    verdict
}

/// Whether a consumed OTP's record allows this login; binds the address to the agent on
/// its first verified use.
fn check_consumed(
    store: &Store,
    record: &OtpRecord,
    check: OtpCheck,
    now: u64,
) -> Result<Result<(), String>, StoreError> {
    if record.expire_unix <= now {
        return Ok(Err(format!("{OTP_NOT_FOUND} (expired)")));
    }
    if record.username != check.username {
        return Ok(Err(format!(
            "the OTP was issued for another user, not {}",
            check.username
        )));
    }
    let Ok(ip) = record.ip.parse::<IpAddr>() else {
        return Ok(Err("the OTP's address is unreadable".to_string()));
    };
    let key = binding_key(&record.mount, &ip);
    let agent = check.agent_id.as_str().to_string();
    let on_this_host = check
        .host_addresses
        .iter()
        .filter_map(|address| address.parse::<IpAddr>().ok())
        .any(|address| address == ip);
    let judge = |binding: Option<OtpBinding>| match binding {
        Some(binding) if binding.agent_id == agent => Some(Ok(())),
        Some(binding) => Some(Err(format!(
            "the OTP is for {ip}, which is served by agent {}, not by this host's agent {agent}",
            binding.agent_id
        ))),
        None if on_this_host => None,
        None => Some(Err(format!(
            "the OTP is for {ip}, which is not an address of this host"
        ))),
    };
    // A bound address (every login after the first) is judged on a read.
    if let Some(verdict) = judge(store.get::<OtpBinding>(Table::SshOtpBindings, &key)?) {
        return Ok(verdict);
    }
    store.write(|tx| {
        if let Some(verdict) = judge(tx.get::<OtpBinding>(Table::SshOtpBindings, &key)?) {
            return Ok(verdict);
        }
        tx.put(
            Table::SshOtpBindings,
            &key,
            &OtpBinding {
                agent_id: agent.clone(),
                source: "first_use".into(),
                bound_unix: now,
            },
        )?;
        tracing::info!(%ip, agent = %agent, "bound a host address to the agent that serves it (first OTP verified there)");
        Ok(Ok(()))
    })
}

/// Ends one OTP's lease: forgets the OTP if it is still unused. Idempotent.
pub struct OtpRevoker {
    pub store: Arc<Store>,
}

impl Revoker for OtpRevoker {
    fn revoke<'a>(&'a self, lease: &'a LeaseRecord) -> RevokeFuture<'a> {
        Box::pin(async move {
            let Some(key) = lease.revoke_data.get("otp_key").and_then(Value::as_str) else {
                return Ok(());
            };
            self.store
                .write(|tx| tx.delete(Table::SshOtps, key).map(|_| ()))
                .map_err(|error| format!("forgetting the OTP of lease {}: {error}", lease.lease_id))
        })
    }
}

/// `config/zeroaddress` read.
pub fn read_zeroaddress(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let roles = zero_address_roles(&state.store, &request.mount)?;
        Ok(ApiResponse::data(data_map! { "roles" => roles }))
    })
}

/// `config/zeroaddress` write: `roles`, every one an existing otp role.
pub fn write_zeroaddress(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let names = request.string_list("roles")?.unwrap_or_default();
        let names: Vec<String> = names
            .into_iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect();
        if names.is_empty() {
            return Err(ApiError::bad_request(
                "missing required field 'roles': name the otp roles that may give OTPs for any address",
            ));
        }
        for name in &names {
            match roles::get_role(&state.store, &request.mount, name)? {
                Some(role) if role.otp().is_some() => {}
                Some(_) => {
                    return Err(ApiError::bad_request(format!(
                        "field 'roles': role '{name}' is not an otp role"
                    )));
                }
                None => {
                    return Err(ApiError::bad_request(format!(
                        "field 'roles': role '{name}' does not exist at {}",
                        request.mount
                    )));
                }
            }
        }
        state
            .store
            .write(|tx| tx.put(Table::Meta, &zeroaddress_key(&request.mount), &names))?;
        Ok(ApiResponse::empty())
    })
}

/// `config/zeroaddress` delete.
pub fn delete_zeroaddress(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        state
            .store
            .write(|tx| tx.delete(Table::Meta, &zeroaddress_key(&request.mount)))?;
        Ok(ApiResponse::empty())
    })
}

/// `config/otp_bindings/:ip` read: which agent serves the address.
pub fn read_binding(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let ip = parse_ip(request.param("ip"))?;
        let binding: OtpBinding = state
            .store
            .get(Table::SshOtpBindings, &binding_key(&request.mount, &ip))?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no agent is bound to {ip} at {}; the first OTP verified there binds its agent, or write agent=ID here",
                    request.mount
                ))
            })?;
        Ok(ApiResponse::data(data_map! {
            "agent" => binding.agent_id,
            "source" => binding.source,
            "bound_time" => binding.bound_unix,
        }))
    })
}

/// `config/otp_bindings/:ip` write (`agent`): an operator binds an address to an agent.
pub fn write_binding(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let ip = parse_ip(request.param("ip"))?;
        let agent = request.required_string("agent")?;
        let known: Option<Value> = state.store.get(Table::Agents, agent.trim())?;
        if known.is_none() {
            return Err(ApiError::bad_request(format!(
                "field 'agent': no agent '{agent}' is enrolled (LIST agents shows them)"
            )));
        }
        let binding = OtpBinding {
            agent_id: agent.trim().to_string(),
            source: "operator".into(),
            bound_unix: now_unix(),
        };
        state.store.write(|tx| {
            tx.put(
                Table::SshOtpBindings,
                &binding_key(&request.mount, &ip),
                &binding,
            )
        })?;
        Ok(ApiResponse::empty())
    })
}

/// `config/otp_bindings/:ip` delete: the next OTP verified for the address binds again.
pub fn delete_binding(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let ip = parse_ip(request.param("ip"))?;
        state
            .store
            .write(|tx| tx.delete(Table::SshOtpBindings, &binding_key(&request.mount, &ip)))?;
        Ok(ApiResponse::empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::ssh::roles::{OtpSettings, RoleSettings};

    fn role(cidrs: &[&str], excluded: &[&str], allowed: &[&str]) -> SshRole {
        SshRole {
            name: "otp".into(),
            default_user: "app1".into(),
            allowed_users: allowed.iter().map(|s| s.to_string()).collect(),
            settings: RoleSettings::Otp(OtpSettings {
                cidr_list: cidrs.iter().map(|s| s.to_string()).collect(),
                exclude_cidr_list: excluded.iter().map(|s| s.to_string()).collect(),
                port: 22,
                ttl_secs: None,
            }),
            created_unix: 0,
        }
    }

    #[test]
    fn coverage_follows_cidrs_exclusions_and_zero_address() {
        let role = role(&["10.0.0.0/8"], &["10.1.0.0/16"], &[]);
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        assert!(role_covers(&role, ip("10.2.3.4"), &[]));
        assert!(!role_covers(&role, ip("10.1.3.4"), &[]));
        assert!(!role_covers(&role, ip("192.168.1.1"), &[]));
        assert!(role_covers(&role, ip("192.168.1.1"), &["otp".into()]));
        assert!(!role_covers(&role, ip("10.1.3.4"), &["otp".into()]));
    }

    #[test]
    fn users_follow_the_reference() {
        assert!(user_allowed(&role(&[], &[], &[]), "app1"));
        assert!(!user_allowed(&role(&[], &[], &[]), "root"));
        assert!(user_allowed(&role(&[], &[], &["app2"]), "app2"));
        assert!(!user_allowed(&role(&[], &[], &["app2"]), "root"));
        assert!(user_allowed(&role(&[], &[], &["*"]), "root"));
    }

    fn issue(store: &Store, otp: &str, ip: &str, user: &str, expire_unix: u64) {
        let record = OtpRecord {
            mount: "ssh/".into(),
            role: "otp".into(),
            username: user.into(),
            ip: ip.into(),
            lease_id: "ssh/creds/otp/x".into(),
            expire_unix,
        };
        store
            .write(|tx| tx.put(Table::SshOtps, &otp_key(otp), &record))
            .expect("put");
    }

    fn check(agent: &str, user: &str, addresses: &[&str], otp: &str) -> OtpCheck {
        OtpCheck {
            agent_id: rotor_common::ids::AgentId::new(agent).expect("agent id"),
            username: user.into(),
            host_addresses: addresses.iter().map(|s| s.to_string()).collect(),
            client_address: None,
            otp: rotor_common::secret::Password::new(otp.to_string()),
        }
    }

    #[tokio::test]
    async fn an_otp_opens_only_its_user_on_the_agent_bound_to_its_address() {
        let store = Arc::new(Store::in_memory(crate::store::Sealer::ephemeral()).expect("store"));
        let leases = LeaseManager::new(store.clone()).expect("leases");
        let verify = |c| verify_for_agent(&store, &leases, c, 100);
        // Not an address of the presenting host, and nothing bound: refused, and burnt.
        issue(&store, "o1", "10.0.0.5", "app1", 200);
        let refusal = verify(check("agent-b", "app1", &["10.0.0.6"], "o1")).expect_err("refused");
        assert!(refusal.contains("not an address of this host"), "{refusal}");
        assert_eq!(
            verify(check("agent-a", "app1", &["10.0.0.5"], "o1")),
            Err(OTP_NOT_FOUND.into())
        );
        // First use on its own host binds the address to that agent.
        issue(&store, "o2", "10.0.0.5", "app1", 200);
        assert_eq!(
            verify(check("agent-a", "app1", &["10.0.0.5"], "o2")),
            Ok(())
        );
        // Another agent claiming the address (a lying or misconfigured host) is refused.
        issue(&store, "o3", "10.0.0.5", "app1", 200);
        let refusal = verify(check("agent-b", "app1", &["10.0.0.5"], "o3")).expect_err("refused");
        assert!(refusal.contains("served by agent agent-a"), "{refusal}");
        // The bound agent may use it from behind NAT (the address is not on its interfaces).
        issue(&store, "o4", "10.0.0.5", "app1", 200);
        assert_eq!(
            verify(check("agent-a", "app1", &["192.168.9.9"], "o4")),
            Ok(())
        );
        // Wrong user, expired.
        issue(&store, "o5", "10.0.0.5", "app1", 200);
        let refusal = verify(check("agent-a", "root", &["10.0.0.5"], "o5")).expect_err("refused");
        assert!(refusal.contains("another user"), "{refusal}");
        issue(&store, "o6", "10.0.0.5", "app1", 100);
        let refusal = verify(check("agent-a", "app1", &["10.0.0.5"], "o6")).expect_err("refused");
        assert!(refusal.contains("expired"), "{refusal}");
        // Used once, never again.
        issue(&store, "o7", "10.0.0.5", "app1", 200);
        assert_eq!(
            verify(check("agent-a", "app1", &["10.0.0.5"], "o7")),
            Ok(())
        );
        assert_eq!(
            verify(check("agent-a", "app1", &["10.0.0.5"], "o7")),
            Err(OTP_NOT_FOUND.into())
        );
    }

    #[test]
    fn otps_are_fresh_and_keys_are_hashes() {
        let a = fresh_otp();
        let b = fresh_otp();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        // The agent's helper forwards only this shape: every OTP issued must have it.
        for _ in 0..1000 {
            let otp = fresh_otp();
            assert!(rotor_common::otp::otp_shaped(&otp), "{otp}");
        }
        assert_ne!(otp_key(&a), a);
        assert_eq!(otp_key(&a).len(), 64);
    }
}
