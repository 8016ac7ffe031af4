//! `sys/health` and the mount table `sys/mounts[/<path>]`.
//!
//! Owns `sys/health` (unauthenticated, Vault's status codes) and mounting. Must not hold
//! engine logic: mounting records a type, engines serve their own paths.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::engines::mounts::{self, MountRecord};

const MOUNT_FIELDS: &[Field] = &[
    Field::new(
        "type",
        FieldKind::String,
        "engine type: os (also vault-plugin-secrets-os) or ssh",
    )
    .required(),
    Field::new("description", FieldKind::String, "what the mount is for"),
    Field::new(
        "config",
        FieldKind::Map,
        "mount configuration (accepted, unused)",
    ),
    Field::new(
        "options",
        FieldKind::Map,
        "engine options (accepted, unused)",
    ),
    Field::new("local", FieldKind::Bool, "accepted for Vault compatibility"),
    Field::new(
        "seal_wrap",
        FieldKind::Bool,
        "accepted for Vault compatibility",
    ),
];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "health",
            "Whether the server is initialised, unsealed and active.",
            "Vault's health answer (initialized, sealed, standby, version, server time) for \
             load balancers and probes; served without a token and not audited.",
            &[],
            vec![(Operation::Read, health as fn(_, _) -> _)],
        )
        .unauthenticated(),
        PathSpec::new(
            "mounts",
            "Lists the mounted secrets engines.",
            "Every mount by its path (with a trailing slash), with its type and description.",
            &[],
            vec![(Operation::Read, list_mounts)],
        ),
        PathSpec::new(
            "mounts/{*path}",
            "Mounts, reads or unmounts a secrets engine at a path.",
            "A write mounts an engine type (os or ssh) at the path; a read answers its type and \
             description; a delete unmounts it. Engines serve their own paths under the mount.",
            MOUNT_FIELDS,
            vec![
                (Operation::Read, read_mount),
                (Operation::Write, enable_mount),
                (Operation::Delete, disable_mount),
            ],
        ),
    ]
}

fn health(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        // A store that cannot write is a server that cannot rotate: monitors must see it.
        // (Vault answers 503 when it cannot serve; the body says why.)
        let store = state.store.check_writable();
        let status = match &store {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut body = json!({
                "initialized": true,
                "sealed": false,
                "standby": false,
                "performance_standby": false,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": crate::tokens::now_unix(),
                "server_time": now,
                "version": state.info.version,
                "cluster_name": "rotor",
                "dev_mode": state.info.dev_mode,
        });
        if let Err(error) = store {
            body["store_error"] = Value::String(error.to_string());
        }
        Ok(ApiResponse::raw(status, body))
    })
}

fn mount_json(record: &MountRecord) -> Value {
    json!({
        "type": record.kind,
        "description": record.description,
        "accessor": record.accessor,
        "config": { "default_lease_ttl": 0, "max_lease_ttl": 0 },
        "options": Value::Null,
        "local": false,
        "seal_wrap": false,
    })
}

fn list_mounts(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut data = data_map! {
            "sys/" => json!({"type": "system", "description": "system endpoints", "accessor": "system", "config": {}, "options": Value::Null, "local": false, "seal_wrap": false}),
            "agents/" => json!({"type": "agents", "description": "agent enrollment and registry", "accessor": "agents", "config": {}, "options": Value::Null, "local": false, "seal_wrap": false}),
        };
        for record in mounts::list(&state.store)? {
            data.insert(record.path.clone(), mount_json(&record));
        }
        Ok(ApiResponse::data(data))
    })
}

fn read_mount(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let path = mounts::normalize_path(request.param("path"))?;
        let record = mounts::list(&state.store)?
            .into_iter()
            .find(|record| record.path == path)
            .ok_or_else(|| ApiError::bad_request(format!("no mount at {path}")))?;
        match mount_json(&record) {
            Value::Object(map) => Ok(ApiResponse::data(map)),
            _ => Err(ApiError::internal(
                "mount record did not render as an object",
            )),
        }
    })
}

fn enable_mount(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let kind = request.required_string("type")?;
        let description = request.string("description")?.unwrap_or_default();
        match mounts::enable(&state.store, request.param("path"), &kind, &description)? {
            mounts::Enabled::Mounted(record) => {
                tracing::info!(path = %record.path, kind = %record.kind, "mounted secrets engine");
                Ok(ApiResponse::empty())
            }
            mounts::Enabled::AlreadyMounted(record) => {
                Ok(ApiResponse::empty().with_warning(format!(
                    "{} is already mounted as type {}; nothing changed (os/ and ssh/ are mounted at initialisation)",
                    record.path, record.kind
                )))
            }
        }
    })
}

fn disable_mount(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let path = request.param("path").to_string();
        if mounts::disable(&state.store, &path)? {
            tracing::info!(path = %path, "unmounted secrets engine");
        }
        Ok(ApiResponse::empty())
    })
}
