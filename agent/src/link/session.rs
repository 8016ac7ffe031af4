//! One connection to the controller, from dial to loss: Hello/Welcome, heartbeats both ways,
//! pings, result acknowledgements, and the job streams the controller opens.
//!
//! Owns nothing across connections; `link::run` calls it again after a loss.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_common::ids::JobId;
use rotor_common::pki::CONTROLLER_SERVER_NAME;
use rotor_common::wire::{
    self, AgentMessage, ControllerMessage, FailureCertainty, Hello, Job, JobFailure, JobOutcome,
    JobReply, JobResult, read_frame, write_frame,
};
use tokio::sync::{mpsc, watch};

use crate::handlers::JobHandler;
use crate::identity::Identity;
use crate::journal::Journal;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub enum End {
    Shutdown,
    Refused(String),
    Lost(String),
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A job that arrives after its deadline is not run: the controller has given up on it (or
/// is about to) and decides from "certainly not run", so starting it could only change a
/// credential behind its back.
fn refused_past_deadline(id: JobId, deadline_unix_ms: u64, now_unix_ms: u64) -> Option<JobOutcome> {
    (now_unix_ms > deadline_unix_ms).then(|| {
        JobOutcome::Failed(JobFailure {
            certainty: FailureCertainty::BeforeChange,
            message: format!(
                "job {id} reached the agent {} ms after its deadline, so it was not run; if this repeats, check that the agent's and the controller's clocks agree (NTP)",
                now_unix_ms - deadline_unix_ms
            ),
        })
    })
}

/// Jobs running now, so a redelivered job waits for the first run instead of running twice.
type InFlight = Arc<Mutex<HashMap<JobId, watch::Receiver<Option<JobResult>>>>>;

pub async fn run(
    identity: &Identity,
    journal: &Arc<Journal>,
    handler: &JobHandler,
    controller: &str,
    client_config: quinn::ClientConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<End, String> {
    let address = super::resolve_controller(controller).await?;
    let bind: std::net::SocketAddr = if address.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .map_err(|_| "bad bind address".to_string())?;
    let endpoint =
        quinn::Endpoint::client(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let connecting = endpoint
        .connect_with(client_config, address, CONTROLLER_SERVER_NAME)
        .map_err(|error| error.to_string())?;
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|error| format!("connecting to {address}: {error}"))?;
    let handshake = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
        let hello = AgentMessage::Hello(Hello {
            protocol_version: wire::PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            site: identity.state.site.clone(),
            capabilities: rotor_common::wire::AGENT_CAPABILITIES
                .iter()
                .map(|capability| capability.to_string())
                .collect(),
            unacknowledged_results: journal.unacknowledged(),
        });
        write_frame(&mut send, &hello)
            .await
            .map_err(|e| e.to_string())?;
        let answer = read_frame::<_, ControllerMessage>(&mut recv)
            .await
            .map_err(|e| format!("reading the controller's answer: {e}"))?;
        Ok::<_, String>((send, recv, answer))
    })
    .await
    .map_err(|_| "the controller did not answer Hello in time".to_string())??;
    let (send, recv, answer) = handshake;
    let (interval, missed) = match answer {
        Some(ControllerMessage::Welcome {
            heartbeat_interval_ms,
            missed_beats_allowed,
            ..
        }) => (
            Duration::from_millis(heartbeat_interval_ms.max(100)),
            missed_beats_allowed.max(1),
        ),
        Some(ControllerMessage::Refused { reason }) => return Ok(End::Refused(reason)),
        Some(_) => return Err("the controller answered Hello with an unexpected message".into()),
        None => {
            let reason = connection
                .close_reason()
                .map(|reason| reason.to_string())
                .unwrap_or_else(|| "closed without an answer".into());
            return Err(format!("the controller closed the connection: {reason}"));
        }
    };
    tracing::info!(%controller, agent = %identity.state.agent_id, "connected to the controller");
    crate::metrics::link_established();

    let last_heard = Arc::new(AtomicU64::new(now_unix()));
    let (control, control_receiver) = mpsc::channel::<AgentMessage>(64);
    let in_flight: InFlight = Arc::new(Mutex::new(HashMap::new()));
    let end = tokio::select! {
        detail = write_loop(send, control_receiver, interval, journal.clone()) => End::Lost(detail),
        detail = read_loop(recv, control.clone(), journal.clone(), last_heard.clone()) => End::Lost(detail),
        detail = watchdog(last_heard.clone(), interval, missed) => End::Lost(detail),
        detail = accept_jobs(&connection, journal.clone(), handler.clone(), in_flight.clone()) => End::Lost(detail),
        _ = shutdown.changed() => {
            connection.close(quinn::VarInt::from_u32(0), b"agent shutting down");
            End::Shutdown
        }
    };
    let end = match end {
        End::Lost(detail) => {
            // Say why the connection ended when QUIC knows (a restarted controller's stateless
            // reset shows as "reset by peer"); a stream error alone says only "connection lost".
            let detail = match connection.close_reason() {
                Some(reason) if !detail.contains(&reason.to_string()) => {
                    format!("{detail} ({reason})")
                }
                _ => detail,
            };
            connection.close(quinn::VarInt::from_u32(0), b"link lost");
            End::Lost(detail)
        }
        other => other,
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    Ok(end)
}

/// Writes queued messages, and on every tick a heartbeat followed by the agent's metrics.
async fn write_loop(
    mut send: quinn::SendStream,
    mut control_receiver: mpsc::Receiver<AgentMessage>,
    interval: Duration,
    journal: Arc<Journal>,
) -> String {
    let mut ticker = tokio::time::interval(interval);
    let mut seq = 0u64;
    loop {
        let messages = tokio::select! {
            received = control_receiver.recv() => match received {
                Some(message) => vec![message],
                None => return "control channel closed".into(),
            },
            _ = ticker.tick() => {
                seq += 1;
                let metrics = crate::metrics::snapshot(journal.unacknowledged_count());
                vec![AgentMessage::Heartbeat { seq }, AgentMessage::Metrics(metrics)]
            }
        };
        for message in &messages {
            if let Err(error) = write_frame(&mut send, message).await {
                return format!("writing to the controller: {error}");
            }
        }
    }
}

async fn read_loop(
    mut recv: quinn::RecvStream,
    control: mpsc::Sender<AgentMessage>,
    journal: Arc<Journal>,
    last_heard: Arc<AtomicU64>,
) -> String {
    loop {
        match read_frame::<_, ControllerMessage>(&mut recv).await {
            Ok(Some(message)) => {
                last_heard.store(now_unix(), Ordering::Relaxed);
                match message {
                    ControllerMessage::Heartbeat { .. } => {}
                    ControllerMessage::Ping { nonce } => {
                        let _ = control.send(AgentMessage::Pong { nonce }).await;
                    }
                    ControllerMessage::AckResults { ids } => {
                        if let Err(error) = journal.acknowledge(&ids) {
                            tracing::error!(%error, "cannot update the journal");
                        }
                    }
                    _ => tracing::warn!(
                        "unexpected message from the controller on the control stream; ignored"
                    ),
                }
            }
            Ok(None) => return "the controller closed the control stream".into(),
            Err(error) => return format!("control stream: {error}"),
        }
    }
}

async fn watchdog(last_heard: Arc<AtomicU64>, interval: Duration, missed: u32) -> String {
    let allowed = interval * missed;
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let silent = now_unix().saturating_sub(last_heard.load(Ordering::Relaxed));
        if Duration::from_secs(silent) > allowed {
            return format!("no heartbeat from the controller for {silent}s");
        }
    }
}

async fn accept_jobs(
    connection: &quinn::Connection,
    journal: Arc<Journal>,
    handler: JobHandler,
    in_flight: InFlight,
) -> String {
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                let journal = journal.clone();
                let handler = handler.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    if let Err(detail) = serve_job(send, recv, journal, handler, in_flight).await {
                        tracing::warn!(%detail, "job stream failed");
                    }
                });
            }
            Err(error) => return format!("connection: {error}"),
        }
    }
}

