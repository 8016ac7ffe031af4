//! Auth methods under `auth/`: the built-in token store at `auth/token/`, and the methods an
//! operator enables with `sys/auth/:path` (`mounts.rs`): AppRole (`approle/`) and userpass
//! (`userpass/`).
//!
//! Owns which auth paths exist, what every login shares (`login.rs`: issuing the token, the
//! brute-force limiter of `limiter.rs`, metrics), revoking a token together with its leases
//! (one transaction), and the sweeper that revokes expired tokens. A login's token is an
//! ordinary token (stored as a hash), so ACL, audit, leases and revocation treat it like any
//! other. Must not evaluate policies: the API does that centrally before any handler here
//! runs.

pub mod approle;
pub mod cidr;
pub mod limiter;
pub mod login;
pub mod mounts;
pub mod sweeper;
pub mod token;
pub mod userpass;

use crate::api::{ApiError, AppState};
use crate::store::StoreError;
use crate::tokens::{self, Revocation};

/// The mount of the token method, with its trailing slash.
pub const TOKEN_MOUNT: &str = "auth/token/";

/// The path table of an enabled auth method type.
pub fn paths(kind: &str) -> Option<&'static [crate::api::PathSpec]> {
    match kind {
        "approle" => Some(approle::paths()),
        "userpass" => Some(userpass::paths()),
        _ => None,
    }
}

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
