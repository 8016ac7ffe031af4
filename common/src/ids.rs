//! Identifiers that cross process boundaries: agent ids and job ids.
//!
//! Owns their validation, generation and text forms. Holds no registry: whether an id is
//! known, enrolled or revoked is the controller's business.

use std::fmt;
use std::str::FromStr;

use rand::RngExt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest agent id accepted, in characters.
pub const AGENT_ID_MAX_LEN: usize = 64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The agent id was empty.
    #[error("agent id is empty: use 1 to {AGENT_ID_MAX_LEN} characters from a-z, 0-9 and '-'")]
    EmptyAgentId,
    /// The agent id was longer than [`AGENT_ID_MAX_LEN`].
    #[error(
        "agent id is {length} characters long, the limit is {AGENT_ID_MAX_LEN}: choose a shorter id"
    )]
    AgentIdTooLong {
        /// Length of the rejected id, in characters.
        length: usize,
    },
    /// The agent id contained a character outside `[a-z0-9-]`.
    #[error(
        "agent id {shown:?} contains {character:?}: only lowercase letters a-z, digits 0-9 and '-' are allowed"
    )]
    AgentIdCharacter {
        /// The id, truncated for display.
        shown: String,
        /// The first character that is not allowed.
        character: char,
    },
    /// A job id was not 32 hexadecimal digits.
    #[error("job id {shown:?} is not 32 hexadecimal digits")]
    JobIdFormat {
        /// The rejected text, truncated for display.
        shown: String,
    },
}

/// Shortens user-supplied text before it goes into an error message.
fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

/// An agent's identity: `[a-z0-9-]{1,64}`. It is the `<id>` of the agent certificate's SAN
/// URI `rotor://agent/<id>`, so a value of this type is always safe to put in a URI, a path
/// component or a log line.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Validates `value` as an agent id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(IdError::EmptyAgentId);
        }
        let length = value.chars().count();
        if length > AGENT_ID_MAX_LEN {
            return Err(IdError::AgentIdTooLong { length });
        }
        if let Some(character) = value
            .chars()
            .find(|character| !matches!(character, 'a'..='z' | '0'..='9' | '-'))
        {
            return Err(IdError::AgentIdCharacter {
                shown: shown(&value),
                character,
            });
        }
        Ok(Self(value))
    }

    /// A fresh random id of 16 lowercase hex digits (64 bits from the thread's CSPRNG).
    pub fn generate() -> Self {
        let random: u64 = rand::rng().random();
        Self(format!("{random:016x}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "AgentId({})", self.0)
    }
}

impl FromStr for AgentId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        Self::new(text)
    }
}

impl TryFrom<String> for AgentId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<AgentId> for String {
    fn from(id: AgentId) -> String {
        id.0
    }
}

impl AsRef<str> for AgentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A job's identity, 128 random bits. Shown as 32 lowercase hex digits.
///
/// Serialized as the integer in binary formats (postcard) and as the 32-digit hex string in
/// human-readable ones (JSON), where a 128-bit number would lose precision in most clients.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u128);

impl JobId {
    /// A fresh random id from the thread's CSPRNG.
    pub fn generate() -> Self {
        Self(rand::rng().random())
    }

    /// The raw 128-bit value.
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:032x}", self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "JobId({:032x})", self.0)
    }
}

impl FromStr for JobId {
    type Err = IdError;

    /// Accepts exactly 32 hex digits, either case.
    fn from_str(text: &str) -> Result<Self, IdError> {
        if text.len() != 32 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(IdError::JobIdFormat { shown: shown(text) });
        }
        u128::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| IdError::JobIdFormat { shown: shown(text) })
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u128(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            u128::deserialize(deserializer).map(Self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_validation() {
        assert!(AgentId::new("site-a-jump-01").is_ok());
        assert!(AgentId::new("a").is_ok());
        assert!(AgentId::new("x".repeat(64)).is_ok());
        assert_eq!(AgentId::new(""), Err(IdError::EmptyAgentId));
        assert_eq!(
            AgentId::new("x".repeat(65)),
            Err(IdError::AgentIdTooLong { length: 65 })
        );
        for bad in ["Upper", "under_score", "dot.ted", "sla/sh", "sp ace", "é"] {
            let error = AgentId::new(bad).expect_err(bad);
            assert!(
                matches!(error, IdError::AgentIdCharacter { .. }),
                "{bad}: {error}"
            );
        }
        let message = AgentId::new("Bad").expect_err("uppercase").to_string();
        assert!(
            message.contains("'B'") && message.contains("a-z"),
            "{message}"
        );
    }

    #[test]
    fn generated_agent_ids_are_valid_and_distinct() {
        let first = AgentId::generate();
        let second = AgentId::generate();
        assert_eq!(first.as_str().len(), 16);
        assert!(AgentId::new(first.as_str()).is_ok());
        assert_ne!(first, second);
    }

    #[test]
    fn agent_id_serde_validates() {
        let id = AgentId::new("agent-7").expect("valid");
        let encoded = postcard::to_stdvec(&id).expect("encode");
        assert_eq!(
            postcard::from_bytes::<AgentId>(&encoded).expect("decode"),
            id
        );
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"agent-7\"");
        let bad = postcard::to_stdvec("../etc").expect("encode");
        assert!(postcard::from_bytes::<AgentId>(&bad).is_err());
        assert!(serde_json::from_str::<AgentId>("\"Nope\"").is_err());
    }

    #[test]
    fn job_id_text_forms() {
        let id = JobId(0xab);
        assert_eq!(id.to_string(), "000000000000000000000000000000ab");
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        assert_eq!("000000000000000000000000000000AB".parse::<JobId>(), Ok(id));
        assert!("ab".parse::<JobId>().is_err());
        assert!("+0000000000000000000000000000000".parse::<JobId>().is_err());
        let generated = JobId::generate();
        assert_eq!(generated.to_string().len(), 32);
        assert_ne!(generated, JobId::generate());
    }

    #[test]
    fn job_id_serde_forms() {
        let id = JobId(u128::MAX - 5);
        let encoded = postcard::to_stdvec(&id).expect("encode");
        assert_eq!(postcard::from_bytes::<JobId>(&encoded).expect("decode"), id);
        let json = serde_json::to_string(&id).expect("json");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(
            serde_json::from_str::<JobId>(&json).expect("json decode"),
            id
        );
    }
}
