//! The dispatcher: the agents' QUIC endpoint, the live links, and job delivery.
//!
//! Owns accepting connections (enrollment for certificate-less peers, Hello/Welcome for
//! enrolled agents, checked against the registry and revocation on every connection), the map
//! of live [`link::AgentLink`]s, and [`Dispatcher::submit`]: a job waits in its site's queue
//! (`queue.rs` decides who gets a slot) until an agent has a free slot, then runs on one
//! bidirectional stream. Engines call `submit`; they never see QUIC. Must not decide what a
//! job means.

pub mod endpoint;
pub mod evidence;
pub mod link;
pub mod queue;
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
    /// How long a job waits while none of its site's agents (or not its own agent) is
    /// connected; after that it fails, certainly not run.
    pub agent_wait: Duration,
    /// How long a job waits in its site's queue while the site's agents are connected but
    /// busy (a large wave drains at the agents' pace, so this is long); after that it fails,
    /// certainly not run.
    pub queue_wait: Duration,
    /// Jobs one agent runs at once; more wait in the site's queue.
    pub max_jobs_per_agent: usize,
    /// Jobs touching one host at once (jobs submitted with a host key).
    pub max_jobs_per_host: usize,
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
            queue_wait: Duration::from_secs(15 * 60),
            max_jobs_per_agent: 32,
            max_jobs_per_host: 1,
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
    /// Agents of the site are connected, but none advertises the job's kind: certain it did
    /// not run (an old agent is never sent a job it does not know).
    #[error(
        "no connected agent of site '{site}' can run {capability} jobs (connected: {agents}); upgrade the site's agents to a release that has them"
    )]
    NoCapableAgent {
        site: String,
        capability: String,
        agents: String,
    },
    /// Agents were connected but none had a free slot in time: certain the job did not run.
    #[error(
        "no slot freed for a job of site '{site}' within {waited_secs}s ({detail}); the job was not sent: add agents to the site or raise max_jobs_per_agent / max_jobs_per_host"
    )]
    NoFreeSlot {
        site: String,
        waited_secs: u64,
        detail: String,
    },
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
    /// What the agent last reported about itself over this link.
    pub reported: Option<rotor_common::wire::AgentMetrics>,
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
    /// Admission (who waits, who runs where) and the waiters' grant channels, under one lock
    /// so a grant and its delivery cannot be torn apart. A std mutex: never held over an await.
    queues: Mutex<Queues>,
    /// Set by the ssh engine; without it every OTP is refused.
    otp_verifier: Mutex<Option<OtpVerifier>>,
    /// Woken whenever an agent's link is registered, for [`Dispatcher::wait_until_connected`].
    link_registered: tokio::sync::Notify,
}

