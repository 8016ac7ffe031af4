//! The HTTP API: Vault's request and response shapes over axum.
//!
//! Owns the one entry point for `/v1/...` and the order every request goes through: the
//! path made canonical once (`canonical.rs`; every later step reads only that spelling),
//! method to operation (`LIST` and `GET ?list=true` are lists), body parsing, finding the
//! backend that owns the path (built-in `sys/`, `auth/token/`, `agents/`, or a mounted engine)
//! and its path-table entry, token authentication before any routing answer (only a path the
//! table declares unauthenticated is served without a token, so an anonymous caller cannot map
//! the API by its 404s and 405s), the ACL check (the capability comes from
//! the operation, `create` or `update` from the entry's existence check, `sudo` when the entry
//! says the operation needs it), field validation, the audit request line (fail closed),
//! counting a limited-use token, the handler, the audit response line. A help request
//! (`?help=1`, Vault's) takes the same way but needs only a valid token, and its answer comes
//! from the entry (`help.rs`). Must not implement any path itself, nor know anything about a
//! path its table entry does not say: backends declare their paths in tables.

pub mod agents;
pub mod canonical;
pub mod connections;
pub mod envelope;
pub mod error;
pub mod help;
pub mod paths;
pub mod sys;
#[cfg(test)]
mod table_checks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub use envelope::ApiResponse;
pub use error::ApiError;
pub use paths::{ExistenceCheck, Operation, PathSpec, Request};

use crate::acl::{Acl, Capabilities, PolicyStore};
use crate::audit::{AuditAuth, AuditBroker, AuditRequest, AuditResponse};
use crate::auth;
use crate::dispatch::Dispatcher;
use crate::engines;
use crate::leases::LeaseManager;
use crate::store::Store;
use crate::tokens::{self, ClientToken, Revocation, TokenRecord, UseOutcome};

/// What every handler can reach.
pub struct Services {
    pub store: Arc<Store>,
    pub dispatcher: Dispatcher,
    pub os: crate::engines::os::OsEngine,
    pub info: ServerInfo,
    /// ACL policies (parsed and cached).
    pub policies: PolicyStore,
    /// Leases on issued secrets; engines register their secrets and revoke actions here.
    pub leases: LeaseManager,
    /// Enabled audit devices.
    pub audit: AuditBroker,
}

/// Why the core services could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoreStartError {
    #[error("loading policies: {0}")]
    Policies(#[from] crate::acl::store::PolicyStoreError),
    #[error("loading leases: {0}")]
    Leases(#[from] crate::leases::LeaseError),
    #[error("loading audit devices: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("indexing token accessors: {0}")]
    Tokens(#[from] crate::store::StoreError),
}

impl Services {
    /// Builds the services over `store`: creates the `default` policy when missing, loads
    /// leases and audit devices, indexes the accessors of tokens from older stores.
    pub fn new(
        store: Arc<Store>,
        dispatcher: Dispatcher,
        os: crate::engines::os::OsEngine,
        info: ServerInfo,
    ) -> Result<Self, CoreStartError> {
        let policies = PolicyStore::new(store.clone());
        policies.ensure_default()?;
        tokens::index_legacy_accessors(&store)?;
        let leases = LeaseManager::new(store.clone())?;
        let audit = AuditBroker::load(store.clone())?;
        Ok(Self {
            store,
            dispatcher,
            os,
            info,
            policies,
            leases,
            audit,
        })
    }
}

/// Facts about this server that answers quote.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Where agents dial (`host:port`), as told to enrolling agents.
    pub agent_address: String,
    /// SHA-256 fingerprint of the controller's CA, for pinning at enrollment.
    pub ca_fingerprint: String,
    pub version: &'static str,
    pub dev_mode: bool,
}

pub type AppState = Arc<Services>;

/// The caller, once its token checked out.
#[derive(Debug, Clone)]
pub struct TokenContext {
    pub accessor: String,
    pub policies: Vec<String>,
    /// The token as presented (redacting `Debug`), for `*-self` paths.
    pub client_token: ClientToken,
    /// The token's record as it was when the request arrived.
    pub record: TokenRecord,
    /// The merged rules of the token's policies.
    pub acl: Arc<Acl>,
}

impl TokenContext {
    fn new(client_token: ClientToken, record: TokenRecord, acl: Acl) -> Self {
        Self {
            accessor: record.accessor.clone(),
            policies: record.policies.clone(),
            client_token,
            record,
            acl: Arc::new(acl),
        }
    }

    /// A root caller for tests that call handlers directly.
    #[cfg(test)]
    pub fn root_for_tests(accessor: &str) -> Self {
        let record = TokenRecord {
            accessor: accessor.into(),
            policies: vec!["root".into()],
            display_name: "root".into(),
            created_unix: 0,
            parent_accessor: None,
            meta: Default::default(),
            num_uses: 0,
            creation_ttl_secs: 0,
            explicit_max_ttl_secs: 0,
            period_secs: 0,
            expire_unix: None,
            renewable: false,
            path: "auth/token/root".into(),
            last_renewal_unix: None,
        };
        Self::new(
            ClientToken::new("test-root-token".into()),
            record,
            Acl::new(&["root".into()], &[]),
        )
    }
}

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The HTTPS listener's routes: the web console under `/ui/` (a client of this same API,
/// see `ui/`), and everything else through [`serve`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .fallback(serve)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone())
        .merge(crate::ui::router(state))
}

