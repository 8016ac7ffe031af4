//! The built-in `agents/` backend: enrollment tokens, the registry, ping and revocation.
//!
//! Owns the HTTP surface of agents; the records live in `dispatch::registry` and live links
//! in the dispatcher. Must not touch QUIC directly.

use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};

use super::paths::{Field, FieldKind, HandlerFuture, Operation, PathSpec, Request};
use super::{ApiError, ApiResponse, AppState};
use crate::data_map;
use crate::dispatch::registry;

/// Longest an enrollment token may live.
const MAX_ENROLLMENT_TTL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_ENROLLMENT_TTL: Duration = Duration::from_secs(15 * 60);

const ENROLL_FIELDS: &[Field] = &[
    Field::new(
        "site",
        FieldKind::String,
        "the site the agent will serve (default: `default`, where hosts written without a site go when nothing else decides)",
    ),
    Field::new(
        "ttl",
        FieldKind::Duration,
        "how long the token is valid (default 15m, at most 24h)",
    ),
];

static PATHS: LazyLock<Vec<PathSpec>> = LazyLock::new(|| {
    vec![
        PathSpec::new(
            "",
            "Lists enrolled agents.",
            "Every enrolled agent's id, with its site and whether it is connected or revoked \
             in key_info.",
            &[],
            vec![(Operation::List, list as fn(_, _) -> _)],
        ),
        // Listed before `{id}`: an agent id is 16 generated hex digits, never `enroll`.
        PathSpec::new(
            "enroll",
            "Issues a one-time token that enrolls one agent into a site.",
            "Answers the token with the agent id it will enroll, the address agents dial and \
             the controller CA's fingerprint to pin. The token is stored only as a hash, used \
             once, and expires after ttl. Give it to rotor-agent enroll through \
             ROTOR_ENROLL_TOKEN.",
            ENROLL_FIELDS,
            vec![(Operation::Write, create_enrollment)],
        ),
        PathSpec::new(
            "{id}",
            "Reads or revokes an agent.",
            "A read answers the agent's site, certificate, whether it is connected, when it was \
             last seen and from where, its jobs in flight and the figures it last reported. A \
             delete revokes it: its link is closed and its certificate refused from then on.",
            &[],
            vec![(Operation::Read, read), (Operation::Delete, revoke)],
        ),
        PathSpec::new(
            "{id}/ping",
            "Round trip to a connected agent over its QUIC link.",
            "Sends a ping over the agent's link and answers the latency; a 400 when the agent \
             is not connected.",
            &[],
            vec![(Operation::Write, ping)],
        ),
    ]
});

pub fn paths() -> &'static [PathSpec] {
    &PATHS
}

fn rfc3339(unix: u64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn list(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let agents = registry::list_agents(&state.store)?;
        let mut keys = Vec::new();
        let mut info = serde_json::Map::new();
        for agent in agents {
            info.insert(
                agent.id.clone(),
                json!({
                    "site": agent.site,
                    "connected": state.dispatcher.live_status(&agent.id).is_some(),
                    "revoked": agent.revoked_unix.is_some(),
                }),
            );
            keys.push(agent.id);
        }
        let mut response = ApiResponse::keys(keys);
        if let Some(data) = response.data.as_mut() {
            data.insert("key_info".into(), Value::Object(info));
        }
        Ok(response)
    })
}

