//! Lease paths: `sys/leases/lookup`, `renew`, `revoke`, `revoke-prefix`, `revoke-force`, and
//! listing with `LIST sys/leases/lookup/<prefix>`.
//!
//! Owns the HTTP surface of leases; the lease manager does the work. A revocation that fails
//! answers 500 with the reason and stays visible in lookups (attempts, last error, next try).

use std::time::{Duration, UNIX_EPOCH};

use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::leases::{LeaseError, LeaseRecord};
use crate::tokens::now_unix;

const LOOKUP_FIELDS: &[Field] = &[Field::new(
    "lease_id",
    FieldKind::String,
    "the lease to look up",
)];

const RENEW_FIELDS: &[Field] = &[
    Field::new("lease_id", FieldKind::String, "the lease to renew"),
    Field::new(
        "increment",
        FieldKind::Duration,
        "the TTL asked for, from now (default: the lease's own TTL)",
    ),
];

const REVOKE_FIELDS: &[Field] = &[
    Field::new("lease_id", FieldKind::String, "the lease to revoke"),
    Field::new(
        "sync",
        FieldKind::Bool,
        "accepted for Vault compatibility; revocation always completes before the answer",
    ),
];

const SYNC_FIELD: &[Field] = &[Field::new(
    "sync",
    FieldKind::Bool,
    "accepted for Vault compatibility; revocation always completes before the answer",
)];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "leases/lookup",
            "Looks up a lease by id (write), or lists the top level of lease ids (list, sudo).",
            "A write answers the lease's issue and expiry times, remaining TTL, whether it is \
             renewable and, when its revocation failed, the attempts, last error and next try. \
             A list answers the first segments of lease ids and needs sudo, as in Vault.",
            LOOKUP_FIELDS,
            vec![
                (Operation::Write, lookup as fn(_, _) -> _),
                (Operation::List, list),
            ],
        )
        .sudo(&[Operation::List]),
        PathSpec::new(
            "leases/lookup/{*prefix}",
            "Lists lease ids under a prefix (sudo).",
            "The next segments of the lease ids under the prefix, as Vault lists them. Needs \
             sudo.",
            &[],
            vec![(Operation::List, list)],
        )
        .sudo(&[Operation::List]),
        PathSpec::new(
            "leases/renew",
            "Renews a lease.",
            "Extends the lease named by lease_id by increment from now (default its own TTL), \
             as far as its secret kind allows.",
            RENEW_FIELDS,
            vec![(Operation::Write, renew)],
        ),
        PathSpec::new(
            "leases/renew/{*lease_id}",
            "Renews the lease named in the path.",
            "As leases/renew, with the lease id in the path.",
            RENEW_FIELDS,
            vec![(Operation::Write, renew)],
        ),
        PathSpec::new(
            "leases/revoke",
            "Revokes a lease now, running its engine's revoke action.",
            "The engine's revoke action runs before the answer (an SSH OTP is destroyed). A \
             revocation that fails answers 500 with the reason; the lease stays, visible in \
             lookups, and the sweeper retries it with backoff. An unknown lease is not an error.",
            REVOKE_FIELDS,
            vec![(Operation::Write, revoke)],
        ),
        PathSpec::new(
            "leases/revoke/{*lease_id}",
            "Revokes the lease named in the path.",
            "As leases/revoke, with the lease id in the path.",
            REVOKE_FIELDS,
            vec![(Operation::Write, revoke)],
        ),
        PathSpec::new(
            "leases/revoke-prefix/{*prefix}",
            "Revokes every lease under a prefix (sudo).",
            "Runs the revoke action of every lease whose id starts with the prefix. Leases whose \
             revocation fails are kept for retry and named in the 500 answer. Needs sudo.",
            SYNC_FIELD,
            vec![(Operation::Write, revoke_prefix)],
        )
        .sudo(&[Operation::Write]),
        PathSpec::new(
            "leases/revoke-force/{*prefix}",
            "Forgets every lease under a prefix even when its revoke action fails (sudo).",
            "As revoke-prefix, but a lease whose revocation fails is forgotten anyway: the secret \
             it stood for may still work. The only way to drop a lease that cannot be revoked. \
             Needs sudo.",
            &[],
            vec![(Operation::Write, revoke_force)],
        )
        .sudo(&[Operation::Write]),
    ]
}

