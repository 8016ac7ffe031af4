//! What every login method shares: the token settings a role or user carries (Vault's
//! `tokenutil` fields), issuing the token a successful login earns, and the bookkeeping of
//! each attempt (brute-force limiter, metrics, the failure answer).
//!
//! A login token is an orphan (no parent: it lives on when whoever created the role is
//! revoked, as in Vault) stored like every token, only as a hash; leases issued to it are
//! revoked with it (`auth::revoke_token`). Must not check credentials: each method does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::cidr;
use crate::api::paths::{Field, FieldKind, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::auth::token::render;
use crate::tokens::{self, TokenError, TokenRecord, TtlRequest};

/// The token fields of a role or a user, as Vault's `tokenutil` declares them (with the
/// deprecated `policies`, which hvac's userpass client still sends).
pub const TOKEN_FIELDS: [Field; 7] = [
    Field::new(
        "token_policies",
        FieldKind::StringList,
        "policies of the tokens a login issues (default is added unless token_no_default_policy)",
    ),
    Field::new(
        "policies",
        FieldKind::StringList,
        "deprecated spelling of token_policies",
    ),
    Field::new(
        "token_ttl",
        FieldKind::Duration,
        "TTL of the tokens a login issues (default 768h)",
    ),
    Field::new(
        "token_max_ttl",
        FieldKind::Duration,
        "renewals of an issued token never pass this, counted from the login (0: 768h)",
    ),
    Field::new(
        "token_num_uses",
        FieldKind::Int,
        "how many requests an issued token may make (0: unlimited)",
    ),
    Field::new(
        "token_bound_cidrs",
        FieldKind::StringList,
        "CIDR blocks an issued token may be used from (empty: anywhere)",
    ),
    Field::new(
        "token_no_default_policy",
        FieldKind::Bool,
        "do not add the default policy to issued tokens",
    ),
];

/// The token settings of a role or a user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenSettings {
    #[serde(default)]
    pub token_policies: Vec<String>,
    #[serde(default)]
    pub token_ttl_secs: u64,
    #[serde(default)]
    pub token_max_ttl_secs: u64,
    #[serde(default)]
    pub token_num_uses: u64,
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    #[serde(default)]
    pub token_no_default_policy: bool,
}

fn seconds(request: &Request, field: &str) -> Result<Option<u64>, ApiError> {
    Ok(request.duration(field)?.map(|duration| duration.as_secs()))
}

impl TokenSettings {
    /// Applies the fields a write gave to `self` (a create starts from the defaults, an
    /// update from the stored settings, as Vault's update keeps fields not given).
    pub fn update_from(&mut self, request: &Request) -> Result<(), ApiError> {
        if let Some(policies) = request.string_list("token_policies")? {
            self.token_policies = tokens::sanitize_policies(&policies, false);
        } else if let Some(policies) = request.string_list("policies")? {
            self.token_policies = tokens::sanitize_policies(&policies, false);
        }
        if let Some(ttl) = seconds(request, "token_ttl")? {
            self.token_ttl_secs = ttl;
        }
        if let Some(max) = seconds(request, "token_max_ttl")? {
            self.token_max_ttl_secs = max;
        }
        if let Some(uses) = request.int("token_num_uses")? {
            self.token_num_uses = u64::try_from(uses).map_err(|_| {
                ApiError::bad_request("field 'token_num_uses': must be zero (unlimited) or more")
            })?;
        }
        if let Some(blocks) = request.string_list("token_bound_cidrs")? {
            cidr::validate(&blocks).map_err(|error| {
                ApiError::bad_request(format!("field 'token_bound_cidrs': {error}"))
            })?;
            self.token_bound_cidrs = blocks;
        }
        if let Some(flag) = request.bool("token_no_default_policy")? {
            self.token_no_default_policy = flag;
        }
        if self.token_max_ttl_secs > 0 && self.token_ttl_secs > self.token_max_ttl_secs {
            return Err(ApiError::bad_request(
                "field 'token_ttl': cannot be greater than token_max_ttl",
            ));
        }
        Ok(())
    }

    /// The fields in a read, as Vault shows them (durations in seconds).
    pub fn render_into(&self, data: &mut Map<String, Value>) {
        data.insert("token_policies".into(), json!(self.token_policies));
        data.insert("policies".into(), json!(self.token_policies));
        data.insert("token_ttl".into(), json!(self.token_ttl_secs));
        data.insert("token_max_ttl".into(), json!(self.token_max_ttl_secs));
        data.insert("token_num_uses".into(), json!(self.token_num_uses));
        data.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        data.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        data.insert("token_type".into(), json!("service"));
        data.insert("token_period".into(), json!(0));
        data.insert("token_explicit_max_ttl".into(), json!(0));
    }
}

