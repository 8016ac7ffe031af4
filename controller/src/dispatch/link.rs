//! One agent's QUIC connection: heartbeats, pings and the control stream's writer.
//!
//! An [`AgentLink`] is created once the agent's Hello was admitted. It owns the connection;
//! others hold an `Arc` and send control messages through [`AgentLink::send`]. Job streams are
//! opened on its connection by the dispatcher. Does not pick agents for jobs and never
//! reads the store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rotor_common::ids::AgentId;
use rotor_common::wire::{AgentMessage, AgentMetrics, ControllerMessage, read_frame, write_frame};
use tokio::sync::{mpsc, oneshot};

use crate::tokens::now_unix;

/// QUIC application close codes the controller uses.
pub mod close_code {
    pub const REVOKED: u32 = 1;
    pub const REPLACED: u32 = 2;
    pub const HEARTBEAT_LOST: u32 = 3;
    pub const PROTOCOL: u32 = 4;
    pub const SHUTDOWN: u32 = 5;
}

pub struct AgentLink {
    pub agent_id: AgentId,
    pub site: String,
    pub remote_address: SocketAddr,
    pub agent_version: String,
    /// The job kinds the agent said it can run (`Hello.capabilities`).
    pub capabilities: Vec<String>,
    pub connected_unix: u64,
    pub connection: quinn::Connection,
    /// Unix seconds of the last frame heard from the agent; read by the watchdog and the API.
    last_seen_unix: AtomicU64,
    /// Control messages for the writer task; bounded so a stuck agent cannot grow memory.
    control: mpsc::Sender<ControllerMessage>,
    /// Pings waiting for their Pong, by nonce. A std mutex: held only to insert or remove.
    pending_pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// The agent's latest self-report (sent with its heartbeats). A std mutex: held to copy.
    reported: Mutex<Option<AgentMetrics>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("agent {0} is not connected")]
    NotConnected(String),
    #[error("agent {agent} did not answer a ping within {seconds}s")]
    PingTimeout { agent: String, seconds: u64 },
}

impl AgentLink {
    /// Whether the agent can run a job needing `capability` (None: any agent can).
    pub fn can_run(&self, capability: Option<&str>) -> bool {
        capability.is_none_or(|wanted| self.capabilities.iter().any(|have| have == wanted))
    }

    pub fn last_seen_unix(&self) -> u64 {
        self.last_seen_unix.load(Ordering::Relaxed)
    }

    fn heard(&self) {
        self.last_seen_unix.store(now_unix(), Ordering::Relaxed);
    }

    /// Queues a control message; fails when the link is gone.
    pub async fn send(&self, message: ControllerMessage) -> Result<(), LinkError> {
        self.control
            .send(message)
            .await
            .map_err(|_| LinkError::NotConnected(self.agent_id.to_string()))
    }

    /// A real round trip over the control stream.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, LinkError> {
        let nonce: u64 = rand::random();
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut pending) = self.pending_pings.lock() {
            pending.insert(nonce, sender);
        }
        let started = std::time::Instant::now();
        self.send(ControllerMessage::Ping { nonce }).await?;
        let answered = tokio::time::timeout(timeout, receiver).await;
        if let Ok(mut pending) = self.pending_pings.lock() {
            pending.remove(&nonce);
        }
        match answered {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(_)) => Err(LinkError::NotConnected(self.agent_id.to_string())),
            Err(_) => Err(LinkError::PingTimeout {
                agent: self.agent_id.to_string(),
                seconds: timeout.as_secs(),
            }),
        }
    }

    /// The agent's latest self-report, if it has sent one on this link.
    pub fn reported_metrics(&self) -> Option<AgentMetrics> {
        self.reported
            .lock()
            .ok()
            .and_then(|reported| reported.clone())
    }

    pub fn close(&self, code: u32, reason: &str) {
        self.connection
            .close(quinn::VarInt::from_u32(code), reason.as_bytes());
    }
}

/// Settings of a link's heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub interval: Duration,
    pub missed_beats_allowed: u32,
}

/// Who an admitted agent is: its certificate's identity, its enrolled site, and what its
/// `Hello` said of itself.
pub struct Admitted {
    pub agent_id: AgentId,
    pub site: String,
    pub agent_version: String,
    pub capabilities: Vec<String>,
}

