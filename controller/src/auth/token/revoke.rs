//! `auth/token/revoke`, `revoke-self`, `revoke-accessor` and `revoke-orphan`.
//!
//! Owns finding the token to revoke; revoking it with its children and leases is
//! `auth::revoke_token`. Revoking a token that does not exist succeeds, as in Vault.

use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::auth::revoke_token;
use crate::tokens::{self, Revocation};

fn accessor_of(state: &AppState, token: &str) -> Result<Option<String>, ApiError> {
    Ok(tokens::lookup(&state.store, token, tokens::now_unix())?.map(|found| found.record.accessor))
}

pub fn revoke(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let token = request.required_string("token")?;
        if let Some(accessor) = accessor_of(&state, &token)? {
            revoke_token(&state, &accessor, Revocation::Tree)?;
        }
        Ok(ApiResponse::empty())
    })
}

pub fn revoke_self(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let caller = request
            .token
            .as_ref()
            .ok_or_else(ApiError::permission_denied)?;
        revoke_token(&state, &caller.accessor, Revocation::Tree)?;
        Ok(ApiResponse::empty())
    })
}

pub fn revoke_accessor(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let accessor = request.required_string("accessor")?;
        revoke_token(&state, &accessor, Revocation::Tree)?;
        Ok(ApiResponse::empty())
    })
}

pub fn revoke_orphan(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let token = request.required_string("token")?;
        if let Some(accessor) = accessor_of(&state, &token)? {
            revoke_token(&state, &accessor, Revocation::OrphanChildren)?;
        }
        Ok(ApiResponse::empty())
    })
}