async fn serve_job(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    journal: Arc<Journal>,
    handler: JobHandler,
    in_flight: InFlight,
) -> Result<(), String> {
    let job: Job = read_frame(&mut recv)
        .await
        .map_err(|error| format!("reading a job: {error}"))?
        .ok_or("job stream closed before the job")?;
    let id = job.id;
    if let Some(result) = journal.recorded(id) {
        tracing::info!(job = %id, "job already ran; answering its recorded result");
        write_frame(&mut send, &JobReply::Result(result))
            .await
            .map_err(|e| e.to_string())?;
        let _ = send.finish();
        return Ok(());
    }
    write_frame(&mut send, &JobReply::Accepted { id })
        .await
        .map_err(|e| e.to_string())?;
    let running = in_flight.lock().ok().and_then(|map| map.get(&id).cloned());
    let result = match running {
        Some(mut waiter) => {
            // Redelivered while running: wait for the first run's result.
            let _ = waiter.wait_for(Option::is_some).await;
            let recorded = waiter.borrow().clone();
            recorded.ok_or("the first run of this job ended without a result")?
        }
        None => {
            let (publish, waiter) = watch::channel(None);
            if let Ok(mut map) = in_flight.lock() {
                map.insert(id, waiter);
            }
            let outcome = match refused_past_deadline(id, job.deadline_unix_ms, now_unix_ms()) {
                Some(refusal) => {
                    tracing::warn!(job = %id, "job arrived after its deadline; not run");
                    refusal
                }
                None => {
                    tracing::info!(job = %id, "running job");
                    let counted = crate::metrics::job_started();
                    let outcome = handler(job.kind).await;
                    counted.finished(!matches!(outcome, JobOutcome::Failed(_)));
                    outcome
                }
            };
            let result = JobResult { id, outcome };
            if let Err(error) = journal.record(&result) {
                tracing::error!(job = %id, %error, "cannot journal a job result; sending it anyway");
            }
            let _ = publish.send(Some(result.clone()));
            if let Ok(mut map) = in_flight.lock() {
                map.remove(&id);
            }
            result
        }
    };
    write_frame(&mut send, &JobReply::Result(result))
        .await
        .map_err(|e| format!("sending the result: {e}"))?;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_past_its_deadline_is_certainly_not_run() {
        let id = JobId::generate();
        assert!(refused_past_deadline(id, 10_000, 9_999).is_none());
        assert!(refused_past_deadline(id, 10_000, 10_000).is_none());
        match refused_past_deadline(id, 10_000, 12_500) {
            Some(JobOutcome::Failed(failure)) => {
                assert_eq!(failure.certainty, FailureCertainty::BeforeChange);
                assert!(
                    failure.message.contains("2500 ms after its deadline"),
                    "{}",
                    failure.message
                );
                assert!(failure.message.contains(&id.to_string()));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