fn request_id() -> String {
    crate::tokens::random_uuid()
}

fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(value.trim().to_string());
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_string())
}

fn operation_for(method: &Method, query: &HashMap<String, String>) -> Result<Operation, ApiError> {
    // Vault reads `list` with Go's strconv.ParseBool; hvac sends `list=True`.
    let listing = query
        .get("list")
        .is_some_and(|value| matches!(value.as_str(), "1" | "t" | "T" | "true" | "True" | "TRUE"));
    match method.as_str() {
        "GET" if listing => Ok(Operation::List),
        "GET" => Ok(Operation::Read),
        "LIST" => Ok(Operation::List),
        "POST" | "PUT" => Ok(Operation::Write),
        "DELETE" => Ok(Operation::Delete),
        other => Err(ApiError::method_not_allowed(format!(
            "unsupported HTTP method {other}: use GET, LIST, POST, PUT or DELETE"
        ))),
    }
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "failed to parse JSON input: the body must be a JSON object",
        )),
        Err(error) => Err(ApiError::bad_request(format!(
            "failed to parse JSON input: {error}"
        ))),
    }
}

/// Which backend owns a path, and the path inside it.
pub(crate) enum Route {
    Sys {
        rest: String,
    },
    Agents {
        rest: String,
    },
    /// `auth/token/...`.
    Token {
        rest: String,
    },
    Engine {
        mount: String,
        kind: String,
        rest: String,
    },
}

pub(crate) fn resolve(store: &Store, path: &str) -> Result<Route, ApiError> {
    if let Some(rest) = path
        .strip_prefix("sys/")
        .or(path.strip_prefix("sys").filter(|r| r.is_empty()))
    {
        return Ok(Route::Sys {
            rest: rest.to_string(),
        });
    }
    if path == "agents" || path.starts_with("agents/") {
        let rest = path
            .strip_prefix("agents")
            .unwrap_or("")
            .trim_start_matches('/');
        return Ok(Route::Agents {
            rest: rest.to_string(),
        });
    }
    if path == "auth" || path.starts_with("auth/") {
        let Some(rest) = path
            .strip_prefix(auth::TOKEN_MOUNT)
            .or(path.strip_prefix("auth/token").filter(|r| r.is_empty()))
        else {
            return Err(ApiError::not_found(format!(
                "no handler for route '{path}': Rotor has one auth method, auth/token/"
            )));
        };
        return Ok(Route::Token {
            rest: rest.to_string(),
        });
    }
    let mounts = engines::mounts::list(store)?;
    let best = mounts
        .into_iter()
        .filter(|mount| path == mount.path.trim_end_matches('/') || path.starts_with(&mount.path))
        .max_by_key(|mount| mount.path.len());
    match best {
        Some(mount) => {
            let rest = path
                .strip_prefix(mount.path.trim_end_matches('/'))
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string();
            Ok(Route::Engine {
                mount: mount.path,
                kind: mount.kind,
                rest,
            })
        }
        None => Err(ApiError::not_found(format!(
            "no handler for route '{path}': nothing is mounted there (see sys/mounts)"
        ))),
    }
}