/// Starts a link on an admitted connection whose control stream is `(send, recv)`, and runs
/// its reader, writer and watchdog until the connection ends. Answers the link at once; the
/// returned future completes when the link is down.
pub fn start(
    Admitted {
        agent_id,
        site,
        agent_version,
        capabilities,
    }: Admitted,
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    heartbeat: Heartbeat,
) -> (
    std::sync::Arc<AgentLink>,
    impl std::future::Future<Output = ()>,
) {
    let (control, control_receiver) = mpsc::channel(64);
    let link = std::sync::Arc::new(AgentLink {
        agent_id,
        site,
        remote_address: connection.remote_address(),
        agent_version,
        capabilities,
        connected_unix: now_unix(),
        connection,
        last_seen_unix: AtomicU64::new(now_unix()),
        control,
        pending_pings: Mutex::new(HashMap::new()),
        reported: Mutex::new(None),
    });
    let running = run(link.clone(), send, recv, control_receiver, heartbeat);
    (link, running)
}

async fn run(
    link: std::sync::Arc<AgentLink>,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    control_receiver: mpsc::Receiver<ControllerMessage>,
    heartbeat: Heartbeat,
) {
    let reader = read_loop(link.clone(), recv);
    let writer = write_loop(link.clone(), send, control_receiver, heartbeat.interval);
    let watchdog = watchdog(link.clone(), heartbeat);
    tokio::select! {
        () = reader => {},
        () = writer => {},
        () = watchdog => {},
        _ = link.connection.closed() => {},
    }
    // Fail pending pings at once instead of letting them time out.
    if let Ok(mut pending) = link.pending_pings.lock() {
        pending.clear();
    }
}

async fn read_loop(link: std::sync::Arc<AgentLink>, mut recv: quinn::RecvStream) {
    loop {
        match read_frame::<_, AgentMessage>(&mut recv).await {
            Ok(Some(message)) => {
                link.heard();
                match message {
                    AgentMessage::Heartbeat { .. } => {}
                    AgentMessage::Metrics(metrics) => {
                        if let Ok(mut reported) = link.reported.lock() {
                            *reported = Some(metrics);
                        }
                    }
                    AgentMessage::Pong { nonce } => {
                        let waiter = link
                            .pending_pings
                            .lock()
                            .ok()
                            .and_then(|mut pending| pending.remove(&nonce));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(());
                        }
                    }
                    other => {
                        tracing::warn!(agent = %link.agent_id, message = ?std::mem::discriminant(&other),
                            "agent sent an unexpected message on its control stream; closing the link");
                        link.close(close_code::PROTOCOL, "unexpected message on control stream");
                        return;
                    }
                }
            }
            Ok(None) => {
                tracing::info!(agent = %link.agent_id, "agent closed its control stream");
                return;
            }
            Err(error) => {
                tracing::info!(agent = %link.agent_id, %error, "agent control stream ended");
                return;
            }
        }
    }
}

async fn write_loop(
    link: std::sync::Arc<AgentLink>,
    mut send: quinn::SendStream,
    mut control_receiver: mpsc::Receiver<ControllerMessage>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    let mut seq: u64 = 0;
    loop {
        let message = tokio::select! {
            received = control_receiver.recv() => match received {
                Some(message) => message,
                None => return,
            },
            _ = ticker.tick() => {
                seq += 1;
                ControllerMessage::Heartbeat { seq }
            }
        };
        if let Err(error) = write_frame(&mut send, &message).await {
            tracing::info!(agent = %link.agent_id, %error, "cannot write to agent; link down");
            return;
        }
    }
}

async fn watchdog(link: std::sync::Arc<AgentLink>, heartbeat: Heartbeat) {
    let allowed = heartbeat.interval * heartbeat.missed_beats_allowed.max(1);
    let mut ticker = tokio::time::interval(heartbeat.interval);
    loop {
        ticker.tick().await;
        let silent_for = now_unix().saturating_sub(link.last_seen_unix());
        if Duration::from_secs(silent_for) > allowed {
            tracing::warn!(agent = %link.agent_id, silent_secs = silent_for,
                "agent missed its heartbeats; declaring it lost");
            link.close(close_code::HEARTBEAT_LOST, "heartbeat lost");
            return;
        }
    }
}
