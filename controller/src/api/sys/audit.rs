//! Audit device paths: `sys/audit` (list), `sys/audit/<path>` (enable, disable) and
//! `sys/audit-hash/<path>` (the HMAC a device writes for a value, to search the log).
//!
//! Owns the HTTP surface; devices and logging are `audit::`. Must not write audit lines.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::audit::{AuditDeviceRecord, AuditError};
use crate::data_map;

const ENABLE_FIELDS: &[Field] = &[
    Field::new("type", FieldKind::String, "device type: file").required(),
    Field::new("description", FieldKind::String, "what the device is for"),
    Field::new(
        "options",
        FieldKind::Map,
        "file: file_path (a path, stdout or discard), mode (octal, default 0600)",
    ),
    Field::new("local", FieldKind::Bool, "accepted for Vault compatibility"),
];

const HASH_FIELDS: &[Field] = &[Field::new("input", FieldKind::String, "the value to hash")
    .required()
    .sensitive()];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![
        PathSpec::new(
            "audit",
            "Lists enabled audit devices (sudo).",
            "Every enabled audit device by its path, with its type, description and options. \
             Needs sudo, as in Vault.",
            &[],
            vec![(Operation::Read, list as fn(_, _) -> _)],
        )
        .sudo(&[Operation::Read]),
        PathSpec::new(
            "audit/{*path}",
            "Enables or disables an audit device (sudo).",
            "A write enables a device at the path (type file: options file_path, a path, stdout \
             or discard, and mode); a delete disables it. With devices enabled, a request runs \
             only once at least one device recorded it, and every string of its data is replaced \
             by the device's HMAC. Needs sudo, as in Vault.",
            ENABLE_FIELDS,
            vec![(Operation::Write, enable), (Operation::Delete, disable)],
        )
        .sudo(&[Operation::Write, Operation::Delete]),
        PathSpec::new(
            "audit-hash/{*path}",
            "The HMAC an audit device writes for a value.",
            "Answers the hash the device at the path would write for the input, so a known \
             value (a token, an account name) can be searched for in the log.",
            HASH_FIELDS,
            vec![(Operation::Write, hash)],
        ),
    ]
}

fn refused(error: AuditError) -> ApiError {
    match error {
        AuditError::Invalid(message) => ApiError::bad_request(message),
        AuditError::Store(error) => ApiError::from(error),
    }
}

fn device_json(record: &AuditDeviceRecord) -> Value {
    json!({
        "type": record.kind,
        "description": record.description,
        "options": record.options,
        "local": false,
        "path": record.path,
    })
}

fn list(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let devices: Map<String, Value> = state
            .audit
            .list()
            .iter()
            .map(|record| (record.path.clone(), device_json(record)))
            .collect();
        Ok(ApiResponse::data(devices))
    })
}

fn options(request: &Request) -> Result<BTreeMap<String, String>, ApiError> {
    let mut options = BTreeMap::new();
    if let Some(map) = request.object("options")? {
        for (key, value) in map {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Bool(_) | Value::Number(_) => value.to_string(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "field 'options': '{key}' must be a string"
                    )));
                }
            };
            options.insert(key.clone(), text);
        }
    }
    if options.get("log_raw").is_some_and(|raw| raw == "true") {
        return Err(ApiError::bad_request(
            "option 'log_raw': Rotor never writes secrets in clear to an audit log",
        ));
    }
    Ok(options)
}

fn enable(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let kind = request.required_string("type")?;
        let description = request.string("description")?.unwrap_or_default();
        let record = state
            .audit
            .enable(
                request.param("path"),
                &kind,
                &description,
                options(&request)?,
            )
            .map_err(refused)?;
        tracing::info!(path = %record.path, kind = %record.kind, "audit device enabled");
        Ok(ApiResponse::empty())
    })
}

fn disable(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let path = request.param("path").to_string();
        if state.audit.disable(&path).map_err(refused)? {
            tracing::warn!(path = %path, "audit device disabled");
        }
        Ok(ApiResponse::empty())
    })
}

fn hash(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let input = request.required_string("input")?;
        let hash = state
            .audit
            .hash(request.param("path"), &input)
            .map_err(refused)?;
        Ok(ApiResponse::data(data_map! { "hash" => hash }))
    })
}
