//! `sys/metrics` (Vault's path): Prometheus text with `format=prometheus`, else Vault's JSON.
//!
//! Owns the HTTP surface of metrics: reading the counters and the scrape-time gauges and
//! choosing the format. Counting and rendering are `metrics::`. Must not change any state.

use axum::http::StatusCode;

use crate::api::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::metrics::{self, fleet, render};

const METRICS_FIELDS: &[Field] = &[Field::new(
    "format",
    FieldKind::String,
    "'prometheus' for the Prometheus text format; JSON otherwise",
)];

pub(super) fn specs() -> Vec<PathSpec> {
    vec![PathSpec::new(
        "metrics",
        "The controller's metrics (rotations, verifications, agents, API requests).",
        "Counters since start (rotations by outcome and latency, verification logins, API \
         answers by status) and gauges read at scrape time (accounts by status, agents \
         enrolled and connected, dispatch queue depth and jobs in flight, each agent's own \
         figures). format=prometheus answers the Prometheus text format; otherwise Vault's \
         JSON.",
        METRICS_FIELDS,
        vec![(Operation::Read, read as fn(_, _) -> _)],
    )]
}

fn read(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let format = request.string("format")?.unwrap_or_default();
        let counters = metrics::global().snapshot();
        let mut gauges = fleet::read(&state.store, &state.dispatcher)?;
        gauges.leases_revocation_pending =
            u64::try_from(state.leases.revocations_pending()).unwrap_or(u64::MAX);
        match format.as_str() {
            "prometheus" => Ok(ApiResponse::raw_text(render::prometheus(
                &counters, &gauges,
            ))),
            "" | "json" => {
                let timestamp = chrono::Utc::now()
                    .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                    .to_string();
                Ok(ApiResponse::raw(
                    StatusCode::OK,
                    render::vault_json(&counters, &gauges, &timestamp),
                ))
            }
            other => Err(ApiError::bad_request(format!(
                "field 'format': unknown format '{other}'; use prometheus, or leave it out for JSON"
            ))),
        }
    })
}
