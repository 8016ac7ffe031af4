//! `sys/auth` and `sys/auth/:path`: enabling, reading, listing and disabling auth methods
//! (`approle`, `userpass`); the token store is built in at `auth/token/` and always listed.
//!
//! Owns the HTTP surface of the auth mount table (`auth/mounts.rs`). Enabling and disabling
//! need `sudo`, as Vault's `sys/auth/*` is root-protected. Must not hold any method's logic.

use serde_json::{Value, json};

use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::auth::mounts::{self, AuthMountRecord};

const ENABLE_FIELDS: &[Field] = &[
    Field::new(
        "type",
        FieldKind::String,
        "auth method type: approle or userpass",
    )
    .required(),
    Field::new("description", FieldKind::String, "what the method is for"),
    Field::new(
        "config",
        FieldKind::Map,
        "mount configuration (accepted, unused)",
    ),
    Field::new(
        "options",
        FieldKind::Map,
        "method options (accepted, unused)",
    ),
    Field::new("local", FieldKind::Bool, "accepted for Vault compatibility"),
    Field::new(
        "seal_wrap",
        FieldKind::Bool,
        "accepted for Vault compatibility",
    ),
    Field::new(
        "plugin_name",
        FieldKind::String,
        "accepted for Vault compatibility (the type is the method)",
    ),
];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "auth",
            "Lists the enabled auth methods.",
            "Every auth method by its path under auth/ (with a trailing slash), with its type, \
             description and accessor; token/ is built in.",
            &[],
            vec![(Operation::Read, list as fn(_, _) -> _)],
        ),
        PathSpec::new(
            "auth/{*path}",
            "Enables, reads or disables an auth method at a path (sudo).",
            "A write enables a method type (approle, userpass) at auth/<path>/; a read answers \
             its type and description; a delete disables it and deletes its roles, secret IDs \
             and users (tokens it issued live on until revoked or expired). Needs sudo, as in \
             Vault.",
            ENABLE_FIELDS,
            vec![
                (Operation::Read, read),
                (Operation::Write, enable),
                (Operation::Delete, disable),
            ],
        )
        .sudo(&[Operation::Read, Operation::Write, Operation::Delete]),
    ]
}

fn mount_json(record: &AuthMountRecord) -> Value {
    json!({
        "type": record.kind,
        "description": record.description,
        "accessor": record.accessor,
        "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "token_type": "default-service" },
        "options": Value::Null,
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
    })
}

fn list(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut data = crate::data_map! {
            "token/" => json!({
                "type": "token",
                "description": "token based credentials",
                "accessor": "auth_token",
                "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "token_type": "default-service" },
                "options": Value::Null,
                "local": false,
                "seal_wrap": false,
                "external_entropy_access": false,
            }),
        };
        for record in mounts::list(&state.store)? {
            data.insert(record.path.clone(), mount_json(&record));
        }
        Ok(ApiResponse::data(data))
    })
}

fn read(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let path = mounts::normalize_path(request.param("path"))?;
        let record = mounts::list(&state.store)?
            .into_iter()
            .find(|record| record.path == path)
            .ok_or_else(|| ApiError::bad_request(format!("no auth method at auth/{path}")))?;
        match mount_json(&record) {
            Value::Object(map) => Ok(ApiResponse::data(map)),
            _ => Err(ApiError::internal("auth mount did not render as an object")),
        }
    })
}

fn enable(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let kind = request.required_string("type")?;
        let description = request.string("description")?.unwrap_or_default();
        let record = mounts::enable(&state.store, request.param("path"), &kind, &description)?;
        tracing::info!(path = %record.path, kind = %record.kind, "auth method enabled");
        Ok(ApiResponse::empty())
    })
}

fn disable(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let path = request.param("path").to_string();
        if mounts::disable(&state.store, &path)? {
            tracing::info!(path = %path, "auth method disabled");
        }
        Ok(ApiResponse::empty())
    })
}
