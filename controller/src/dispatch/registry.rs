//! The agent registry as the store keeps it: enrolled agents, their certificates, revocation,
//! and the one-time enrollment tokens.
//!
//! Owns the records and the operations named for intent (`create_enrollment_token`,
//! `consume_enrollment_token`, `register_agent`, `revoke_agent`). Must not touch QUIC.

use std::time::Duration;

use rotor_common::ids::AgentId;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, StoreResult, Table};
use crate::tokens::{now_unix, token_key};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollmentTokenRecord {
    pub agent_id: String,
    pub site: String,
    pub expires_unix: u64,
    pub created_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub site: String,
    pub enrolled_unix: u64,
    pub certificate_serial: String,
    pub certificate_not_after_unix: i64,
    pub agent_version: String,
    pub revoked_unix: Option<u64>,
    pub last_seen_unix: Option<u64>,
    pub last_remote_address: Option<String>,
}

/// Why an enrollment token was not accepted. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentRefusal {
    #[error(
        "enrollment token is not valid: it was never issued or has already been used; ask an operator for a new one (rotor write agents/enroll site=...)"
    )]
    UnknownOrUsed,
    #[error("enrollment token expired {seconds_ago}s ago; ask an operator for a new one")]
    Expired { seconds_ago: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a connecting agent is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentRefusal {
    #[error("agent {0} is not enrolled with this controller; enroll it with a fresh token")]
    Unknown(String),
    #[error("agent {0} has been revoked; it will be refused from now on: enroll a new agent")]
    Revoked(String),
    #[error(
        "agent {id} presented certificate serial {presented}, but its current certificate is {expected}; enroll again"
    )]
    StaleCertificate {
        id: String,
        presented: String,
        expected: String,
    },
}

/// What a site name may hold, for messages: the rule [`is_valid_site_name`] checks.
pub const SITE_NAME_RULE: &str = "lowercase letters, digits, '-' and '_', up to 64";