/// A resolved backend: its table (which says everything the ACL needs to know).
struct Backend {
    mount: String,
    /// The audit log's `mount_type`.
    mount_type: String,
    rest: String,
    table: &'static [PathSpec],
}

fn backend(store: &Store, path: &str) -> Result<Backend, ApiError> {
    Ok(match resolve(store, path)? {
        Route::Sys { rest } => Backend {
            mount: "sys/".into(),
            mount_type: "system".into(),
            rest,
            table: sys::paths(),
        },
        Route::Agents { rest } => Backend {
            mount: "agents/".into(),
            mount_type: "agents".into(),
            rest,
            table: agents::paths(),
        },
        Route::Token { rest } => Backend {
            mount: auth::TOKEN_MOUNT.into(),
            mount_type: "token".into(),
            rest,
            table: auth::token::paths(),
        },
        Route::Engine { mount, kind, rest } => {
            let table = engines::paths(&kind).ok_or_else(|| {
                ApiError::internal(format!("mount {mount} has unknown type {kind}"))
            })?;
            Backend {
                mount,
                mount_type: kind,
                rest,
                table,
            }
        }
    })
}

async fn serve(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request_id = request_id();
    let raw_path = uri.path();
    // The one spelling of the path, made before anything reads it; the log line carries it
    // too (the path as routed and authorised, not as typed).
    let path = raw_path.strip_prefix("/v1/").map(canonical::canonical_path);
    let logged_path = match &path {
        Some(Ok(path)) => format!("/v1/{path}"),
        _ => raw_path.to_string(),
    };
    let remote = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    let call = Call {
        request_id: &request_id,
        method: &method,
        raw_path,
        path,
        query: &query,
        headers: &headers,
        body: &body,
        remote,
    };
    let result = handle(&state, call).await;
    let response = match result {
        Ok(answer) => answer.render(&request_id),
        Err(error) => error.into_response(),
    };
    crate::metrics::global().api_request(response.status().as_u16(), started.elapsed());
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %logged_path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "api request"
    );
    response
}

/// A request the process issues to its own API, as a client holding `token` would send it
/// over HTTP: the web console's way to the API (`ui/`). It goes through [`handle`], the
/// same pipeline as `/v1/` (canonical path, token, ACL, field checks, audit, use counting),
/// so the console can do nothing the token could not do with curl, and every call is audited
/// and logged like one from the network (`remote` is the browser's address).
pub struct InProcessCall<'a> {
    pub method: Method,
    /// The path inside `/v1/`, as a client would type it.
    pub path: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    /// The JSON body (`None`: none).
    pub body: Option<&'a Value>,
    pub token: &'a ClientToken,
    pub remote: Option<String>,
}

/// Runs an [`InProcessCall`] through the `/v1/` pipeline and answers what a client would
/// get (before rendering it as HTTP).
pub async fn call_as(state: &AppState, call: InProcessCall<'_>) -> Result<ApiResponse, ApiError> {
    let started = Instant::now();
    let request_id = request_id();
    let raw_path = format!("/v1/{}", call.path);
    let path = canonical::canonical_path(call.path);
    let logged_path = match &path {
        Ok(path) => format!("/v1/{path}"),
        Err(_) => raw_path.clone(),
    };
    let query: HashMap<String, String> = call
        .query
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let mut headers = HeaderMap::new();
    let token = axum::http::HeaderValue::from_str(call.token.expose())
        .map_err(|_| ApiError::permission_denied())?;
    headers.insert("x-vault-token", token);
    let body = match call.body {
        Some(value) => Bytes::from(value.to_string()),
        None => Bytes::new(),
    };
    let result = handle(
        state,
        Call {
            request_id: &request_id,
            method: &call.method,
            raw_path: &raw_path,
            path: Some(path),
            query: &query,
            headers: &headers,
            body: &body,
            remote: call.remote,
        },
    )
    .await;
    let status = match &result {
        Ok(_) => 200,
        Err(error) => error.status.as_u16(),
    };
    crate::metrics::global().api_request(status, started.elapsed());
    tracing::info!(
        request_id = %request_id,
        method = %call.method,
        path = %logged_path,
        status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        via = "console",
        "api request"
    );
    result
}

