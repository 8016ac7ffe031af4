//! The dispatcher: the agents' QUIC endpoint, the live links, and job delivery.
//!
//! Owns accepting connections (enrollment for certificate-less peers, Hello/Welcome for
//! enrolled agents, checked against the registry and revocation on every connection), the map
//! of live [`link::AgentLink`]s, and [`Dispatcher::submit`]: one bidirectional stream per
//! job. Engines call `submit`; they never see QUIC. Must not decide what a job means.

pub mod link;
pub mod registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_common::ids::{AgentId, JobId};
use rotor_common::pki::{self, CertificateAuthority};
use rotor_common::secret::Password;
use rotor_common::wire::{
    self, AgentMessage, ControllerMessage, EnrollRequest, Hello, Job, JobKind, JobOutcome,
    JobReply, OtpVerifyRequest, read_frame, write_frame,
};

use crate::store::Store;
use crate::tokens::now_unix;
use link::{AgentLink, Heartbeat, close_code};
use registry::{AgentRecord, AgentRefusalOrStore};

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub heartbeat_interval: Duration,
    pub missed_beats_allowed: u32,
    /// How long a new connection may take to send its first frame.
    pub handshake_timeout: Duration,
    pub agent_certificate_validity: Duration,
    /// How long an agent may take to accept a pushed job.
    pub accept_timeout: Duration,
    /// How long a job for a site waits for one of the site's agents to connect.
    pub agent_wait: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            missed_beats_allowed: 3,
            handshake_timeout: Duration::from_secs(10),
            agent_certificate_validity: Duration::from_secs(365 * 24 * 3600),
            accept_timeout: Duration::from_secs(10),
            agent_wait: Duration::from_secs(15),
        }
    }
}

/// Where a job should go.
#[derive(Debug, Clone)]
pub enum JobTarget {
    Agent(AgentId),
    /// Any connected agent of the site, the least loaded first.
    Site(String),
}

/// Why a job did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("no agent of site '{0}' is connected; start or enroll an agent for that site")]
    NoAgentForSite(String),
    #[error("agent {0} is not connected; start it, or check its link to the controller")]
    NotConnected(String),
    /// The agent never accepted the job: certain it did not run.
    #[error("agent {agent} did not accept job {job}: {detail}")]
    NotDelivered {
        agent: String,
        job: String,
        detail: String,
    },
    /// The job was accepted but no result came back: it may or may not have run.
    #[error("agent {agent} accepted job {job} but no result arrived: {detail}")]
    OutcomeUnknown {
        agent: String,
        job: String,
        detail: String,
    },
    #[error(transparent)]
    Link(#[from] link::LinkError),
}

impl DispatchError {
    /// True when the job certainly did not run.
    pub fn certainly_not_run(&self) -> bool {
        !matches!(self, DispatchError::OutcomeUnknown { .. })
    }
}

/// What the API shows of a connected agent.
#[derive(Debug, Clone)]
pub struct LiveStatus {
    pub remote_address: String,
    pub connected_unix: u64,
    pub last_seen_unix: u64,
    pub agent_version: String,
    pub jobs_in_flight: usize,
}

/// One OTP presented at a host's sshd, as the agent's PAM helper reports it.
pub struct OtpCheck {
    /// The agent whose certificate the helper presented (the host's own agent).
    pub agent_id: AgentId,
    pub username: String,
    /// Addresses of the host the helper runs on.
    pub host_addresses: Vec<String>,
    pub client_address: Option<String>,
    pub otp: Password,
}

