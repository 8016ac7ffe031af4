//! `sys/capabilities-self`, `sys/capabilities` and `sys/capabilities-accessor`: what a token
//! may do on some paths, from its policies alone.
//!
//! Owns the answers' shape (`{"<path>": [...], "capabilities": [...]}` for one path, as Vault
//! gives). Must not evaluate anything itself: `Acl::capabilities` does.

use serde_json::{Map, Value, json};

use crate::acl::Acl;
use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::tokens;

const SELF_FIELDS: &[Field] = &[
    Field::new("paths", FieldKind::StringList, "the paths to check"),
    Field::new("path", FieldKind::StringList, "older name of 'paths'"),
];

const TOKEN_FIELDS: &[Field] = &[
    Field::new("token", FieldKind::String, "the token to check").sensitive(),
    Field::new("paths", FieldKind::StringList, "the paths to check"),
    Field::new("path", FieldKind::StringList, "older name of 'paths'"),
];

const ACCESSOR_FIELDS: &[Field] = &[
    Field::new(
        "accessor",
        FieldKind::String,
        "the accessor of the token to check",
    ),
    Field::new("paths", FieldKind::StringList, "the paths to check"),
    Field::new("path", FieldKind::StringList, "older name of 'paths'"),
];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "capabilities-self",
            "The caller's capabilities on paths.",
            "For each path, the capabilities the caller's policies grant there (deny wins; \
             root is everything), as Vault answers.",
            SELF_FIELDS,
            vec![(Operation::Write, capabilities_self as fn(_, _) -> _)],
        ),
        PathSpec::new(
            "capabilities",
            "A token's capabilities on paths.",
            "For each path, the capabilities the given token's policies grant there.",
            TOKEN_FIELDS,
            vec![(Operation::Write, capabilities_of_token)],
        ),
        PathSpec::new(
            "capabilities-accessor",
            "The capabilities, on paths, of the token an accessor names.",
            "For each path, the capabilities granted there to the token the accessor names, \
             without its value.",
            ACCESSOR_FIELDS,
            vec![(Operation::Write, capabilities_of_accessor)],
        ),
    ]
}

fn requested_paths(request: &Request) -> Result<Vec<String>, ApiError> {
    let paths = match request.string_list("paths")? {
        Some(paths) if !paths.is_empty() => paths,
        _ => request.string_list("path")?.unwrap_or_default(),
    };
    if paths.is_empty() {
        return Err(ApiError::bad_request(
            "missing required field 'paths': the paths to check",
        ));
    }
    Ok(paths)
}

fn answer(acl: &Acl, paths: &[String]) -> ApiResponse {
    let mut data = Map::new();
    let mut last = Value::Null;
    for path in paths {
        let names: Vec<&str> = if acl.is_root() {
            vec!["root"]
        } else {
            acl.capabilities(path.trim_start_matches('/')).names()
        };
        last = json!(names);
        data.insert(path.clone(), last.clone());
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), last);
    }
    ApiResponse::data(data)
}

fn capabilities_self(_state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let caller = request
            .token
            .as_ref()
            .ok_or_else(ApiError::permission_denied)?;
        Ok(answer(&caller.acl, &requested_paths(&request)?))
    })
}

fn acl_of(state: &AppState, policies: &[String]) -> Result<Acl, ApiError> {
    state
        .policies
        .acl(policies)
        .map_err(|error| ApiError::internal(format!("cannot load policies: {error}")))
}

fn capabilities_of_token(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let token = request.required_string("token")?;
        let found = tokens::lookup(&state.store, &token, tokens::now_unix())?
            .ok_or_else(|| ApiError::bad_request("invalid token: no live token has that value"))?;
        let acl = acl_of(&state, &found.record.policies)?;
        Ok(answer(&acl, &requested_paths(&request)?))
    })
}

fn capabilities_of_accessor(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let accessor = request.required_string("accessor")?;
        let found = tokens::lookup_accessor(&state.store, &accessor, tokens::now_unix())?
            .ok_or_else(|| ApiError::bad_request("invalid accessor: no live token has it"))?;
        let acl = acl_of(&state, &found.record.policies)?;
        Ok(answer(&acl, &requested_paths(&request)?))
    })
}