impl Dispatcher {
    pub fn new(
        store: Arc<Store>,
        ca: Arc<CertificateAuthority>,
        settings: DispatchSettings,
    ) -> Self {
        let limits = queue::Limits {
            per_agent: settings.max_jobs_per_agent,
            per_host: settings.max_jobs_per_host,
        };
        Self {
            inner: Arc::new(Inner {
                store,
                ca,
                settings,
                links: Mutex::new(HashMap::new()),
                queues: Mutex::new(Queues {
                    admission: queue::Admission::new(limits),
                    waiters: HashMap::new(),
                }),
                otp_verifier: Mutex::new(None),
                link_registered: tokio::sync::Notify::new(),
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
        let jobs_in_flight = self.jobs_in_flight(id);
        Some(LiveStatus {
            remote_address: link.remote_address.to_string(),
            connected_unix: link.connected_unix,
            last_seen_unix: link.last_seen_unix(),
            agent_version: link.agent_version.clone(),
            jobs_in_flight,
            reported: link.reported_metrics(),
        })
    }

    /// Waits until an agent that can take a job for `target` is connected (an event: woken
    /// when a link registers, not polled), at most `timeout`. Answers whether one is. A
    /// reconnecting agent's journal is recorded ([`evidence`]) before its link registers, so
    /// once this answers `true` that agent's reported results are in the store.
    pub async fn wait_until_connected(&self, target: &JobTarget, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let registered = self.inner.link_registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            let connected = match target {
                JobTarget::Agent(agent) => self.link(agent.as_str()).is_some(),
                JobTarget::Site(site) => !self.connected_agents(site).is_empty(),
            };
            if connected {
                return true;
            }
            if tokio::time::timeout_at(deadline, registered).await.is_err() {
                return false;
            }
        }
    }

    /// How long a job waits for an agent to connect before it fails.
    pub fn agent_wait(&self) -> Duration {
        self.inner.settings.agent_wait
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

    /// Jobs running on one agent now.
    pub fn jobs_in_flight(&self, agent: &str) -> usize {
        self.inner
            .queues
            .lock()
            .map(|queues| queues.admission.agent_jobs(agent))
            .unwrap_or(0)
    }

    /// Jobs waiting for a slot, per site with any waiting.
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        self.inner
            .queues
            .lock()
            .map(|queues| queues.admission.queue_depths())
            .unwrap_or_default()
    }

    /// Waits up to `until` for `id` to be connected (an agent restarting, a link being
    /// re-established): woken when a link registers, not polled.
    async fn wait_for_agent(
        &self,
        id: &AgentId,
        until: tokio::time::Instant,
    ) -> Result<Arc<AgentLink>, DispatchError> {
        let target = JobTarget::Agent(id.clone());
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if self.wait_until_connected(&target, left).await
            && let Some(link) = self.link(id.as_str())
        {
            return Ok(link);
        }
        Err(DispatchError::NotConnected(id.to_string()))
    }

    /// Hands every slot that can be given now to its waiting job. Called whenever a slot may
    /// have freed: a job enqueued or ended, an agent connected.
    fn grant_free_slots(&self) {
        let links = self.links_snapshot();
        let connected: Vec<queue::ConnectedAgent<'_>> = links
            .iter()
            // A link whose connection is closing is not healthy, though still listed.
            .filter(|link| link.connection.close_reason().is_none())
            .map(|link| queue::ConnectedAgent {
                agent: link.agent_id.as_str(),
                site: &link.site,
                capabilities: &link.capabilities,
            })
            .collect();
        let Ok(mut queues) = self.inner.queues.lock() else {
            return;
        };
        loop {
            let mut undelivered = false;
            for grant in queues.admission.grant(&connected) {
                let sent = match queues.waiters.remove(&grant.ticket) {
                    Some(waiter) => waiter.send(grant.agent.clone()).is_ok(),
                    None => false,
                };
                if !sent {
                    // The waiter is gone (its guard withdraws under this lock, so this is a
                    // safety net): the slot goes back and to the next job.
                    queues
                        .admission
                        .release(&grant.site, grant.host.as_deref(), &grant.agent);
                    undelivered = true;
                }
            }
            if !undelivered {
                return;
            }
        }
    }

    /// Waits in `site`'s queue until `until` for a slot, then answers it (held until dropped).
    async fn acquire_slot(
        &self,
        site: &str,
        host: Option<&str>,
        only_agent: Option<&str>,
        capability: Option<&str>,
        until: tokio::time::Instant,
    ) -> Result<Slot, DispatchError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let ticket = match self.inner.queues.lock() {
            Ok(mut queues) => {
                let ticket = queues.admission.enqueue(site, host, only_agent, capability);
                queues.waiters.insert(ticket, sender);
                ticket
            }
            Err(_) => {
                return Err(DispatchError::NoFreeSlot {
                    site: site.to_string(),
                    waited_secs: 0,
                    detail: "the dispatcher's queue is unusable after a panic".into(),
                });
            }
        };
        let mut waiting = Waiting {
            dispatcher: self.clone(),
            ticket,
            receiver: Some(receiver),
            site: site.to_string(),
            host: host.map(str::to_string),
        };
        self.grant_free_slots();
        let started = tokio::time::Instant::now();
        let queue_until = started + self.inner.settings.queue_wait;
        let mut agentless_until = until;
        let granted = loop {
            let Some(receiver) = waiting.receiver.as_mut() else {
                break None;
            };
            match tokio::time::timeout_at(agentless_until.min(queue_until), receiver).await {
                Ok(answer) => break answer.ok(),
                Err(_) => {
                    let now = tokio::time::Instant::now();
                    if now >= queue_until || !self.has_agent_for(site, only_agent, capability) {
                        break None;
                    }
                    // Busy but connected: the queue drains at the agents' pace; keep waiting,
                    // and give up only if the agents go away for a whole agent_wait.
                    agentless_until = now + self.inner.settings.agent_wait;
                }
            }
        };
        // Out of time: withdraw the ticket, unless it was granted meanwhile.
        let agent = granted.or_else(|| waiting.withdraw());
        // The slot (if any) is ours now: disarm the guard.
        waiting.receiver = None;
        match agent {
            Some(agent) => Ok(Slot {
                dispatcher: self.clone(),
                site: site.to_string(),
                host: host.map(str::to_string),
                agent,
            }),
            None => Err(self.no_slot_error(site, host, only_agent, capability, started.elapsed())),
        }
    }

    /// Whether the job's agent (or, for a site job, any agent of the site) is connected and
    /// can run the job's kind.
    fn has_agent_for(
        &self,
        site: &str,
        only_agent: Option<&str>,
        capability: Option<&str>,
    ) -> bool {
        self.links_snapshot().iter().any(|link| {
            link.site == site
                && only_agent.is_none_or(|agent| link.agent_id.as_str() == agent)
                && link.can_run(capability)
        })
    }

    fn no_slot_error(
        &self,
        site: &str,
        host: Option<&str>,
        only_agent: Option<&str>,
        capability: Option<&str>,
        waited: Duration,
    ) -> DispatchError {
        let connected = self.connected_agents(site);
        if let Some(agent) = only_agent {
            if !connected.iter().any(|id| id.as_str() == agent) {
                return DispatchError::NotConnected(agent.to_string());
            }
        } else if connected.is_empty() {
            return DispatchError::NoAgentForSite(site.to_string());
        }
        if let Some(capability) = capability
            && !self.has_agent_for(site, only_agent, Some(capability))
        {
            let agents = self
                .links_snapshot()
                .iter()
                .filter(|link| link.site == site)
                .map(|link| {
                    format!(
                        "{} (rotor-agent {}, runs {})",
                        link.agent_id,
                        link.agent_version,
                        link.capabilities.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            return DispatchError::NoCapableAgent {
                site: site.to_string(),
                capability: capability.to_string(),
                agents,
            };
        }
        let mut detail = match self.inner.queues.lock() {
            Ok(queues) => {
                let limits = queues.admission.limits();
                let mut parts = vec![format!(
                    "{} connected agent(s) with {} job(s) in flight, at most {} each",
                    connected.len(),
                    connected
                        .iter()
                        .map(|id| queues.admission.agent_jobs(id.as_str()))
                        .sum::<usize>(),
                    limits.per_agent
                )];
                if let Some(host) = host {
                    parts.push(format!(
                        "host {host} has {} job(s) in flight, at most {}",
                        queues.admission.host_jobs(site, host),
                        limits.per_host
                    ));
                }
                parts.push(format!(
                    "{} other job(s) waiting",
                    queues.admission.queue_depth(site)
                ));
                parts.join("; ")
            }
            Err(_) => String::from("queue unusable"),
        };
        if let Some(agent) = only_agent {
            detail = format!("job for agent {agent}; {detail}");
        }
        DispatchError::NoFreeSlot {
            site: site.to_string(),
            waited_secs: waited.as_secs(),
            detail,
        }
    }

    /// Sends a job to an agent on a stream of its own and waits for its result, at most
    /// until `deadline` from now. Same as [`Dispatcher::submit_for_host`] with no host key.
    pub async fn submit(
        &self,
        target: &JobTarget,
        job_id: JobId,
        kind: JobKind,
        deadline: Duration,
    ) -> Result<(AgentId, JobOutcome), DispatchError> {
        self.submit_for_host(target, None, job_id, kind, deadline)
            .await
    }

    /// Like [`Dispatcher::submit`], for a job that touches `host` (a name unique within the
    /// site): at most `max_jobs_per_host` such jobs run at once, and waiting jobs of
    /// different hosts take turns. The job waits in its site's queue for a connected agent
    /// under `max_jobs_per_agent`: up to `queue_wait` while agents are busy, up to
    /// `agent_wait` while none is connected; a job whose agent dropped before it was
    /// sent goes to another agent of the site.
    pub async fn submit_for_host(
        &self,
        target: &JobTarget,
        host: Option<&str>,
        job_id: JobId,
        kind: JobKind,
        deadline: Duration,
    ) -> Result<(AgentId, JobOutcome), DispatchError> {
        let until = tokio::time::Instant::now() + self.inner.settings.agent_wait;
        loop {
            let (site, only_agent) = match target {
                JobTarget::Site(site) => (site.clone(), None),
                JobTarget::Agent(id) => {
                    let link = self.wait_for_agent(id, until).await?;
                    (link.site.clone(), Some(id.as_str()))
                }
            };
            let slot = self
                .acquire_slot(&site, host, only_agent, Some(kind.capability()), until)
                .await?;
            let Some(link) = self.link(&slot.agent) else {
                // The agent left between the grant and now: nothing was sent; wait again.
                drop(slot);
                continue;
            };
            let stream = match self.open_job_stream(&link).await {
                Ok(stream) => stream,
                Err(detail)
                    if link.connection.close_reason().is_some()
                        && tokio::time::Instant::now() < until =>
                {
                    tracing::info!(agent = %link.agent_id, %site, %detail,
                        "agent dropped before a queued job was sent; giving it to another agent");
                    drop(slot);
                    continue;
                }
                Err(detail) => {
                    return Err(DispatchError::NotDelivered {
                        agent: link.agent_id.to_string(),
                        job: job_id.to_string(),
                        detail,
                    });
                }
            };
            let outcome = self.run_job(&link, stream, job_id, kind, deadline).await;
            drop(slot);
            return outcome.map(|outcome| (link.agent_id.clone(), outcome));
        }
    }

    /// Opens a job's stream; nothing of the job is sent yet.
    async fn open_job_stream(
        &self,
        link: &AgentLink,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
        let accept_timeout = self.inner.settings.accept_timeout;
        tokio::time::timeout(accept_timeout, link.connection.open_bi())
            .await
            .map_err(|_| String::from("opening a job stream timed out"))?
            .map_err(|error| format!("cannot open a job stream: {error}"))
    }

    async fn run_job(
        &self,
        link: &AgentLink,
        (mut send, mut recv): (quinn::SendStream, quinn::RecvStream),
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
        // A change's result stays in the agent's journal until its engine has committed it
        // (`Dispatcher::acknowledge_result`): a crash before the commit finds it there.
        let acknowledge_now = !kind.changes_a_credential();
        let job = Job {
            id: job_id,
            deadline_unix_ms,
            kind,
        };
        let accept_timeout = self.inner.settings.accept_timeout;
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
                if acknowledge_now {
                    self.acknowledge(link, job_id).await;
                }
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
                if acknowledge_now {
                    self.acknowledge(link, job_id).await;
                }
                Ok(result.outcome)
            }
            _ => Err(unknown("the stream ended without a result".into())),
        }
    }

    /// Tells `agent` that the result of `job_id` (a change) is committed, so its journal
    /// entry may go. If the agent is not connected now, it reports the result at its next
    /// connection and it is acknowledged then.
    pub async fn acknowledge_result(&self, agent: &AgentId, job_id: JobId) {
        if let Some(link) = self.link(agent.as_str()) {
            self.acknowledge(&link, job_id).await;
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
        // The agent's journal: results it recorded that no controller acknowledged. Kept as
        // evidence for changes still pending here, then acknowledged; if they cannot be kept,
        // they are not acknowledged, so the agent reports them again next time.
        let mut acknowledge = false;
        if !hello.unacknowledged_results.is_empty() {
            let count = hello.unacknowledged_results.len();
            match evidence::record(&self.inner.store, &agent_id, &hello.unacknowledged_results) {
                Ok(()) => {
                    acknowledge = true;
                    tracing::info!(agent = %agent_id, count,
                        "agent reported results of jobs from a previous connection; kept as evidence");
                }
                Err(error) => tracing::error!(agent = %agent_id, count, %error,
                    "cannot keep the results the agent reported; not acknowledging them"),
            }
        }
        let (link, running) = link::start(
            link::Admitted {
                agent_id: agent_id.clone(),
                site: record.site.clone(),
                agent_version: hello.agent_version.clone(),
                capabilities: hello.capabilities.clone(),
            },
            connection,
            send,
            recv,
            Heartbeat {
                interval: settings.heartbeat_interval,
                missed_beats_allowed: settings.missed_beats_allowed,
            },
        );
        if acknowledge {
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
        // Jobs waiting for this site may run now, and so may recoveries waiting for an agent.
        self.grant_free_slots();
        self.inner.link_registered.notify_waiters();
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

/// Admission state and the channels that deliver its grants.
struct Queues {
    admission: queue::Admission,
    /// Each waiting ticket's grant channel: the agent its slot is on.
    waiters: HashMap<queue::TicketId, tokio::sync::oneshot::Sender<String>>,
}

/// A job's place in its site's queue. Dropped while still waiting (its caller gave up), it
/// withdraws the ticket, or gives back a slot granted meanwhile.
struct Waiting {
    dispatcher: Dispatcher,
    ticket: queue::TicketId,
    receiver: Option<tokio::sync::oneshot::Receiver<String>>,
    site: String,
    host: Option<String>,
}

impl Waiting {
    /// Withdraws the ticket; answers the agent when it was granted meanwhile.
    fn withdraw(&mut self) -> Option<String> {
        let withdrawn = match self.dispatcher.inner.queues.lock() {
            Ok(mut queues) => {
                queues.waiters.remove(&self.ticket);
                queues.admission.cancel(self.ticket)
            }
            Err(_) => true,
        };
        if withdrawn {
            return None;
        }
        // Granted: the grant was sent under the same lock, so it is in the channel.
        self.receiver
            .take()
            .and_then(|mut receiver| receiver.try_recv().ok())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.receiver.is_none() {
            return;
        }
        if let Some(agent) = self.withdraw() {
            drop(Slot {
                dispatcher: self.dispatcher.clone(),
                site: std::mem::take(&mut self.site),
                host: self.host.take(),
                agent,
            });
        }
    }
}

/// A granted slot: one job in flight on `agent` (and on `host`). Dropping it gives the slot
/// back and lets the next waiting job run.
struct Slot {
    dispatcher: Dispatcher,
    site: String,
    host: Option<String>,
    agent: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut queues) = self.dispatcher.inner.queues.lock() {
            queues
                .admission
                .release(&self.site, self.host.as_deref(), &self.agent);
        }
        self.dispatcher.grant_free_slots();
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