/// One HTTP request, as it arrived.
struct Call<'a> {
    request_id: &'a str,
    method: &'a Method,
    raw_path: &'a str,
    /// The canonical path inside `/v1/` (`None`: the request is not under `/v1/`).
    path: Option<Result<String, ApiError>>,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    remote: Option<String>,
}

/// A request that passed authentication and the ACL, ready to run.
struct Prepared {
    action: Action,
    /// The caller's accessor (`None`: an unauthenticated path).
    caller_accessor: Option<String>,
    /// The caller's token store key, when its uses are counted.
    counted_token: Option<String>,
    /// Unknown fields the validator found, for the answer's warnings.
    warnings: Vec<String>,
}

/// What a prepared request does.
enum Action {
    /// Runs the path's handler.
    Handle(paths::Handler, Box<Request>),
    /// Answers from the path table alone (help).
    Answer(ApiResponse),
}

impl Action {
    async fn run(self, state: &AppState) -> Result<ApiResponse, ApiError> {
        match self {
            Action::Handle(handler, request) => handler(state.clone(), *request).await,
            Action::Answer(response) => Ok(response),
        }
    }
}

/// Whether the caller asks for a path's help: `?help=` with any value, or the `HELP` method,
/// as Vault's `wrapHelpHandler` reads it.
fn wants_help(method: &Method, query: &HashMap<String, String>) -> bool {
    method.as_str() == "HELP" || query.get("help").is_some_and(|value| !value.is_empty())
}

async fn handle(state: &AppState, call: Call<'_>) -> Result<ApiResponse, ApiError> {
    let Some(path) = call.path else {
        return Err(ApiError::not_found(format!(
            "no handler for {}: the API lives under /v1/",
            call.raw_path
        )));
    };
    let path = path?;
    // `None`: help, which reads nothing from the body or the query.
    let operation = if wants_help(call.method, call.query) {
        None
    } else {
        match operation_for(call.method, call.query) {
            Ok(operation) => Some(operation),
            Err(error) => {
                // Whether a method is supported is no business of a caller the path is closed to.
                let caller = authenticate(state, call.headers)?;
                let granted = caller.acl.capabilities(&path).normalized();
                if granted.is_empty() || granted.contains(Capabilities::DENY) {
                    return Err(ApiError::permission_denied());
                }
                return Err(error);
            }
        }
    };
    let mut data = match operation {
        Some(_) => parse_body(call.body)?,
        None => Map::new(),
    };
    if operation == Some(Operation::Read) {
        for (key, value) in call.query {
            data.entry(key.clone())
                .or_insert_with(|| Value::String(value.clone()));
        }
    }
    // Vault does not audit health checks; neither do we (load balancers poll it).
    let audited = path != "sys/health";
    let mut entry = AuditRequest {
        id: call.request_id.to_string(),
        operation: operation.map_or("help", Operation::name),
        mount_type: String::new(),
        path: path.clone(),
        data: if audited { data.clone() } else { Map::new() },
        remote_address: call.remote.clone(),
        auth: None,
    };
    let prepared = prepare(state, &path, operation, data, call.headers, &mut entry);
    if !audited {
        let prepared = prepared?;
        let mut response = prepared.action.run(state).await?;
        response.warnings.extend(prepared.warnings);
        return Ok(response);
    }
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let receipt = state.audit.log_request(&entry, Some(&error.message))?;
            state.audit.log_response(
                &receipt,
                &entry,
                &AuditResponse::default(),
                Some(&error.message),
            )?;
            return Err(error);
        }
    };
    // Fail closed: nothing below runs unless an enabled device recorded the request.
    let receipt = state.audit.log_request(&entry, None)?;
    let mut last_use = false;
    if let Some(key) = &prepared.counted_token {
        // Every way out after the request line writes its response line.
        let refusal = match tokens::use_once(&state.store, key) {
            Ok(UseOutcome::Counted) => None,
            Ok(UseOutcome::LastUse) => {
                last_use = true;
                None
            }
            Ok(UseOutcome::Exhausted) => Some(ApiError::permission_denied()),
            Err(error) => Some(ApiError::from(error)),
        };
        if let Some(error) = refusal {
            state.audit.log_response(
                &receipt,
                &entry,
                &AuditResponse::default(),
                Some(&error.message),
            )?;
            return Err(error);
        }
    }
    let caller_accessor = prepared.caller_accessor;
    let mut result = prepared.action.run(state).await;
    if let Ok(response) = &mut result {
        response.warnings.extend(prepared.warnings);
    }
    if last_use
        && let Some(accessor) = caller_accessor
        && let Err(error) = auth::revoke_token(state, &accessor, Revocation::Tree)
    {
        // The token is already unusable (use_once marked it expired); the sweeper revokes
        // it and its children and leases. The request ran, so it still gets its answer and
        // its audit response line.
        tracing::error!(error = %error.message, "revoking a used-up token failed; the token sweeper will retry");
    }
    match &result {
        Ok(response) => {
            let raw = match (&response.raw, &response.raw_text) {
                (Some((_, body)), _) => Some(body.clone()),
                (None, Some(text)) => Some(Value::String(text.clone())),
                (None, None) => None,
            };
            let audited_response = AuditResponse {
                data: response.data.as_ref(),
                raw,
                auth: response.auth.as_ref(),
                lease_id: &response.lease_id,
                lease_duration: response.lease_duration,
                renewable: response.renewable,
                warnings: &response.warnings,
            };
            state
                .audit
                .log_response(&receipt, &entry, &audited_response, None)?;
        }
        Err(error) => state.audit.log_response(
            &receipt,
            &entry,
            &AuditResponse::default(),
            Some(&error.message),
        )?,
    }
    result
}

