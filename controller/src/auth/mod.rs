//! Auth methods under `auth/`. Rotor has one, Vault's token method at `auth/token/`.
//!
//! Owns which auth paths exist, revoking a token together with its leases (one transaction),
//! and the sweeper that revokes expired tokens. Must not evaluate policies: the API does that
//! centrally before any handler here runs.

pub mod sweeper;
pub mod token;

use crate::api::{ApiError, AppState};
use crate::store::StoreError;
use crate::tokens::{self, Revocation};

/// The mount of the token method, with its trailing slash.
pub const TOKEN_MOUNT: &str = "auth/token/";

/// Revokes the token with `accessor` (and its subtree, or orphaning its children) and makes
/// every lease of every revoked token due now. Answers the revoked accessors.
pub fn revoke_token(
    state: &AppState,
    accessor: &str,
    mode: Revocation,
) -> Result<Vec<String>, ApiError> {
    let now = tokens::now_unix();
    let leases = &state.leases;
    let (revoked, moved) = state.store.write(|tx| {
        let revoked = tokens::revoke_in(tx, accessor, mode)?;
        let moved = leases.expire_owned_by_in(tx, &revoked, now)?;
        Ok::<_, StoreError>((revoked, moved))
    })?;
    leases.note_due(&moved, now);
    if !revoked.is_empty() {
        tracing::info!(
            tokens = revoked.len(),
            leases = moved.len(),
            "tokens revoked"
        );
    }
    Ok(revoked)
}
