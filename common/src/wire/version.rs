//! Protocol version negotiation: identify the version of an agent's first frame without
//! trusting the rest of its layout, and refuse incompatible peers with a message an operator
//! can act on.
//!
//! Relies on the compatibility rules in `wire/mod.rs`: the first-frame variants keep their
//! indexes and keep `protocol_version` as their first field in every version.

use super::PROTOCOL_VERSION;
use super::frame::{FrameError, decode_payload};
use super::messages::AgentMessage;

/// Oldest agent protocol this build still accepts.
pub const MIN_SUPPORTED_PROTOCOL_VERSION: u16 = 1;

/// Variant indexes of the messages that may open a connection, each starting with
/// `protocol_version: u16` (see [`AgentMessage`]).
const HELLO_VARIANT: u32 = 0;
const ENROLL_VARIANT: u32 = 1;
const OTP_VERIFY_VARIANT: u32 = 4;

/// The agent's first frame cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum FirstFrameError {
    /// The agent speaks a protocol version this controller does not; `message` says which
    /// side to upgrade and is meant to be sent back verbatim in `Refused { reason }`.
    #[error("{message}")]
    IncompatibleVersion {
        /// The version the agent announced.
        peer: u16,
        /// The operator-facing explanation, from [`check_compatible`].
        message: String,
    },
    /// A well-formed message that may not open a connection (e.g. a Heartbeat).
    #[error(
        "the first frame on a connection must be Hello, Enroll or OtpVerify, but the agent sent {kind}"
    )]
    UnexpectedMessage {
        /// Name of the variant received.
        kind: &'static str,
    },
    /// The payload does not decode as an agent message of this version.
    #[error("agent's first frame is unreadable: {0}")]
    Malformed(#[from] FrameError),
}

/// Reads the protocol version from a first-frame payload (Hello, Enroll or OtpVerify) by
/// looking only at the variant index and the first field, so a later version's Hello is
/// identified even if the rest of its layout changed. `None` if the payload is not one of
/// those messages or is too short.
pub fn peek_protocol_version(frame_payload: &[u8]) -> Option<u16> {
    // postcard: the variant index is a varint u32, then the struct's fields in order; a u16
    // field is a varint too. Using postcard itself keeps this exactly in step with encoding.
    let (variant, rest) = postcard::take_from_bytes::<u32>(frame_payload).ok()?;
    if !matches!(variant, HELLO_VARIANT | ENROLL_VARIANT | OTP_VERIFY_VARIANT) {
        return None;
    }
    let (version, _) = postcard::take_from_bytes::<u16>(rest).ok()?;
    Some(version)
}

/// Whether an agent speaking protocol `peer` can talk to this build; if not, a message that
/// says which side to upgrade.
pub fn check_compatible(peer: u16) -> Result<(), String> {
    if (MIN_SUPPORTED_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&peer) {
        return Ok(());
    }
    if peer > PROTOCOL_VERSION {
        Err(format!(
            "agent speaks rotor protocol {peer}, this controller speaks {PROTOCOL_VERSION}: \
             upgrade the controller or install a matching agent"
        ))
    } else {
        Err(format!(
            "agent speaks rotor protocol {peer}, this controller speaks {PROTOCOL_VERSION} \
             (and no older than {MIN_SUPPORTED_PROTOCOL_VERSION}): upgrade the agent"
        ))
    }
}

/// Decodes the first frame an agent sends on a connection: peeks its protocol version,
/// refuses incompatible versions with [`check_compatible`]'s message instead of mis-decoding,
/// then decodes the message and checks it is one that may open a connection.
pub fn decode_agent_first_frame(payload: &[u8]) -> Result<AgentMessage, FirstFrameError> {
    if let Some(peer) = peek_protocol_version(payload) {
        check_compatible(peer)
            .map_err(|message| FirstFrameError::IncompatibleVersion { peer, message })?;
    }
    let message: AgentMessage = decode_payload(payload)?;
    match message {
        AgentMessage::Hello(_) | AgentMessage::Enroll(_) | AgentMessage::OtpVerify(_) => {
            Ok(message)
        }
        AgentMessage::Heartbeat { .. } => {
            Err(FirstFrameError::UnexpectedMessage { kind: "Heartbeat" })
        }
        AgentMessage::Pong { .. } => Err(FirstFrameError::UnexpectedMessage { kind: "Pong" }),
        AgentMessage::Metrics(_) => Err(FirstFrameError::UnexpectedMessage { kind: "Metrics" }),
        AgentMessage::Results(_) => Err(FirstFrameError::UnexpectedMessage { kind: "Results" }),
    }
}
