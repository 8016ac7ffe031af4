//! `auth/token/lookup`, `lookup-self`, `lookup-accessor` and the `accessors` list.
//!
//! Owns answering what a token is. A lookup by accessor never shows the token's value.
//! Must not change any token.

use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::tokens;

use super::render;

/// Vault's answer for a token that does not exist or expired.
pub(super) fn bad_token() -> ApiError {
    ApiError::new(axum::http::StatusCode::FORBIDDEN, "bad token")
}

pub fn lookup(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let token = request.required_string("token")?;
        let now = tokens::now_unix();
        let found = tokens::lookup(&state.store, &token, now)?.ok_or_else(bad_token)?;
        Ok(ApiResponse::data(render::lookup_data(
            &token,
            &found.record,
            now,
        )))
    })
}

pub fn lookup_self(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let caller = request
            .token
            .as_ref()
            .ok_or_else(ApiError::permission_denied)?;
        let now = tokens::now_unix();
        // Read again: the caller's record was taken before this request counted a use.
        let found = tokens::lookup(&state.store, caller.client_token.expose(), now)?;
        let record = found
            .map(|found| found.record)
            .unwrap_or_else(|| caller.record.clone());
        Ok(ApiResponse::data(render::lookup_data(
            caller.client_token.expose(),
            &record,
            now,
        )))
    })
}

pub fn lookup_accessor(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let accessor = request.required_string("accessor")?;
        let now = tokens::now_unix();
        let found = tokens::lookup_accessor(&state.store, &accessor, now)?
            .ok_or_else(|| ApiError::bad_request("invalid accessor: no live token has it"))?;
        Ok(ApiResponse::data(render::lookup_data(
            "",
            &found.record,
            now,
        )))
    })
}

pub fn list_accessors(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move { Ok(ApiResponse::keys(tokens::list_accessors(&state.store)?)) })
}