/// Whether `site` can name a site (of agents and of the hosts they reach).
pub fn is_valid_site_name(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 64
        && site
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The sites of enrolled agents that are not revoked, sorted, each once.
pub fn sites_with_agents(store: &Store) -> StoreResult<Vec<String>> {
    let mut sites: Vec<String> = list_agents(store)?
        .into_iter()
        .filter(|agent| agent.revoked_unix.is_none())
        .map(|agent| agent.site)
        .collect();
    sites.sort();
    sites.dedup();
    Ok(sites)
}

/// Whether `site` has an enrolled agent that is not revoked (connected or not).
pub fn site_has_agent(store: &Store, site: &str) -> StoreResult<bool> {
    Ok(list_agents(store)?
        .iter()
        .any(|agent| agent.site == site && agent.revoked_unix.is_none()))
}

/// Issues a one-time token that enrolls one agent into `site`. Answers the token (shown
/// once; only its hash is stored) and its record.
pub fn create_enrollment_token(
    store: &Store,
    site: &str,
    ttl: Duration,
) -> StoreResult<(String, EnrollmentTokenRecord)> {
    let token = crate::tokens::generate_token();
    let now = now_unix();
    let record = EnrollmentTokenRecord {
        agent_id: AgentId::generate().to_string(),
        site: site.to_string(),
        expires_unix: now.saturating_add(ttl.as_secs()),
        created_unix: now,
    };
    store.write(|tx| tx.put(Table::EnrollmentTokens, &token_key(&token), &record))?;
    Ok((token, record))
}

/// Consumes a token atomically: it works once, and not after its expiry.
pub fn consume_enrollment_token(
    store: &Store,
    token: &str,
) -> Result<EnrollmentTokenRecord, EnrollmentRefusal> {
    let key = token_key(token);
    store.write(|tx| {
        let record: EnrollmentTokenRecord = tx
            .get(Table::EnrollmentTokens, &key)?
            .ok_or(EnrollmentRefusal::UnknownOrUsed)?;
        tx.delete(Table::EnrollmentTokens, &key)?;
        let now = now_unix();
        if now > record.expires_unix {
            return Err(EnrollmentRefusal::Expired {
                seconds_ago: now - record.expires_unix,
            });
        }
        Ok(record)
    })
}

pub fn register_agent(store: &Store, record: &AgentRecord) -> StoreResult<()> {
    store.write(|tx| tx.put(Table::Agents, &record.id, record))
}

pub fn get_agent(store: &Store, id: &str) -> StoreResult<Option<AgentRecord>> {
    store.get(Table::Agents, id)
}

pub fn list_agents(store: &Store) -> StoreResult<Vec<AgentRecord>> {
    Ok(store
        .scan::<AgentRecord>(Table::Agents, "")?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// Checks a connecting agent against the registry and its current certificate.
pub fn admit_agent(
    store: &Store,
    id: &str,
    presented_serial: &str,
) -> Result<AgentRecord, AgentRefusalOrStore> {
    let record = get_agent(store, id)?.ok_or_else(|| AgentRefusal::Unknown(id.to_string()))?;
    if record.revoked_unix.is_some() {
        return Err(AgentRefusal::Revoked(id.to_string()).into());
    }
    if record.certificate_serial != presented_serial {
        return Err(AgentRefusal::StaleCertificate {
            id: id.to_string(),
            presented: presented_serial.to_string(),
            expected: record.certificate_serial.clone(),
        }
        .into());
    }
    Ok(record)
}

#[derive(Debug, thiserror::Error)]
pub enum AgentRefusalOrStore {
    #[error(transparent)]
    Refused(#[from] AgentRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Marks an agent revoked; answers false when no such agent exists.
pub fn revoke_agent(store: &Store, id: &str) -> StoreResult<bool> {
    store.write(|tx| {
        let Some(mut record) = tx.get::<AgentRecord>(Table::Agents, id)? else {
            return Ok(false);
        };
        if record.revoked_unix.is_none() {
            record.revoked_unix = Some(now_unix());
            tx.put(Table::Agents, id, &record)?;
        }
        Ok(true)
    })
}

/// Records when and from where an agent was last heard.
pub fn touch_agent(store: &Store, id: &str, remote_address: &str) -> StoreResult<()> {
    store.write(|tx| {
        if let Some(mut record) = tx.get::<AgentRecord>(Table::Agents, id)? {
            record.last_seen_unix = Some(now_unix());
            record.last_remote_address = Some(remote_address.to_string());
            tx.put(Table::Agents, id, &record)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    #[test]
    fn token_works_once_and_not_after_expiry() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let (token, record) =
            create_enrollment_token(&store, "a", Duration::from_secs(60)).expect("token");
        assert_eq!(record.site, "a");
        let consumed = consume_enrollment_token(&store, &token).expect("first use");
        assert_eq!(consumed.agent_id, record.agent_id);
        assert!(matches!(
            consume_enrollment_token(&store, &token),
            Err(EnrollmentRefusal::UnknownOrUsed)
        ));
        let (expired, _) = create_enrollment_token(&store, "a", Duration::ZERO).expect("token");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            consume_enrollment_token(&store, &expired),
            Err(EnrollmentRefusal::Expired { .. })
        ));
        assert!(matches!(
            consume_enrollment_token(&store, "rtr.never-issued"),
            Err(EnrollmentRefusal::UnknownOrUsed)
        ));
    }

    #[test]
    fn revoked_and_stale_agents_are_refused() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        let record = AgentRecord {
            id: "abc".into(),
            site: "a".into(),
            enrolled_unix: 1,
            certificate_serial: "01".into(),
            certificate_not_after_unix: 2,
            agent_version: "0.1.0".into(),
            revoked_unix: None,
            last_seen_unix: None,
            last_remote_address: None,
        };
        register_agent(&store, &record).expect("register");
        assert!(admit_agent(&store, "abc", "01").is_ok());
        assert!(matches!(
            admit_agent(&store, "abc", "02"),
            Err(AgentRefusalOrStore::Refused(
                AgentRefusal::StaleCertificate { .. }
            ))
        ));
        assert!(matches!(
            admit_agent(&store, "zzz", "01"),
            Err(AgentRefusalOrStore::Refused(AgentRefusal::Unknown(_)))
        ));
        assert!(revoke_agent(&store, "abc").expect("revoke"));
        assert!(matches!(
            admit_agent(&store, "abc", "01"),
            Err(AgentRefusalOrStore::Refused(AgentRefusal::Revoked(_)))
        ));
        assert!(!revoke_agent(&store, "zzz").expect("revoke unknown"));
    }
}