/// Everything before the handler: route, match, authenticate, authorise, validate.
/// `operation` is `None` for help, which any valid token may read on any path (Vault's ACL
/// always allows help) and which needs a token even on an unauthenticated path.
fn prepare(
    state: &AppState,
    path: &str,
    operation: Option<Operation>,
    data: Map<String, Value>,
    headers: &HeaderMap,
    entry: &mut AuditRequest,
) -> Result<Prepared, ApiError> {
    let routed = backend(&state.store, path).and_then(|backend| {
        let matched = paths::find(backend.table, &backend.rest)
            .ok_or_else(|| ApiError::not_found(format!("unsupported path '{path}'")))?;
        Ok((backend, matched))
    });
    let unauthenticated =
        operation.is_some() && matches!(&routed, Ok((_, matched)) if matched.spec.unauthenticated);
    let token = if unauthenticated {
        None
    } else {
        let token = authenticate(state, headers)?;
        entry.auth = Some(AuditAuth {
            client_token: token.client_token.expose().to_string(),
            accessor: token.accessor.clone(),
            display_name: token.record.display_name.clone(),
            policies: token.policies.clone(),
            metadata: token.record.meta.clone(),
            token_ttl_secs: token.record.creation_ttl_secs,
            token_issue_unix: token.record.created_unix,
        });
        Some(token)
    };
    let (backend, matched) = match routed {
        Ok(found) => found,
        Err(error) => {
            if let Some(operation) = operation {
                refuse_unless_reachable(token.as_ref(), path, operation)?;
            }
            return Err(error);
        }
    };
    entry.mount_type = backend.mount_type.clone();
    let spec = matched.spec;
    let counted_token = token
        .as_ref()
        .filter(|token| token.record.num_uses > 0)
        .map(|token| tokens::token_key(token.client_token.expose()));
    let caller_accessor = token.as_ref().map(|token| token.accessor.clone());
    let Some(operation) = operation else {
        return Ok(Prepared {
            action: Action::Answer(help::answer(spec, &backend.mount, &backend.rest)),
            caller_accessor,
            counted_token,
            warnings: Vec::new(),
        });
    };
    let handler = spec.handler(operation).ok_or_else(|| {
        if let Err(denied) = refuse_unless_reachable(token.as_ref(), path, operation) {
            return denied;
        }
        let allowed: Vec<&str> = spec.operations.iter().map(|(op, _)| op.name()).collect();
        ApiError::method_not_allowed(format!(
            "'{path}' does not support {}; it supports: {}",
            operation.name(),
            allowed.join(", ")
        ))
    })?;
    let request = Request::new(
        spec,
        operation,
        backend.mount.clone(),
        backend.rest.clone(),
        matched.params,
        data,
        token,
    );
    let needed = needed_capability(state, spec, &request)?;
    entry.operation = vault_operation_name(needed);
    if let Some(caller) = &request.token {
        authorize(spec, path, operation, needed, &caller.acl)?;
    }
    let warnings = paths::validate_fields(&request)?;
    Ok(Prepared {
        action: Action::Handle(handler, Box::new(request)),
        caller_accessor,
        counted_token,
        warnings,
    })
}

