//! The agent's link to the controller: dial out over mutual-TLS QUIC, say Hello, keep the
//! connection alive with heartbeats, take pushed jobs, and reconnect with jittered
//! exponential backoff when anything breaks.
//!
//! Owns the connection lifecycle and job intake (one stream per job, deduplicated by the
//! journal). Must not know what a job does (`handlers`) or how results persist (`journal`).

mod backoff;
mod session;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::identity::Identity;
use crate::journal::Journal;
pub use backoff::Backoff;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("agent {agent}: the controller refused this agent for good: {reason}")]
    PermanentlyRefused { agent: String, reason: String },
    #[error("agent: {0}")]
    Setup(String),
}

/// Resolves `host:port` to one address, with a timeout.
pub async fn resolve_controller(controller: &str) -> Result<SocketAddr, String> {
    let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(controller))
        .await
        .map_err(|_| format!("resolving {controller} timed out"))?
        .map_err(|error| format!("cannot resolve {controller}: {error} (expected host:port)"))?;
    let mut addresses: Vec<SocketAddr> = lookup.collect();
    addresses.sort_by_key(|address| address.is_ipv6());
    addresses
        .into_iter()
        .next()
        .ok_or_else(|| format!("{controller} resolves to no address"))
}

/// Runs until `shutdown` turns true, or the controller refuses this agent for good.
pub async fn run(dir: &Path, shutdown: watch::Receiver<bool>) -> Result<(), LinkError> {
    run_with(dir, shutdown, crate::handlers::real()).await
}

/// [`run`] with the jobs performed by `handler` (the benchmark's simulated agents).
pub async fn run_with(
    dir: &Path,
    mut shutdown: watch::Receiver<bool>,
    handler: crate::handlers::JobHandler,
) -> Result<(), LinkError> {
    rotor_common::tls::install_crypto_provider();
    let identity = Arc::new(Identity::load(dir)?);
    let journal = Arc::new(Journal::open(dir)?);
    let client_config = rotor_common::tls::quic_client_config(
        &identity.ca_pem,
        &identity.cert_pem,
        &identity.key,
        Duration::from_secs(30),
        // A packet at least every 2 s: a restarted controller answers the first one with a
        // stateless reset, so the agent reconnects within about 2 s of a restart.
        Duration::from_secs(2),
    )
    .map_err(|error| LinkError::Setup(error.to_string()))?;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut controller_index = 0usize;
    tracing::info!(agent = %identity.state.agent_id, site = %identity.state.site, "agent starting");
    loop {
        let controllers = &identity.state.controllers;
        let controller = controllers
            .get(controller_index % controllers.len().max(1))
            .cloned()
            .ok_or_else(|| LinkError::Setup("no controller address in agent.json".into()))?;
        let started = std::time::Instant::now();
        let ended = session::run(
            &identity,
            &journal,
            &handler,
            &controller,
            client_config.clone(),
            &mut shutdown,
        )
        .await;
        match ended {
            Ok(session::End::Shutdown) => {
                tracing::info!("agent stopped");
                return Ok(());
            }
            Ok(session::End::Refused(reason)) => {
                if reason.contains("revoked") || reason.contains("not enrolled") {
                    tracing::error!(%controller, %reason, "controller refused this agent for good");
                    return Err(LinkError::PermanentlyRefused {
                        agent: identity.state.agent_id.clone(),
                        reason,
                    });
                }
                tracing::warn!(%controller, %reason, "controller refused the connection");
            }
            Ok(session::End::Lost(detail)) => {
                tracing::warn!(%controller, %detail, "link to the controller lost");
            }
            Err(detail) => {
                tracing::warn!(%controller, %detail, "cannot connect to the controller");
                controller_index += 1;
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "reconnecting after a pause"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {
                tracing::info!("agent stopped");
                return Ok(());
            }
        }
    }
}
