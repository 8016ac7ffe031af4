//! Test support: the controller's services on an in-memory store, and calling a backend's
//! handlers through its path table with the matching and field validation the API runs,
//! without HTTP (as Vault's engine tests call the request handler on in-memory storage).
//!
//! Compiled only for tests. Does not check tokens or policies: callers pass the caller's
//! `TokenContext` (usually [`TokenContext::root_for_tests`]).

use std::sync::Arc;

use serde_json::Value;

use crate::api::paths::{Operation, PathSpec, Request, find, validate_fields};
use crate::api::{ApiError, ApiResponse, AppState, ServerInfo, Services, TokenContext};
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::store::{Sealer, Store};

/// Every service a handler can reach, over a fresh in-memory store, with no agents.
pub fn services() -> AppState {
    let store = Arc::new(Store::in_memory(Sealer::ephemeral()).expect("store"));
    let ca = Arc::new(crate::pki::load_or_create_ca(&store).expect("controller CA"));
    let dispatcher = Dispatcher::new(store.clone(), ca, DispatchSettings::default());
    let os = crate::engines::os::OsEngine::new(store.clone(), dispatcher.clone());
    Arc::new(
        Services::new(
            store,
            dispatcher,
            os,
            ServerInfo {
                agent_address: "127.0.0.1:0".into(),
                ca_fingerprint: String::new(),
                version: "test",
                dev_mode: true,
            },
        )
        .expect("services"),
    )
}

/// Calls `operation` on `path` (inside `mount`) of `table` as `token`, with `body` as the
/// request's data. Panics when the table has no such path or operation (a broken test).
pub async fn call_as(
    state: &AppState,
    token: TokenContext,
    table: &[PathSpec],
    mount: &str,
    operation: Operation,
    path: &str,
    body: Value,
) -> Result<ApiResponse, ApiError> {
    call_from(
        state,
        Some(token),
        table,
        mount,
        operation,
        path,
        body,
        None,
    )
    .await
}

/// [`call_as`] from the client address `remote`, with `token` `None` for an unauthenticated
/// path (a login).
#[allow(clippy::too_many_arguments)]
pub async fn call_from(
    state: &AppState,
    token: Option<TokenContext>,
    table: &[PathSpec],
    mount: &str,
    operation: Operation,
    path: &str,
    body: Value,
    remote: Option<std::net::IpAddr>,
) -> Result<ApiResponse, ApiError> {
    let matched = find(table, path).unwrap_or_else(|| panic!("no path {path}"));
    let handler = matched
        .spec
        .handler(operation)
        .unwrap_or_else(|| panic!("{path} has no {}", operation.name()));
    let data = body.as_object().cloned().unwrap_or_default();
    let mut request = Request::new(
        matched.spec,
        operation,
        mount.to_string(),
        path.to_string(),
        matched.params,
        data,
        token,
    );
    request.remote_address = remote;
    let warnings = validate_fields(&request)?;
    let mut response = handler(state.clone(), request).await?;
    response.warnings.extend(warnings);
    Ok(response)
}

/// [`call_as`] with a root token.
pub async fn call(
    state: &AppState,
    table: &[PathSpec],
    mount: &str,
    operation: Operation,
    path: &str,
    body: Value,
) -> Result<ApiResponse, ApiError> {
    let token = TokenContext::root_for_tests("accessor-1");
    call_as(state, token, table, mount, operation, path, body).await
}
