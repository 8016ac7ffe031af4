//! `sys/wrapping/unwrap`, `lookup`, `rewrap` and `wrap`: Vault's response-wrapping endpoints.
//!
//! Owns the HTTP surface; storing and single use are `api/wrapping.rs`. `unwrap` and `lookup`
//! are served without an API token: the wrapping token (in `token`, or as the request's
//! `X-Vault-Token` when `token` is absent, as hvac and the vault CLI send it) is the
//! credential, and it opens nothing else. Must not hand out an answer twice.

use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState, wrapping};

const TOKEN_FIELD: &[Field] = &[Field::new(
    "token",
    FieldKind::String,
    "the wrapping token (default: the request's X-Vault-Token)",
)
.sensitive()];

const REWRAP_FIELD: &[Field] =
    &[Field::new("token", FieldKind::String, "the wrapping token to replace").sensitive()];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "wrapping/unwrap",
            "Answers a wrapped response, once.",
            "The response put away under the wrapping token is answered as it was first given \
             (data, auth, lease) and the token is spent: a second unwrap is refused (and logged \
             as a possible interception). Served without an API token: the wrapping token is \
             the credential.",
            TOKEN_FIELD,
            vec![(Operation::Write, unwrap as fn(_, _) -> _)],
        )
        .unauthenticated(),
        PathSpec::new(
            "wrapping/lookup",
            "Properties of a wrapping token, without spending it.",
            "Its creation path, creation time and TTL; refused for a spent or expired token.",
            TOKEN_FIELD,
            vec![(Operation::Write, lookup), (Operation::Read, lookup)],
        )
        .unauthenticated(),
        PathSpec::new(
            "wrapping/rewrap",
            "Moves a wrapped response under a new wrapping token.",
            "Spends the given wrapping token and answers a new one (same TTL, same creation \
             path) holding the same response, for long-lived wrapped secrets.",
            REWRAP_FIELD,
            vec![(Operation::Write, rewrap)],
        ),
        PathSpec::new(
            "wrapping/wrap",
            "Wraps the given data under a wrapping token.",
            "Every field of the request becomes the data of a wrapped response; the TTL comes \
             from X-Vault-Wrap-TTL, which is required.",
            &[],
            vec![(Operation::Write, wrap)],
        )
        .free_form(),
    ]
}

/// The wrapping token: `token` in the body, else the presented `X-Vault-Token`.
fn wrapping_token(request: &Request) -> Result<String, ApiError> {
    if let Some(token) = request.string("token")?.filter(|token| !token.is_empty()) {
        return Ok(token);
    }
    request
        .presented_token
        .as_ref()
        .map(|token| token.expose().to_string())
        .ok_or_else(|| ApiError::bad_request(wrapping::INVALID_TOKEN))
}

fn unwrap(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move { wrapping::unwrap(&state, &wrapping_token(&request)?) })
}

fn lookup(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        Ok(ApiResponse::data(wrapping::lookup(
            &state,
            &wrapping_token(&request)?,
        )?))
    })
}

fn rewrap(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move { wrapping::rewrap(&state, &request.required_string("token")?) })
}

fn wrap(_state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        if request.wrap_ttl_secs.is_none() {
            return Err(ApiError::bad_request(
                "wrapping TTL not set: send the TTL in the X-Vault-Wrap-TTL header (rotor write -wrap-ttl=5m sys/wrapping/wrap ...)",
            ));
        }
        let data = request.free_form_data()?.clone();
        if data.is_empty() {
            return Err(ApiError::bad_request(
                "no data to wrap: give at least one field",
            ));
        }
        // The API wraps this answer (the header is set), so the data never goes out in clear.
        Ok(ApiResponse::data(data))
    })
}
