//! `auth/<approle mount>/login`: role ID (+ secret ID) → a token with the role's policies.
//!
//! Checks, in order: the brute-force limiter (429), the role ID, the secret ID (present,
//! not expired, the client's address inside its CIDRs), then spends one use of the secret ID
//! in the same transaction that reads it, so two logins never share a last use. Every
//! refusal is Vault's 400 "invalid role or secret ID" (a wrong role ID and a wrong secret ID
//! look the same to the caller) or the CIDR refusal; each is counted by the limiter and
//! metrics and audited by the API. Must not create roles or secret IDs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::role::RoleRecord;
use super::secret_id::{SecretIdRecord, Spent, spend};
use super::{accessor_index_key, role_id_key, role_key, secret_id_key, store_prefix};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::auth::cidr;
use crate::auth::login::{self, Grant, Outcome};
use crate::store::Table;
use crate::tokens::{self, token_key};

const METHOD: &str = "approle";

/// Vault's answer to a wrong, unknown, expired or used-up role ID or secret ID.
fn invalid() -> (Outcome, ApiError) {
    (
        Outcome::Invalid,
        ApiError::bad_request("invalid role or secret ID"),
    )
}

fn outside_cidrs(address: Option<IpAddr>) -> (Outcome, ApiError) {
    let shown = address.map_or_else(|| "unknown".to_string(), |address| address.to_string());
    (
        Outcome::Refused,
        ApiError::bad_request(format!(
            "source address \"{shown}\" unauthorized through CIDR restrictions on the secret ID"
        )),
    )
}

pub fn login(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let role_id = request
            .string("role_id")?
            .filter(|role_id| !role_id.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing role_id"))?;
        let address = request.remote_address;
        let identity = format!("{}{role_id}", request.mount);
        login::check_limiter(&state, METHOD, &identity, "this role ID", address)?;
        match attempt(&state, &request, &role_id, address) {
            Ok(response) => {
                login::record(&state, METHOD, &identity, address, Outcome::Success);
                Ok(response)
            }
            Err((outcome, error)) => {
                login::record(&state, METHOD, &identity, address, outcome);
                Err(error)
            }
        }
    })
}

fn attempt(
    state: &AppState,
    request: &Request,
    role_id: &str,
    address: Option<IpAddr>,
) -> Result<ApiResponse, (Outcome, ApiError)> {
    let internal = |error: ApiError| (Outcome::Error, error);
    let prefix = store_prefix(request);
    let name: Option<String> = state
        .store
        .get(Table::AuthRecords, &role_id_key(&prefix, role_id))
        .map_err(|error| internal(error.into()))?;
    let Some(name) = name else {
        return Err(invalid());
    };
    let role: Option<RoleRecord> = state
        .store
        .get(Table::AuthRecords, &role_key(&prefix, &name))
        .map_err(|error| internal(error.into()))?;
    let Some(role) = role else {
        return Err(invalid());
    };
    let mut metadata = BTreeMap::new();
    let mut token_bound_cidrs = Vec::new();
    if role.bind_secret_id {
        let secret_id = request
            .string("secret_id")
            .map_err(internal)?
            .filter(|secret_id| !secret_id.is_empty())
            .ok_or_else(|| (Outcome::Invalid, ApiError::bad_request("missing secret_id")))?;
        let secret = spend_secret_id(state, &prefix, &role, &secret_id, address)?;
        metadata = secret.metadata;
        token_bound_cidrs = secret.token_bound_cidrs;
    } else if !cidr::allows(&role.secret_id_bound_cidrs, address) {
        return Err(outside_cidrs(address));
    }
    metadata.insert("role_name".into(), role.name.clone());
    login::issue_token(
        state,
        Grant {
            settings: &role.token,
            bound_cidrs_override: Some(&token_bound_cidrs),
            display_name: METHOD.into(),
            metadata,
            path: format!("{}login", request.mount),
        },
    )
    .map_err(internal)
}

/// Finds the secret ID, checks it and spends one use, in one transaction; an expired one is
/// deleted there. Answers the record as it was before the login.
fn spend_secret_id(
    state: &AppState,
    prefix: &str,
    role: &RoleRecord,
    secret_id: &str,
    address: Option<IpAddr>,
) -> Result<SecretIdRecord, (Outcome, ApiError)> {
    let key = secret_id_key(prefix, &role.name, &token_key(secret_id));
    let now = tokens::now_unix();
    let verdict = state.store.write(|tx| {
        let Some(record) = tx.get::<SecretIdRecord>(Table::AuthRecords, &key)? else {
            return Ok::<_, ApiError>(Err(invalid()));
        };
        let accessor_key = accessor_index_key(prefix, &role.name, &record.accessor);
        let bound = if record.cidr_list.is_empty() {
            &role.secret_id_bound_cidrs
        } else {
            &record.cidr_list
        };
        match spend(&record, now) {
            Spent::Expired => {
                tx.delete(Table::AuthRecords, &key)?;
                tx.delete(Table::AuthRecords, &accessor_key)?;
                Ok(Err(invalid()))
            }
            // A refused address spends nothing: the owner's uses are not burnt by others.
            _ if !cidr::allows(bound, address) => Ok(Err(outside_cidrs(address))),
            Spent::Allowed(Some(kept)) => {
                if kept != record {
                    tx.put(Table::AuthRecords, &key, &kept)?;
                }
                Ok(Ok(record))
            }
            Spent::Allowed(None) => {
                tx.delete(Table::AuthRecords, &key)?;
                tx.delete(Table::AuthRecords, &accessor_key)?;
                Ok(Ok(record))
            }
        }
    });
    match verdict {
        Ok(verdict) => verdict,
        Err(error) => Err((Outcome::Error, error)),
    }
}
