//! The token sweeper: a background task that revokes tokens whose TTL ran out, with their
//! children and leases (an expired token is already refused at lookup; this cleans up), and
//! deletes wrapped answers whose wrapping token expired.
//!
//! Owns only the timing loop. Must not decide what expiry means (tokens.rs does).

use std::time::Duration;

use crate::api::AppState;
use crate::tokens::{self, Revocation};

/// Runs forever, sweeping every `interval`.
pub async fn run(state: AppState, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let expired = match tokens::expired_accessors(&state.store, tokens::now_unix()) {
            Ok(expired) => expired,
            Err(error) => {
                tracing::error!(%error, "token sweep: cannot read tokens; will try again");
                continue;
            }
        };
        if let Err(error) = crate::api::wrapping::purge_expired(&state, tokens::now_unix()) {
            tracing::error!(%error, "wrapping sweep: cannot delete expired wrapped answers; will try again");
        }
        for accessor in expired {
            if let Err(error) = super::revoke_token(&state, &accessor, Revocation::Tree) {
                tracing::error!(error = %error.message, "token sweep: revoking an expired token failed; will try again");
            }
        }
    }
}
