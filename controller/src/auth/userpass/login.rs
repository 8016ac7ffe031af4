//! `auth/<userpass mount>/login/:username`: a user name and password → a token with the
//! user's policies.
//!
//! Checks the brute-force limiter first (429 saying when to retry), then the password against
//! its argon2id hash off the async workers; an unknown user costs the same hash against a
//! decoy, so timing does not reveal which users exist. Every refusal is Vault's 400 "invalid
//! username or password", counted by the limiter and metrics and audited by the API (the
//! password as an HMAC). Must not change users.

use std::collections::BTreeMap;

use super::users::{read_user, user_name};
use super::{password, store_prefix};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, AppState};
use crate::auth::cidr;
use crate::auth::login::{self, Grant, Outcome};

const METHOD: &str = "userpass";

fn invalid() -> ApiError {
    ApiError::bad_request("invalid username or password")
}

pub fn login(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = user_name(&request)?;
        let typed = zeroize::Zeroizing::new(request.required_string("password")?);
        let address = request.remote_address;
        let identity = format!("{}{name}", request.mount);
        login::check_limiter(&state, METHOD, &identity, &format!("user {name}"), address)?;
        let user = match read_user(&state, &store_prefix(&request), &name) {
            Ok(user) => user,
            Err(error) => {
                login::record(&state, METHOD, &identity, address, Outcome::Error);
                return Err(error);
            }
        };
        let stored = user.as_ref().map(|user| user.password_hash.clone());
        let matches = tokio::task::spawn_blocking(move || match stored {
            Some(stored) => password::verify(&typed, &stored),
            None => password::verify_decoy(&typed),
        })
        .await
        .map_err(|error| ApiError::internal(format!("password check task failed: {error}")))?;
        let Some(user) = user.filter(|_| matches) else {
            login::record(&state, METHOD, &identity, address, Outcome::Invalid);
            return Err(invalid());
        };
        if !cidr::allows(&user.token.token_bound_cidrs, address) {
            login::record(&state, METHOD, &identity, address, Outcome::Refused);
            return Err(ApiError::bad_request(
                "login request originated from invalid CIDR",
            ));
        }
        let issued = login::issue_token(
            &state,
            Grant {
                settings: &user.token,
                bound_cidrs_override: None,
                display_name: format!("{METHOD}-{name}"),
                metadata: BTreeMap::from([("username".to_string(), name.clone())]),
                path: format!("{}login/{name}", request.mount),
            },
        );
        let outcome = if issued.is_ok() {
            Outcome::Success
        } else {
            Outcome::Error
        };
        login::record(&state, METHOD, &identity, address, outcome);
        issued
    })
}