/// Before a routing answer (404, 405) goes to a caller, its policies must reach the path with
/// some capability the operation could use: otherwise it learns of the API's shape through
/// errors it had no right to see, and gets the 403 it would get on a real path.
fn refuse_unless_reachable(
    caller: Option<&TokenContext>,
    path: &str,
    operation: Operation,
) -> Result<(), ApiError> {
    let Some(caller) = caller else {
        return Ok(());
    };
    let acl_path = if operation == Operation::List {
        format!("{path}/")
    } else {
        path.to_string()
    };
    let granted = caller.acl.capabilities(&acl_path);
    let reachable = match operation {
        Operation::Read => granted.allows(Capabilities::READ),
        Operation::List => granted.allows(Capabilities::LIST),
        Operation::Delete => granted.allows(Capabilities::DELETE),
        Operation::Write => {
            granted.allows(Capabilities::CREATE) || granted.allows(Capabilities::UPDATE)
        }
    };
    if reachable {
        Ok(())
    } else {
        Err(ApiError::permission_denied())
    }
}

/// The capability an operation needs: reads read, lists list, deletes delete; a write needs
/// `create` when the path's existence check says the resource is new, else `update`.
fn needed_capability(
    state: &AppState,
    spec: &PathSpec,
    request: &Request,
) -> Result<Capabilities, ApiError> {
    Ok(match request.operation {
        Operation::Read => Capabilities::READ,
        Operation::List => Capabilities::LIST,
        Operation::Delete => Capabilities::DELETE,
        Operation::Write => match spec.existence {
            Some(exists) if !exists(state, request)? => Capabilities::CREATE,
            _ => Capabilities::UPDATE,
        },
    })
}

fn vault_operation_name(needed: Capabilities) -> &'static str {
    match needed {
        Capabilities::READ => "read",
        Capabilities::LIST => "list",
        Capabilities::DELETE => "delete",
        Capabilities::CREATE => "create",
        _ => "update",
    }
}