fn failed(error: LeaseError) -> ApiError {
    match error {
        LeaseError::NotFound(_) | LeaseError::NotRenewable(_) | LeaseError::Invalid(_) => {
            ApiError::bad_request(error.to_string())
        }
        LeaseError::RevokeFailed { .. } | LeaseError::RenewFailed { .. } => {
            ApiError::internal(error.to_string())
        }
        LeaseError::Store(error) => ApiError::from(error),
    }
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

fn lease_id(request: &Request) -> Result<String, ApiError> {
    match request.params.get("lease_id") {
        Some(id) => Ok(id.clone()),
        None => request.required_string("lease_id"),
    }
}

fn lookup(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let lease = state
            .leases
            .lookup(&request.required_string("lease_id")?)
            .map_err(failed)?;
        let now = now_unix();
        let failure = lease.revocation.as_ref();
        Ok(ApiResponse::data(data_map! {
            "id" => lease.lease_id,
            "issue_time" => rfc3339(lease.issue_unix),
            "expire_time" => rfc3339(lease.expire_unix),
            "last_renewal" => lease.last_renewal_unix.map(rfc3339),
            "renewable" => lease.renewable,
            "ttl" => lease.ttl_remaining(now),
            "secret_kind" => lease.secret_kind,
            "revocation_pending" => failure.is_some(),
            "revocation_attempts" => failure.map(|f| f.attempts).unwrap_or(0),
            "last_revocation_error" => failure.map(|f| f.last_error.clone()),
            "next_revocation_attempt" => failure.map(|f| rfc3339(f.next_attempt_unix)),
        }))
    })
}

fn list(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let prefix = request.param("prefix");
        Ok(ApiResponse::keys(
            state.leases.list(prefix).map_err(failed)?,
        ))
    })
}

fn renewed(lease: &LeaseRecord, now: u64) -> ApiResponse {
    ApiResponse {
        lease_id: lease.lease_id.clone(),
        lease_duration: lease.ttl_remaining(now),
        renewable: lease.renewable,
        ..ApiResponse::default()
    }
}

fn renew(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let id = lease_id(&request)?;
        let increment = request.duration("increment")?.unwrap_or(Duration::ZERO);
        let now = now_unix();
        let lease = state
            .leases
            .renew(&id, increment, now)
            .await
            .map_err(failed)?;
        Ok(renewed(&lease, now))
    })
}

fn revoke(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let id = lease_id(&request)?;
        match state.leases.revoke(&id, false, now_unix()).await {
            Ok(()) | Err(LeaseError::NotFound(_)) => Ok(ApiResponse::empty()),
            Err(error) => Err(failed(error)),
        }
    })
}

async fn revoke_under(
    state: &AppState,
    prefix: &str,
    force: bool,
) -> Result<ApiResponse, ApiError> {
    let outcome = state
        .leases
        .revoke_prefix(prefix, force, now_unix())
        .await
        .map_err(failed)?;
    if outcome.failed.is_empty() {
        return Ok(ApiResponse::empty());
    }
    let failures: Vec<String> = outcome
        .failed
        .iter()
        .map(|(id, error)| format!("{id}: {error}"))
        .collect();
    Err(ApiError::internal(format!(
        "revoked {} leases under {prefix}; {} failed and are kept for retry: {}",
        outcome.revoked.len(),
        outcome.failed.len(),
        failures.join("; ")
    )))
}

fn revoke_prefix(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move { revoke_under(&state, request.param("prefix"), false).await })
}

fn revoke_force(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move { revoke_under(&state, request.param("prefix"), true).await })
}
