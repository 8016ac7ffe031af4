//! The controller ↔ agent wire protocol: constants, framing, messages and version checks.
//!
//! Everything here is a pure codec apart from [`read_frame`] / [`write_frame`], which only
//! move whole frames over a stream they are handed. Connection handling, heartbeat timing and
//! job bookkeeping belong to the controller's `dispatch` and the agent's `link`, not here.
//!
//! Compatibility rules (also stated on each type):
//! - `AgentMessage::Hello` is variant 0 and `AgentMessage::Enroll` variant 1, each with
//!   `protocol_version` as its first field, forever, so [`peek_protocol_version`] can identify
//!   any future version's first frame.
//! - `ControllerMessage::Welcome` is variant 0 and `Refused { reason }` variant 1, forever, so
//!   an agent of any version can read why it was turned away.
//! - Enums only grow at the end; a new variant or field is a new [`PROTOCOL_VERSION`] unless
//!   it is a new job kind that older agents never receive.

pub mod database;
mod frame;
mod messages;
pub mod os;
mod version;

pub use frame::{
    FRAME_HEADER_LEN, FrameError, decode_frame, decode_payload, encode_frame, read_frame,
    read_frame_payload, split_frame, write_frame,
};
pub use messages::{
    AGENT_CAPABILITIES, AgentMessage, AgentMetrics, ControllerMessage, EnrollRequest,
    FailureCertainty, Hello, Job, JobFailure, JobKind, JobOutcome, JobReply, JobResult,
    OtpVerifyRequest,
};
pub use version::{
    FirstFrameError, MIN_SUPPORTED_PROTOCOL_VERSION, check_compatible, decode_agent_first_frame,
    peek_protocol_version,
};

/// The protocol version this build speaks.
///
/// - 1: the first.
/// - 2: agents send `AgentMessage::Metrics` (variant 5) after heartbeats. A version-1
///   controller refuses a version-2 agent with "upgrade the controller" instead of dropping
///   its link at the first Metrics frame; version-1 agents, which never send it, are still
///   accepted.
/// - 3: agents send `AgentMessage::Results` (variant 6) on the control stream for results
///   whose job stream was gone; a version-2 controller refuses a version-3 agent clearly.
pub const PROTOCOL_VERSION: u16 = 3;

/// The QUIC/TLS application protocol name; both sides refuse a handshake without it.
pub const ALPN: &[u8] = b"rotor/1";

/// Largest frame payload (the postcard message, not counting the 4-byte length prefix).
pub const MAX_FRAME_LEN: usize = 1 << 20;

#[cfg(test)]
mod tests;