/// The ACL check: the needed capability on the full path (lists end in `/`, as in Vault),
/// plus `sudo` when the path's table entry says the operation needs it.
fn authorize(
    spec: &PathSpec,
    path: &str,
    operation: Operation,
    needed: Capabilities,
    acl: &Acl,
) -> Result<(), ApiError> {
    let acl_path = if operation == Operation::List {
        format!("{path}/")
    } else {
        path.to_string()
    };
    let granted = acl.capabilities(&acl_path);
    let needed = if spec.needs_sudo(operation) {
        needed.union(Capabilities::SUDO)
    } else {
        needed
    };
    if granted.allows(needed) {
        Ok(())
    } else {
        Err(ApiError::permission_denied())
    }
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<TokenContext, ApiError> {
    let token = token_from_headers(headers).ok_or_else(ApiError::permission_denied)?;
    let found = tokens::lookup(&state.store, &token, tokens::now_unix())?
        .ok_or_else(ApiError::permission_denied)?;
    let acl = state
        .policies
        .acl(&found.record.policies)
        .map_err(|error| {
            ApiError::internal(format!(
                "cannot evaluate the token's policies: {error}; fix or delete the policy"
            ))
        })?;
    Ok(TokenContext::new(
        ClientToken::new(token),
        found.record,
        acl,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::PathPattern;

    /// The root-protected paths as `sys/` and `auth/token/` listed them (ACL globs over the
    /// path inside the backend, a list's with a trailing `/`) before entries carried `sudo`.
    const FORMER_SYS_ROOT_PATHS: &[&str] = &[
        "audit",
        "audit/*",
        "leases/revoke-prefix/*",
        "leases/revoke-force/*",
        "leases/lookup/*",
    ];
    const FORMER_TOKEN_ROOT_PATHS: &[&str] = &["revoke-orphan*", "accessors*"];

    /// Paths a pattern matches: each `{x}` a sample, a `{*rest}` one or two segments.
    fn samples(pattern: &str) -> Vec<String> {
        let base: Vec<&str> = pattern
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "sample"
                } else {
                    segment
                }
            })
            .collect();
        let mut paths = vec![base.join("/")];
        if pattern.contains("{*") {
            paths.push(format!("{}/deeper", base.join("/")));
        }
        paths
    }

    /// Entries' `sudo` asks for it on exactly the requests the former glob lists did.
    #[test]
    fn sudo_on_entries_matches_the_former_root_path_lists() {
        for (table, former) in [
            (sys::paths(), FORMER_SYS_ROOT_PATHS),
            (auth::token::paths(), FORMER_TOKEN_ROOT_PATHS),
            (agents::paths(), &[][..]),
        ] {
            for spec in table {
                for (operation, _) in &spec.operations {
                    for rest in samples(spec.pattern) {
                        assert!(
                            paths::find(table, &rest)
                                .is_some_and(|m| m.spec.pattern == spec.pattern),
                            "{rest} does not route to {}",
                            spec.pattern
                        );
                        let acl_rest = if *operation == Operation::List {
                            format!("{rest}/")
                        } else {
                            rest.clone()
                        };
                        let formerly = former
                            .iter()
                            .any(|glob| PathPattern::parse(glob).expect("glob").matches(&acl_rest));
                        assert_eq!(
                            spec.needs_sudo(*operation),
                            formerly,
                            "{} {rest}",
                            operation.name()
                        );
                    }
                }
            }
        }
        for kind in ["os", "ssh"] {
            let table = engines::paths(kind).expect("table");
            assert!(table.iter().all(|spec| spec.sudo.is_empty()), "{kind}");
        }
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    /// `?list=` is read as Go's ParseBool reads it (hvac sends `list=True`).
    #[test]
    fn list_query_accepts_gos_boolean_spellings() {
        for spelling in ["1", "t", "T", "true", "True", "TRUE"] {
            assert_eq!(
                operation_for(&Method::GET, &query(&[("list", spelling)])).expect("op"),
                Operation::List,
                "list={spelling}"
            );
        }
        for spelling in ["0", "false", "False", "no", ""] {
            assert_eq!(
                operation_for(&Method::GET, &query(&[("list", spelling)])).expect("op"),
                Operation::Read,
                "list={spelling}"
            );
        }
        let method = Method::from_bytes(b"LIST").expect("method");
        assert_eq!(
            operation_for(&method, &query(&[])).expect("op"),
            Operation::List
        );
    }

    /// Runs one request through `handle` (everything but the HTTP listener).
    async fn call(
        state: &AppState,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
    ) -> Result<ApiResponse, ApiError> {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            headers.insert("x-vault-token", token.parse().expect("header"));
        }
        let raw_path = format!("/v1/{path}");
        let call = Call {
            request_id: "request-1",
            method: &method,
            raw_path: &raw_path,
            path: Some(canonical::canonical_path(path)),
            query: &query,
            headers: &headers,
            body: &Bytes::new(),
            remote: None,
        };
        handle(state, call).await
    }

    fn help_of(response: &ApiResponse) -> String {
        let (status, body) = response.raw.as_ref().expect("a raw body");
        assert_eq!(*status, axum::http::StatusCode::OK);
        assert!(body["openapi"]["paths"].is_object(), "{body}");
        body["help"].as_str().expect("help text").to_string()
    }

    /// `?help=1` answers the table entry's help to any valid token, even one whose policies
    /// grant nothing on the path (Vault's ACL always allows help); never without a token.
    #[tokio::test]
    async fn help_comes_from_the_table_for_any_token() {
        let state = crate::testing::services();
        engines::mounts::enable(&state.store, "os", "os", "").expect("mount");
        tokens::store_root_token(&state.store, "root-token-1").expect("root");
        let mut record = TokenContext::root_for_tests("accessor-default").record;
        record.policies = vec!["default".into()];
        tokens::insert(&state.store, "default-token-1", &record).expect("token");

        let help = help_of(
            &call(
                &state,
                "GET",
                "os/hosts/web-01",
                &[("help", "1")],
                Some("root-token-1"),
            )
            .await
            .expect("help"),
        );
        assert!(
            help.contains("Request:        hosts/web-01\nMatching Route: hosts/{host}\n"),
            "{help}"
        );
        assert!(help.contains("\n    ssh_host_key (string)\n"), "{help}");
        assert!(help.contains("## DESCRIPTION"), "{help}");

        // A token that may not read the path still gets its help, as in Vault.
        let denied = call(
            &state,
            "GET",
            "os/hosts/web-01",
            &[],
            Some("default-token-1"),
        )
        .await;
        assert_eq!(denied.expect_err("denied").status.as_u16(), 403);
        let help = help_of(
            &call(
                &state,
                "GET",
                "os/hosts/web-01/accounts/app",
                &[("help", "1")],
                Some("default-token-1"),
            )
            .await
            .expect("help"),
        );
        assert!(help.contains("\n    lazy_rotation (bool)\n"), "{help}");

        // The HELP method too, and on an unauthenticated path; but never without a token.
        let help = help_of(
            &call(&state, "HELP", "sys/health", &[], Some("root-token-1"))
                .await
                .expect("help"),
        );
        assert!(help.contains("Matching Route: health"), "{help}");
        let anonymous = call(&state, "GET", "sys/health", &[("help", "1")], None).await;
        assert_eq!(anonymous.expect_err("no token").status.as_u16(), 403);
        let bad = call(
            &state,
            "GET",
            "sys/health",
            &[("help", "1")],
            Some("not-a-token"),
        )
        .await;
        assert_eq!(bad.expect_err("bad token").status.as_u16(), 403);

        // No path there: Vault's "unsupported path".
        let missing = call(
            &state,
            "GET",
            "os/nothing/here",
            &[("help", "1")],
            Some("root-token-1"),
        )
        .await;
        assert_eq!(missing.expect_err("missing").status.as_u16(), 404);
        // An empty help= is no help request.
        let read = call(&state, "GET", "sys/health", &[("help", "")], None).await;
        assert!(read.expect("health").raw.is_some());
    }

    /// A handler that reads a field its entry does not declare fails loudly in debug builds.
    #[tokio::test]
    async fn undeclared_reads_are_internal_errors_naming_path_and_field() {
        fn reads_undeclared(_state: AppState, request: Request) -> paths::HandlerFuture {
            Box::pin(async move {
                request.bool("lazy")?;
                Ok(ApiResponse::empty())
            })
        }
        let table = vec![PathSpec::new(
            "things/{name}",
            "s",
            "d",
            &[],
            vec![(Operation::Write, reads_undeclared as fn(_, _) -> _)],
        )];
        let table: &'static [PathSpec] = Box::leak(table.into_boxed_slice());
        let state = crate::testing::services();
        let error = crate::testing::call(
            &state,
            table,
            "x/",
            Operation::Write,
            "things/a",
            serde_json::json!({"lazy": true}),
        )
        .await
        .expect_err("undeclared");
        assert_eq!(error.status.as_u16(), 500);
        assert!(
            error.message.contains("'things/{name}'") && error.message.contains("'lazy'"),
            "{}",
            error.message
        );
    }
}
