//! `auth/token/renew`, `renew-self` and `renew-accessor`: a new TTL from now, capped by the
//! token's explicit maximum and the system maximum.
//!
//! Owns the answers; the arithmetic is `tokens::renewed_expiry`. Must not create tokens.

use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::tokens::{self, FoundToken, TokenError};

use super::lookup::bad_token;
use super::render;

fn renewed(
    state: &AppState,
    request: &Request,
    found: FoundToken,
    shown_token: &str,
) -> Result<ApiResponse, ApiError> {
    let increment = request
        .duration("increment")?
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let now = tokens::now_unix();
    let record =
        tokens::renew(&state.store, &found.key, increment, now).map_err(|error| match error {
            TokenError::Invalid(message) => ApiError::bad_request(message),
            TokenError::Store(error) => ApiError::from(error),
        })?;
    let mut response = ApiResponse::empty();
    response.auth = Some(render::auth_block(shown_token, &record, now));
    Ok(response)
}

pub fn renew(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let token = request.required_string("token")?;
        let found =
            tokens::lookup(&state.store, &token, tokens::now_unix())?.ok_or_else(bad_token)?;
        renewed(&state, &request, found, &token)
    })
}

pub fn renew_self(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let caller = request
            .token
            .as_ref()
            .ok_or_else(ApiError::permission_denied)?;
        let token = caller.client_token.expose().to_string();
        let found =
            tokens::lookup(&state.store, &token, tokens::now_unix())?.ok_or_else(bad_token)?;
        renewed(&state, &request, found, &token)
    })
}

pub fn renew_accessor(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let accessor = request.required_string("accessor")?;
        let found = tokens::lookup_accessor(&state.store, &accessor, tokens::now_unix())?
            .ok_or_else(|| ApiError::bad_request("invalid accessor: no live token has it"))?;
        // Renewing by accessor must not reveal the token: the block's client_token is empty.
        renewed(&state, &request, found, "")
    })
}
