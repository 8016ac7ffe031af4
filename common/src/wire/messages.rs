//! The protocol's message types, exactly as they travel.
//!
//! Only data and its documentation live here: no behaviour, no IO. Variant order is the
//! encoding (postcard writes the variant index), so variants are only ever appended; the
//! indexes pinned in the docs below are tested in `wire::tests`. Every type's `Debug` is
//! safe to log because secrets are [`Password`]s.

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, JobId};
use crate::secret::Password;

/// Agent → controller, on the control stream the agent opens (and on the single stream of an
/// enrollment or OTP-verification connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// Variant 0, forever: the first frame of a mutually authenticated connection.
    Hello(Hello),
    /// Variant 1, forever: the first frame of a connection made WITHOUT a client certificate,
    /// asking for one.
    Enroll(EnrollRequest),
    /// Variant 2: liveness, answered by the controller's own heartbeats.
    Heartbeat {
        /// Increases by one per beat sent on this connection.
        seq: u64,
    },
    /// Variant 3: answer to [`ControllerMessage::Ping`].
    Pong {
        /// The ping's nonce, echoed.
        nonce: u64,
    },
    /// Variant 4: the PAM helper (`rotor-agent otp-verify`) asks to verify-and-consume an OTP.
    /// First frame of its own connection, made with the agent's certificate.
    OtpVerify(OtpVerifyRequest),
    /// Variant 5: the agent's own figures, sent with every heartbeat on the control stream;
    /// the controller keeps the latest and serves them in `sys/metrics` and `sys/agents/:id`.
    Metrics(AgentMetrics),
    /// Variant 6 (protocol 3): journaled results whose job stream was gone when they were
    /// ready (the controller that sent the job died, or the link broke, while it ran), sent
    /// on the control stream of the next link instead of waiting for the next `Hello`. The
    /// controller keeps them as evidence and answers [`ControllerMessage::AckResults`].
    Results(Vec<JobResult>),
}

/// What an agent reports about itself. Counters are since the agent process started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMetrics {
    /// Seconds since the agent process started.
    pub uptime_secs: u64,
    /// Resident memory now (VmRSS), bytes.
    pub rss_bytes: u64,
    /// Peak resident memory (VmHWM), bytes.
    pub peak_rss_bytes: u64,
    /// Jobs running now.
    pub jobs_running: u64,
    /// Jobs that ended with a success outcome.
    pub jobs_succeeded: u64,
    /// Jobs that ended with a failure outcome.
    pub jobs_failed: u64,
    /// Results in the agent's journal the controller has not acknowledged yet.
    pub journal_unacknowledged: u64,
    /// Links to a controller established (reconnections are this minus one).
    pub links_established: u64,
}

/// The agent introduces itself on an authenticated connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// MUST stay the first field: read by [`super::peek_protocol_version`].
    pub protocol_version: u16,
    /// The agent's release, e.g. `0.1.0`, for operators.
    pub agent_version: String,
    /// The site the agent serves (must match what the controller recorded at enrollment).
    pub site: String,
    /// The job kinds this agent can run ([`JobKind::capability`] names, e.g. `"os"`); the
    /// controller never sends it a job of another kind.
    pub capabilities: Vec<String>,
    /// Results recorded in the agent's journal that the controller has not acknowledged yet.
    pub unacknowledged_results: Vec<JobResult>,
}

/// An agent without a certificate asks for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// MUST stay the first field: read by [`super::peek_protocol_version`].
    pub protocol_version: u16,
    /// The one-time enrollment token the operator obtained from the controller.
    pub token: Password,
    /// PKCS#10 request for the key the agent generated locally (the key never leaves it).
    pub csr_pem: String,
    /// The agent's release, for operators.
    pub agent_version: String,
}

/// The PAM helper asks whether an OTP is valid for a user on this host, consuming it if so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpVerifyRequest {
    /// MUST stay the first field: read by [`super::peek_protocol_version`].
    pub protocol_version: u16,
    /// The one-time password the user typed.
    pub otp: Password,
    /// The account being logged into (`PAM_USER`).
    pub username: String,
    /// Addresses of this host the OTP may have been issued for (e.g. the server address from
    /// `SSH_CONNECTION`).
    pub host_addresses: Vec<String>,
    /// The connecting client's address (`PAM_RHOST`), when known.
    pub client_addr: Option<String>,
}