/// Verifies and consumes an OTP; `Err` carries the reason it was refused.
pub type OtpVerifier = Arc<
    dyn Fn(
            OtpCheck,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Longest a PAM helper's verification may take on the controller's side.
const OTP_VERIFY_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    ca: Arc<CertificateAuthority>,
    settings: DispatchSettings,
    /// Live links by agent id. A std mutex: held only to look up, insert or remove.
    links: Mutex<HashMap<String, Arc<AgentLink>>>,
    /// Jobs in flight per agent, for least-loaded choice.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Set by the ssh engine; without it every OTP is refused.
    otp_verifier: Mutex<Option<OtpVerifier>>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<Store>,
        ca: Arc<CertificateAuthority>,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                ca,
                settings,
                links: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                otp_verifier: Mutex::new(None),
            }),
        }
    }

    /// Accepts connections until the endpoint is closed.
    pub async fn serve(&self, endpoint: quinn::Endpoint) {
        while let Some(incoming) = endpoint.accept().await {
            let dispatcher = self.clone();
            tokio::spawn(async move {
                dispatcher.handle_incoming(incoming).await;
            });
        }
    }

    /// Installs the OTP verifier (the ssh engine's verify-and-consume).
    pub fn set_otp_verifier(&self, verifier: OtpVerifier) {
        if let Ok(mut slot) = self.inner.otp_verifier.lock() {
            *slot = Some(verifier);
        }
    }

    /// Closes every link (controller shutdown).
    pub fn close_all(&self) {
        for link in self.links_snapshot() {
            link.close(close_code::SHUTDOWN, "controller shutting down");
        }
    }

    fn links_snapshot(&self) -> Vec<Arc<AgentLink>> {
        self.inner
            .links
            .lock()
            .map(|links| links.values().cloned().collect())
            .unwrap_or_default()
    }

    fn link(&self, id: &str) -> Option<Arc<AgentLink>> {
        self.inner
            .links
            .lock()
            .ok()
            .and_then(|links| links.get(id).cloned())
    }

    pub fn live_status(&self, id: &str) -> Option<LiveStatus> {
        let link = self.link(id)?;
        let jobs_in_flight = self
            .inner
            .in_flight
            .lock()
            .ok()
            .and_then(|counts| counts.get(id).copied())
            .unwrap_or(0);
        Some(LiveStatus {
            remote_address: link.remote_address.to_string(),
            connected_unix: link.connected_unix,
            last_seen_unix: link.last_seen_unix(),
            agent_version: link.agent_version.clone(),
            jobs_in_flight,
        })
    }

    pub fn connected_agents(&self, site: &str) -> Vec<AgentId> {
        self.links_snapshot()
            .into_iter()
            .filter(|link| link.site == site)
            .map(|link| link.agent_id.clone())
            .collect()
    }

    pub async fn ping(&self, id: &str) -> Result<Duration, DispatchError> {
        let link = self
            .link(id)
            .ok_or_else(|| DispatchError::NotConnected(id.to_string()))?;
        Ok(link.ping(Duration::from_secs(5)).await?)
    }

    /// Revokes an agent: recorded first, then its connection is closed at once.
    pub fn revoke(&self, id: &str) -> Result<bool, crate::store::StoreError> {
        let existed = registry::revoke_agent(&self.inner.store, id)?;
        let removed = self
            .inner
            .links
            .lock()
            .ok()
            .and_then(|mut links| links.remove(id));
        if let Some(link) = removed {
            link.close(close_code::REVOKED, "agent revoked");
        }
        Ok(existed)
    }

    fn pick_agent(&self, target: &JobTarget) -> Result<Arc<AgentLink>, DispatchError> {
        match target {
            JobTarget::Agent(id) => self
                .link(id.as_str())
                .ok_or_else(|| DispatchError::NotConnected(id.to_string())),
            JobTarget::Site(site) => {
                let counts = self
                    .inner
                    .in_flight
                    .lock()
                    .map(|counts| counts.clone())
                    .unwrap_or_default();
                self.links_snapshot()
                    .into_iter()
                    .filter(|link| &link.site == site)
                    .min_by_key(|link| counts.get(link.agent_id.as_str()).copied().unwrap_or(0))
                    .ok_or_else(|| DispatchError::NoAgentForSite(site.clone()))
            }
        }
    }

    /// Picks an agent for `target`, waiting up to `agent_wait` for one to connect (an agent
    /// restarting, a link being re-established) before giving up.
    async fn wait_for_agent(&self, target: &JobTarget) -> Result<Arc<AgentLink>, DispatchError> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.agent_wait;
        loop {
            match self.pick_agent(target) {
                Ok(link) => return Ok(link),
                Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    fn count_in_flight(&self, agent: &str, delta: isize) {
        if let Ok(mut counts) = self.inner.in_flight.lock() {
            let entry = counts.entry(agent.to_string()).or_insert(0);
            *entry = entry.saturating_add_signed(delta);
        }
    }

    /// Sends a job to an agent on a stream of its own and waits for its result, at most
    /// until `deadline` from now.
    pub async fn submit(
        &self,
        target: &JobTarget,
        job_id: JobId,
        kind: JobKind,
        deadline: Duration,
    ) -> Result<(AgentId, JobOutcome), DispatchError> {
        let link = self.wait_for_agent(target).await?;
        let agent = link.agent_id.to_string();
        self.count_in_flight(&agent, 1);
        let outcome = self.run_job(&link, job_id, kind, deadline).await;
        self.count_in_flight(&agent, -1);
        outcome.map(|outcome| (link.agent_id.clone(), outcome))
    }

    async fn run_job(
        &self,
        link: &AgentLink,
        job_id: JobId,
        kind: JobKind,
        deadline: Duration,
    ) -> Result<JobOutcome, DispatchError> {
        let agent = link.agent_id.to_string();
        let job_name = job_id.to_string();
        let not_delivered = |detail: String| DispatchError::NotDelivered {
            agent: agent.clone(),
            job: job_name.clone(),
            detail,
        };
        let deadline_unix_ms = (now_unix() + deadline.as_secs()) * 1000;
        let job = Job {
            id: job_id,
            deadline_unix_ms,
            kind,
        };
        let accept_timeout = self.inner.settings.accept_timeout;
        let (mut send, mut recv) = tokio::time::timeout(accept_timeout, link.connection.open_bi())
            .await
            .map_err(|_| not_delivered("opening a job stream timed out".into()))?
            .map_err(|error| not_delivered(format!("cannot open a job stream: {error}")))?;
        write_frame(&mut send, &job)
            .await
            .map_err(|error| not_delivered(format!("cannot send the job: {error}")))?;
        let accepted = tokio::time::timeout(accept_timeout, read_frame::<_, JobReply>(&mut recv))
            .await
            .map_err(|_| not_delivered(format!("no answer within {}s", accept_timeout.as_secs())))?
            .map_err(|error| not_delivered(format!("bad answer: {error}")))?;
        match accepted {
            Some(JobReply::Accepted { id }) if id == job_id => {}
            Some(JobReply::Result(result)) if result.id == job_id => {
                // A job already run (redelivery): the agent answers its recorded result at once.
                self.acknowledge(link, job_id).await;
                return Ok(result.outcome);
            }
            other => {
                return Err(not_delivered(format!(
                    "expected Accepted, got {}",
                    if other.is_some() {
                        "another message"
                    } else {
                        "end of stream"
                    }
                )));
            }
        }
        let unknown = |detail: String| DispatchError::OutcomeUnknown {
            agent: agent.clone(),
            job: job_name.clone(),
            detail,
        };
        let result = tokio::time::timeout(deadline, read_frame::<_, JobReply>(&mut recv))
            .await
            .map_err(|_| unknown(format!("deadline of {}s passed", deadline.as_secs())))?
            .map_err(|error| unknown(format!("job stream failed: {error}")))?;
        match result {
            Some(JobReply::Result(result)) if result.id == job_id => {
                let _ = send.finish();
                self.acknowledge(link, job_id).await;
                Ok(result.outcome)
            }
            _ => Err(unknown("the stream ended without a result".into())),
        }
    }

    async fn acknowledge(&self, link: &AgentLink, job_id: JobId) {
        let _ = link
            .send(ControllerMessage::AckResults { ids: vec![job_id] })
            .await;
    }

    async fn handle_incoming(&self, incoming: quinn::Incoming) {
        let remote = incoming.remote_address();
        let timeout = self.inner.settings.handshake_timeout;
        let connection = match tokio::time::timeout(timeout, incoming).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                tracing::info!(%remote, %error, "agent connection failed during the TLS handshake");
                return;
            }
            Err(_) => {
                tracing::info!(%remote, "agent connection timed out during the TLS handshake");
                return;
            }
        };
        let first = tokio::time::timeout(timeout, async {
            let (send, mut recv) = connection.accept_bi().await.map_err(|e| e.to_string())?;
            let payload = read_raw_frame(&mut recv).await?;
            Ok::<_, String>((send, recv, payload))
        })
        .await;
        let (mut send, recv, payload) = match first {
            Ok(Ok(streams)) => streams,
            Ok(Err(detail)) => {
                tracing::info!(%remote, %detail, "agent connection ended before its first message");
                return;
            }
            Err(_) => {
                tracing::info!(%remote, "agent sent no first message in time");
                connection.close(quinn::VarInt::from_u32(close_code::PROTOCOL), b"no hello");
                return;
            }
        };
        let message = match wire::decode_agent_first_frame(&payload) {
            Ok(message) => message,
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(%remote, %reason, "refusing agent connection");
                refuse(&connection, &mut send, reason).await;
                return;
            }
        };
        match (rotor_common::tls::peer_agent_id(&connection), message) {
            (None, AgentMessage::Enroll(request)) => {
                self.enroll(&connection, &mut send, request).await;
            }
            (Some(Ok(agent_id)), AgentMessage::Hello(hello)) => {
                self.admit(connection, send, recv, agent_id, hello).await;
            }
            (Some(Ok(agent_id)), AgentMessage::OtpVerify(request)) => {
                self.verify_otp(&connection, &mut send, agent_id, request)
                    .await;
            }
            (None, AgentMessage::Hello(_)) => {
                refuse(
                    &connection,
                    &mut send,
                    "no client certificate: enroll this agent first (rotor-agent enroll)".into(),
                )
                .await;
            }
            (Some(Ok(agent_id)), AgentMessage::Enroll(_)) => {
                refuse(&connection, &mut send, format!("this agent already has an identity ({agent_id}); connect with rotor-agent run")).await;
            }
            (Some(Err(error)), _) => {
                refuse(
                    &connection,
                    &mut send,
                    format!("client certificate is not an agent certificate: {error}"),
                )
                .await;
            }
            (_, _) => {
                refuse(
                    &connection,
                    &mut send,
                    "expected Hello or Enroll as the first message".into(),
                )
                .await;
            }
        }
    }

    async fn enroll(
        &self,
        connection: &quinn::Connection,
        send: &mut quinn::SendStream,
        request: EnrollRequest,
    ) {
        let remote = connection.remote_address();
        let token =
            match registry::consume_enrollment_token(&self.inner.store, request.token.expose()) {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(%remote, %error, "enrollment refused");
                    refuse(connection, send, error.to_string()).await;
                    return;
                }
            };
        let agent_id = match AgentId::new(&token.agent_id) {
            Ok(id) => id,
            Err(error) => {
                refuse(connection, send, format!("internal error: {error}")).await;
                return;
            }
        };
        let issued = match self.inner.ca.sign_agent_csr(
            &request.csr_pem,
            &agent_id,
            self.inner.settings.agent_certificate_validity,
        ) {
            Ok(issued) => issued,
            Err(error) => {
                tracing::warn!(%remote, %error, "enrollment refused: bad CSR");
                refuse(
                    connection,
                    send,
                    format!("certificate request refused: {error}"),
                )
                .await;
                return;
            }
        };
        let record = AgentRecord {
            id: agent_id.to_string(),
            site: token.site.clone(),
            enrolled_unix: now_unix(),
            certificate_serial: issued.serial_hex.clone(),
            certificate_not_after_unix: issued.not_after_unix,
            agent_version: request.agent_version.clone(),
            revoked_unix: None,
            last_seen_unix: None,
            last_remote_address: Some(remote.to_string()),
        };
        if let Err(error) = registry::register_agent(&self.inner.store, &record) {
            tracing::error!(%error, "cannot record an enrolled agent");
            refuse(
                connection,
                send,
                "internal error recording the agent; try again".into(),
            )
            .await;
            return;
        }
        tracing::info!(agent = %agent_id, site = %token.site, %remote, "agent enrolled");
        let answer = ControllerMessage::Enrolled {
            agent_id,
            site: token.site,
            certificate_pem: issued.cert_pem,
            ca_pem: self.inner.ca.cert_pem().to_string(),
        };
        if write_frame(send, &answer).await.is_ok() {
            let _ = send.finish();
            let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
        }
    }

    /// Answers one PAM helper: admitted like an agent (known, not revoked, current
    /// certificate), then the verifier decides. Every failure is a refusal: fail closed.
    async fn verify_otp(
        &self,
        connection: &quinn::Connection,
        send: &mut quinn::SendStream,
        agent_id: AgentId,
        request: OtpVerifyRequest,
    ) {
        let serial = presented_serial(connection).unwrap_or_default();
        let verdict = match registry::admit_agent(&self.inner.store, agent_id.as_str(), &serial) {
            Err(AgentRefusalOrStore::Refused(refusal)) => Err(refusal.to_string()),
            Err(AgentRefusalOrStore::Store(error)) => {
                tracing::error!(%error, "cannot check an OTP helper against the registry");
                Err("internal error".to_string())
            }
            Ok(_) => {
                let verifier = self
                    .inner
                    .otp_verifier
                    .lock()
                    .ok()
                    .and_then(|slot| slot.clone());
                match verifier {
                    None => Err("OTP verification is not available on this controller".to_string()),
                    Some(verify) => {
                        let check = OtpCheck {
                            agent_id: agent_id.clone(),
                            username: request.username.clone(),
                            host_addresses: request.host_addresses.clone(),
                            client_address: request.client_addr.clone(),
                            otp: request.otp,
                        };
                        match tokio::time::timeout(OTP_VERIFY_TIMEOUT, verify(check)).await {
                            Ok(result) => result,
                            Err(_) => Err("verification timed out".to_string()),
                        }
                    }
                }
            }
        };
        let (valid, reason) = match verdict {
            Ok(()) => (true, String::from("OTP accepted")),
            Err(reason) => (false, reason),
        };
        tracing::info!(agent = %agent_id, user = %request.username, valid, %reason, "OTP verification");
        let answer = ControllerMessage::OtpVerdict { valid, reason };
        if write_frame(send, &answer).await.is_ok() {
            let _ = send.finish();
            let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
        }
        connection.close(quinn::VarInt::from_u32(0), b"done");
    }

    async fn admit(
        &self,
        connection: quinn::Connection,
        mut send: quinn::SendStream,
        recv: quinn::RecvStream,
        agent_id: AgentId,
        hello: Hello,
    ) {
        let remote = connection.remote_address();
        let serial = presented_serial(&connection).unwrap_or_default();
        let record = match registry::admit_agent(&self.inner.store, agent_id.as_str(), &serial) {
            Ok(record) => record,
            Err(AgentRefusalOrStore::Refused(refusal)) => {
                tracing::warn!(agent = %agent_id, %remote, reason = %refusal, "agent refused");
                refuse(&connection, &mut send, refusal.to_string()).await;
                return;
            }
            Err(AgentRefusalOrStore::Store(error)) => {
                tracing::error!(%error, "cannot check an agent against the registry");
                refuse(&connection, &mut send, "internal error; try again".into()).await;
                return;
            }
        };
        if hello.site != record.site {
            tracing::warn!(agent = %agent_id, claimed = %hello.site, enrolled = %record.site,
                "agent claims another site than it enrolled into; using the enrolled site");
        }
        let settings = &self.inner.settings;
        let welcome = ControllerMessage::Welcome {
            agent_id: agent_id.clone(),
            heartbeat_interval_ms: settings.heartbeat_interval.as_millis() as u64,
            missed_beats_allowed: settings.missed_beats_allowed,
        };
        if let Err(error) = write_frame(&mut send, &welcome).await {
            tracing::info!(agent = %agent_id, %error, "agent left during the handshake");
            return;
        }
        if !hello.unacknowledged_results.is_empty() {
            let ids: Vec<JobId> = hello.unacknowledged_results.iter().map(|r| r.id).collect();
            tracing::info!(agent = %agent_id, count = ids.len(),
                "agent reported results of jobs from a previous connection");
        }
        let (link, running) = link::start(
            agent_id.clone(),
            record.site.clone(),
            hello.agent_version.clone(),
            connection,
            send,
            recv,
            Heartbeat {
                interval: settings.heartbeat_interval,
                missed_beats_allowed: settings.missed_beats_allowed,
            },
        );
        if !hello.unacknowledged_results.is_empty() {
            let ids = hello.unacknowledged_results.iter().map(|r| r.id).collect();
            let _ = link.send(ControllerMessage::AckResults { ids }).await;
        }
        let replaced = self
            .inner
            .links
            .lock()
            .ok()
            .and_then(|mut links| links.insert(agent_id.to_string(), link.clone()));
        if let Some(old) = replaced {
            old.close(
                close_code::REPLACED,
                "replaced by a newer connection of the same agent",
            );
        }
        let _ = registry::touch_agent(&self.inner.store, agent_id.as_str(), &remote.to_string());
        tracing::info!(agent = %agent_id, site = %record.site, %remote, "agent connected");
        running.await;
        if let Ok(mut links) = self.inner.links.lock()
            && links
                .get(agent_id.as_str())
                .is_some_and(|current| Arc::ptr_eq(current, &link))
        {
            links.remove(agent_id.as_str());
        }
        let _ = registry::touch_agent(&self.inner.store, agent_id.as_str(), &remote.to_string());
        tracing::info!(agent = %agent_id, %remote, "agent disconnected");
    }
}