/// The identity a login earned, ready to become a token.
pub struct Grant<'a> {
    pub settings: &'a TokenSettings,
    /// Token bound CIDRs that win over the settings' (a secret ID's own).
    pub bound_cidrs_override: Option<&'a [String]>,
    /// `approle`, `userpass-alice`: the token's display name.
    pub display_name: String,
    pub metadata: BTreeMap<String, String>,
    /// `auth/approle/login`: where the token says it came from.
    pub path: String,
}

/// Issues the token of a successful login; answers the response with its `auth` block.
pub fn issue_token(state: &AppState, grant: Grant<'_>) -> Result<ApiResponse, ApiError> {
    let settings = grant.settings;
    let policies =
        tokens::sanitize_policies(&settings.token_policies, !settings.token_no_default_policy);
    let ttl_request = TtlRequest {
        ttl_secs: settings.token_ttl_secs,
        explicit_max_ttl_secs: settings.token_max_ttl_secs,
        period_secs: 0,
        root_policy: false,
    };
    let ttl_secs = tokens::initial_ttl(ttl_request);
    let now = tokens::now_unix();
    let record = TokenRecord {
        accessor: tokens::generate_accessor(),
        policies,
        display_name: grant.display_name,
        created_unix: now,
        parent_accessor: None,
        meta: grant.metadata,
        num_uses: settings.token_num_uses,
        creation_ttl_secs: ttl_secs,
        explicit_max_ttl_secs: settings.token_max_ttl_secs,
        period_secs: 0,
        expire_unix: (ttl_secs > 0).then(|| now.saturating_add(ttl_secs)),
        renewable: true,
        path: grant.path,
        last_renewal_unix: None,
        bound_cidrs: grant
            .bound_cidrs_override
            .filter(|blocks| !blocks.is_empty())
            .map(<[String]>::to_vec)
            .unwrap_or_else(|| settings.token_bound_cidrs.clone()),
    };
    let token = tokens::generate_token();
    tokens::insert(&state.store, &token, &record).map_err(|error| match error {
        TokenError::Invalid(message) => ApiError::internal(message),
        TokenError::Store(error) => ApiError::from(error),
    })?;
    let mut response = ApiResponse::empty();
    response.auth = Some(render::auth_block(&token, &record, now));
    Ok(response)
}

/// How a login attempt ended, for the limiter and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Wrong, unknown, expired or used-up credentials.
    Invalid,
    /// The client's address is outside the bound CIDRs.
    Refused,
    /// The server failed (a store error): no verdict on the credentials, not counted
    /// against them.
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Invalid => "invalid",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
}

/// Refuses an attempt while its identity or address is locked (429, saying when to retry).
/// `shown` names the identity in the answer (a user name; never a role ID, which is half of
/// an AppRole credential).
pub fn check_limiter(
    state: &AppState,
    method: &'static str,
    identity: &str,
    shown: &str,
    address: Option<IpAddr>,
) -> Result<(), ApiError> {
    state.logins.check(identity, address).map_err(|locked| {
        crate::metrics::global().login_finished(method, "rate_limited");
        let from = address.map_or_else(|| "an unknown address".to_string(), |address| address.to_string());
        let whom = if locked.by_address {
            format!("from {from}")
        } else {
            format!("for {shown} from {from}")
        };
        tracing::warn!(method, client = %from, by_address = locked.by_address, retry_after_secs = locked.retry_after_secs(), "login refused: too many failed attempts");
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed login attempts {whom}; retry in {} seconds",
                locked.retry_after_secs()
            ),
        )
    })
}

/// Counts an attempt's outcome (limiter, metrics, log).
pub fn record(
    state: &AppState,
    method: &'static str,
    identity: &str,
    address: Option<IpAddr>,
    outcome: Outcome,
) {
    crate::metrics::global().login_finished(method, outcome.label());
    match outcome {
        Outcome::Success => state.logins.record_success(identity, address),
        Outcome::Error => {}
        Outcome::Invalid | Outcome::Refused => {
            state.logins.record_failure(identity, address);
            tracing::info!(method, client = ?address, outcome = outcome.label(), "login failed");
        }
    }
}