/// Controller → agent on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerMessage {
    /// Variant 0, forever: the Hello was accepted.
    Welcome {
        /// The identity the controller read from the agent's certificate.
        agent_id: AgentId,
        /// How often each side sends a heartbeat.
        heartbeat_interval_ms: u64,
        /// Beats a side may miss before the other declares it lost.
        missed_beats_allowed: u32,
    },
    /// Variant 1, forever: the connection is refused; the controller closes it after this.
    Refused {
        /// What was wrong and what to do, for the agent to log as is.
        reason: String,
    },
    /// Variant 2: answer to a successful [`AgentMessage::Enroll`].
    Enrolled {
        /// The id the controller assigned.
        agent_id: AgentId,
        /// The site the token was issued for.
        site: String,
        /// The agent's certificate (leaf only).
        certificate_pem: String,
        /// The CA to trust for the controller from now on.
        ca_pem: String,
    },
    /// Variant 3: liveness.
    Heartbeat {
        /// Increases by one per beat sent on this connection.
        seq: u64,
    },
    /// Variant 4: asks for a [`AgentMessage::Pong`] (round-trip measurement, liveness probe).
    Ping {
        /// Echoed in the Pong.
        nonce: u64,
    },
    /// Variant 5: these results are durably recorded; the agent may drop them from its journal.
    AckResults {
        /// Ids of the acknowledged jobs.
        ids: Vec<JobId>,
    },
    /// Variant 6: answer to [`AgentMessage::OtpVerify`].
    OtpVerdict {
        /// Whether the OTP was valid (and is now consumed).
        valid: bool,
        /// Why not, for the helper's log; never contains the OTP.
        reason: String,
    },
}

/// Controller → agent, first frame of a job stream (one bidirectional stream per job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Makes delivery idempotent: a job received twice runs once.
    pub id: JobId,
    /// Wall-clock deadline, Unix milliseconds; the agent stops starting new steps after it.
    pub deadline_unix_ms: u64,
    /// What to do.
    pub kind: JobKind,
}

/// What a job asks the agent to do. Engines append variants; never reorder or remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// Variant 0: return `payload` unchanged (tests and link checks).
    Echo {
        /// Bytes to return.
        payload: Vec<u8>,
    },
    /// Variant 1: a job of the OS secrets engine (log in, rotate).
    Os(super::os::OsJob),
    /// Variant 2: a job of the database secrets engine (PostgreSQL roles).
    Database(super::database::DbJob),
}

/// The capabilities (job kinds) this release's agent can run, as it sends them in
/// [`Hello::capabilities`]; the controller sends a job only to an agent that lists its
/// [`JobKind::capability`].
pub const AGENT_CAPABILITIES: &[&str] = &[JobKind::ECHO, JobKind::OS, JobKind::DATABASE];

impl JobKind {
    /// The capability of [`JobKind::Echo`].
    pub const ECHO: &'static str = "echo";
    /// The capability of [`JobKind::Os`].
    pub const OS: &'static str = "os";
    /// The capability of [`JobKind::Database`].
    pub const DATABASE: &'static str = "database";

    /// The capability an agent must advertise to be sent this job.
    pub fn capability(&self) -> &'static str {
        match self {
            JobKind::Echo { .. } => Self::ECHO,
            JobKind::Os(_) => Self::OS,
            JobKind::Database(_) => Self::DATABASE,
        }
    }

    /// Whether the job changes a credential on its target. Its result is evidence the
    /// controller must keep until it has committed it, so the agent's journal entry is
    /// acknowledged only then (not when the result arrives).
    pub fn changes_a_credential(&self) -> bool {
        use super::os::OsJob;
        match self {
            JobKind::Echo { .. } => false,
            JobKind::Os(job) => matches!(
                job,
                OsJob::RotateWithParent { .. }
                    | OsJob::RotateSelf { .. }
                    | OsJob::RotateLocal { .. }
            ),
            JobKind::Database(job) => job.changes_a_credential(),
        }
    }
}

/// Agent → controller on a job stream: `Accepted`, then `Result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobReply {
    /// Variant 0: the job is recorded and will run (or has run: its result follows).
    Accepted {
        /// The job's id.
        id: JobId,
    },
    /// Variant 1: the job's outcome.
    Result(JobResult),
}

/// The outcome of one job, also kept in the agent's journal until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job's id.
    pub id: JobId,
    /// What happened.
    pub outcome: JobOutcome,
}

/// What happened. Success variants mirror [`JobKind`]; engines append variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcome {
    /// Variant 0: the echoed payload.
    Echo {
        /// The bytes from [`JobKind::Echo`].
        payload: Vec<u8>,
    },
    /// Variant 1: the job failed.
    Failed(JobFailure),
    /// Variant 2: what an OS engine job found or did.
    Os(super::os::OsOutcome),
    /// Variant 3: what a database engine job found or did.
    Database(super::database::DbOutcome),
}

/// Why a job failed, and whether anything may have changed on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// Decides between "retry" and "verify before trusting anything".
    pub certainty: FailureCertainty,
    /// What failed, where, and what to do; never contains a secret.
    pub message: String,
}

/// Whether a failure happened certainly before any change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureCertainty {
    /// Certainly nothing changed on the target (refused connection, host-key mismatch,
    /// authentication failure, `passwd` rejecting the current password).
    BeforeChange,
    /// The change may or may not have happened: the controller must verify.
    Unknown,
}
