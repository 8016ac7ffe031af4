//! userpass users: `users/:username` (create, update, read, delete), `users` (list),
//! `users/:username/password` and `users/:username/policies`.
//!
//! Owns the user record: a password only as its argon2id hash (`password.rs`), never
//! answered, and the token settings a login earns. Must not log anyone in (`login.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use rotor_common::names::validate_object_name;

use super::{password, store_prefix, user_key};
use crate::api::paths::{HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::auth::login::TokenSettings;
use crate::store::Table;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub name: String,
    /// The PHC string of the password's argon2id hash.
    pub password_hash: String,
    #[serde(flatten)]
    pub token: TokenSettings,
}

/// User names are path segments and case-insensitive, as in Vault (stored lower-case).
pub fn user_name(request: &Request) -> Result<String, ApiError> {
    let name = request.param("username").to_ascii_lowercase();
    validate_object_name("user", &name)
        .map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
    Ok(name)
}

pub fn read_user(
    state: &AppState,
    prefix: &str,
    name: &str,
) -> Result<Option<UserRecord>, ApiError> {
    Ok(state
        .store
        .get(Table::AuthRecords, &user_key(prefix, name))?)
}

pub fn user_exists(state: &AppState, request: &Request) -> Result<bool, ApiError> {
    let name = user_name(request)?;
    Ok(read_user(state, &store_prefix(request), &name)?.is_some())
}

/// Hashes off the async workers: argon2id costs tens of milliseconds of one core.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    if password.is_empty() {
        return Err(ApiError::bad_request("field 'password': must not be empty"));
    }
    let password = zeroize::Zeroizing::new(password);
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|error| ApiError::internal(format!("password hashing task failed: {error}")))?
        .map_err(ApiError::internal)
}

pub fn write_user(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = user_name(&request)?;
        let prefix = store_prefix(&request);
        let existing = read_user(&state, &prefix, &name)?;
        let password = request
            .string("password")?
            .filter(|password| !password.is_empty());
        let password_hash = match (password, &existing) {
            (Some(password), _) => hash_password(password).await?,
            (None, Some(existing)) => existing.password_hash.clone(),
            (None, None) => return Err(ApiError::bad_request("missing password")),
        };
        let mut user = existing.clone().unwrap_or(UserRecord {
            name: name.clone(),
            password_hash: String::new(),
            token: TokenSettings::default(),
        });
        user.password_hash = password_hash;
        user.token.update_from(&request)?;
        state
            .store
            .write(|tx| tx.put(Table::AuthRecords, &user_key(&prefix, &name), &user))?;
        tracing::info!(mount = %request.mount, user = %name, created = existing.is_none(), "userpass user written");
        Ok(ApiResponse::empty())
    })
}

pub fn read(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = user_name(&request)?;
        let user = read_user(&state, &store_prefix(&request), &name)?
            .ok_or_else(|| ApiError::not_found(format!("user \"{name}\" does not exist")))?;
        let mut data = Map::new();
        user.token.render_into(&mut data);
        Ok(ApiResponse::data(data))
    })
}

pub fn list(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let prefix = user_key(&store_prefix(&request), "");
        let keys: Vec<String> = state
            .store
            .scan::<Value>(Table::AuthRecords, &prefix)?
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(String::from))
            .collect();
        Ok(ApiResponse::keys(keys))
    })
}

pub fn delete(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let name = user_name(&request)?;
        let key = user_key(&store_prefix(&request), &name);
        state
            .store
            .write(|tx| tx.delete(Table::AuthRecords, &key))?;
        Ok(ApiResponse::empty())
    })
}

fn existing_user(state: &AppState, request: &Request) -> Result<UserRecord, ApiError> {
    let name = user_name(request)?;
    read_user(state, &store_prefix(request), &name)?
        .ok_or_else(|| ApiError::bad_request(format!("user \"{name}\" does not exist")))
}

pub fn write_password(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut user = existing_user(&state, &request)?;
        user.password_hash = hash_password(request.required_string("password")?).await?;
        let key = user_key(&store_prefix(&request), &user.name);
        state
            .store
            .write(|tx| tx.put(Table::AuthRecords, &key, &user))?;
        Ok(ApiResponse::empty())
    })
}

pub fn write_policies(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut user = existing_user(&state, &request)?;
        let policies = match request.string_list("token_policies")? {
            Some(policies) => policies,
            None => request.string_list("policies")?.unwrap_or_default(),
        };
        user.token.token_policies = crate::tokens::sanitize_policies(&policies, false);
        let key = user_key(&store_prefix(&request), &user.name);
        state
            .store
            .write(|tx| tx.put(Table::AuthRecords, &key, &user))?;
        Ok(ApiResponse::empty())
    })
}