fn create_enrollment(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let site = request
            .string("site")?
            .filter(|site| !site.is_empty())
            .unwrap_or_else(|| crate::engines::os::site::DEFAULT_SITE.to_string());
        if !registry::is_valid_site_name(&site) {
            return Err(ApiError::bad_request(format!(
                "field 'site': '{site}' is not a valid site name ({})",
                registry::SITE_NAME_RULE
            )));
        }
        let ttl = request.duration("ttl")?.unwrap_or(DEFAULT_ENROLLMENT_TTL);
        if ttl.is_zero() || ttl > MAX_ENROLLMENT_TTL {
            return Err(ApiError::bad_request(
                "field 'ttl': an enrollment token lives between 1s and 24h",
            ));
        }
        let (token, record) = registry::create_enrollment_token(&state.store, &site, ttl)?;
        tracing::info!(site = %site, agent = %record.agent_id, ttl_secs = ttl.as_secs(), "enrollment token issued");
        Ok(ApiResponse::data(data_map! {
            "token" => token,
            "agent_id" => record.agent_id,
            "site" => site,
            "expires_at" => rfc3339(record.expires_unix),
            "ttl" => ttl.as_secs(),
            "controller_addr" => state.info.agent_address.clone(),
            "ca_fingerprint" => state.info.ca_fingerprint.clone(),
        }))
    })
}

fn read(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let id = request.param("id");
        let agent = registry::get_agent(&state.store, id)?
            .ok_or_else(|| ApiError::not_found(format!("no agent with id '{id}'")))?;
        let live = state.dispatcher.live_status(id);
        let not_after = u64::try_from(agent.certificate_not_after_unix).unwrap_or(0);
        let mut data = data_map! {
            "id" => agent.id,
            "site" => agent.site,
            "connected" => live.is_some(),
            "revoked" => agent.revoked_unix.is_some(),
            "agent_version" => live.as_ref().map(|l| l.agent_version.clone()).unwrap_or(agent.agent_version),
            "certificate_serial" => agent.certificate_serial,
            "certificate_expiry" => rfc3339(not_after),
            "enrolled_at" => rfc3339(agent.enrolled_unix),
        };
        let last_seen = live
            .as_ref()
            .map(|l| l.last_seen_unix)
            .or(agent.last_seen_unix);
        data.insert("last_seen".into(), json!(last_seen.map(rfc3339)));
        let remote = live
            .as_ref()
            .map(|l| l.remote_address.clone())
            .or(agent.last_remote_address);
        data.insert("remote_address".into(), json!(remote));
        data.insert(
            "jobs_in_flight".into(),
            json!(live.as_ref().map(|l| l.jobs_in_flight).unwrap_or(0)),
        );
        // The agent's own report over its link (null until it sends one, or when offline).
        let reported = live.and_then(|l| l.reported).map(|m| {
            json!({
                "uptime_seconds": m.uptime_secs,
                "resident_memory_bytes": m.rss_bytes,
                "peak_resident_memory_bytes": m.peak_rss_bytes,
                "jobs_running": m.jobs_running,
                "jobs_succeeded": m.jobs_succeeded,
                "jobs_failed": m.jobs_failed,
                "journal_unacknowledged": m.journal_unacknowledged,
                "links_established": m.links_established,
            })
        });
        data.insert("metrics".into(), json!(reported));
        if let Some(revoked) = agent.revoked_unix {
            data.insert("revoked_at".into(), json!(rfc3339(revoked)));
        }
        Ok(ApiResponse::data(data))
    })
}

fn revoke(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let id = request.param("id").to_string();
        if !state.dispatcher.revoke(&id)? {
            return Err(ApiError::not_found(format!("no agent with id '{id}'")));
        }
        tracing::warn!(agent = %id, "agent revoked");
        Ok(ApiResponse::empty())
    })
}

fn ping(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let id = request.param("id").to_string();
        if registry::get_agent(&state.store, &id)?.is_none() {
            return Err(ApiError::not_found(format!("no agent with id '{id}'")));
        }
        let latency =
            state.dispatcher.ping(&id).await.map_err(|error| {
                ApiError::bad_request(format!("cannot ping agent {id}: {error}"))
            })?;
        Ok(ApiResponse::data(data_map! {
            "id" => id,
            "latency_ms" => latency.as_secs_f64() * 1000.0,
            "latency" => format!("{:.3}ms", latency.as_secs_f64() * 1000.0),
        }))
    })
}