fn presented_serial(connection: &quinn::Connection) -> Option<String> {
    let identity = connection.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let leaf = chain.first()?;
    pki::certificate_serial_hex(leaf.as_ref()).ok()
}

async fn refuse(connection: &quinn::Connection, send: &mut quinn::SendStream, reason: String) {
    let message = ControllerMessage::Refused {
        reason: reason.clone(),
    };
    if write_frame(send, &message).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    }
    connection.close(
        quinn::VarInt::from_u32(close_code::PROTOCOL),
        reason.as_bytes(),
    );
}

/// Reads one frame's payload without decoding it, so the protocol version can be checked
/// before the message is decoded.
async fn read_raw_frame(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, String> {
    let mut length_bytes = [0u8; 4];
    recv.read_exact(&mut length_bytes)
        .await
        .map_err(|error| format!("reading the frame length: {error}"))?;
    let length = u32::from_be_bytes(length_bytes) as usize;
    if length > wire::MAX_FRAME_LEN {
        return Err(format!(
            "frame of {length} bytes is over the {} byte limit",
            wire::MAX_FRAME_LEN
        ));
    }
    let mut payload = vec![0u8; length];
    recv.read_exact(&mut payload)
        .await
        .map_err(|error| format!("reading a {length} byte frame: {error}"))?;
    Ok(payload)
}
