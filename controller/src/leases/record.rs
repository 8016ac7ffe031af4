//! A lease as the store keeps it, and the pure arithmetic around it: renewal capped by the
//! maximum TTL, retry backoff for failed revocations, directory-style listing of lease ids.
//!
//! IO-free: every function takes `now`. Must not run revoke actions or touch the store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// First wait after a failed revocation; doubles with each failure.
pub const FIRST_RETRY_SECS: u64 = 5;
/// Longest wait between two revocation attempts.
pub const MAX_RETRY_SECS: u64 = 3600;

/// Why the last revocation attempts failed; present only while a revocation is failing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevocationFailure {
    pub attempts: u32,
    pub last_error: String,
    pub first_failed_unix: u64,
    pub next_attempt_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseRecord {
    /// `<path the secret was issued at>/<random>`, e.g. `ssh/creds/otp/4f1c…`.
    pub lease_id: String,
    /// Which registered revoke action ends this secret (`ssh_otp`, `database_user`, ...).
    pub secret_kind: String,
    pub issue_unix: u64,
    pub expire_unix: u64,
    /// Renewals never go past this (issue time + max TTL).
    pub max_expire_unix: u64,
    /// The TTL the lease was issued with: a renewal without increment asks for it again.
    pub ttl_secs: u64,
    pub renewable: bool,
    #[serde(default)]
    pub last_renewal_unix: Option<u64>,
    /// The accessor of the token the secret was issued to; revoking it revokes the lease.
    #[serde(default)]
    pub owner_accessor: Option<String>,
    /// What the revoke action needs (engine-defined; never a secret in clear).
    #[serde(default)]
    pub revoke_data: Value,
    #[serde(default)]
    pub revocation: Option<RevocationFailure>,
}

impl LeaseRecord {
    /// When the sweeper should next look at this lease.
    pub fn due_unix(&self) -> u64 {
        match &self.revocation {
            Some(failure) => failure.next_attempt_unix,
            None => self.expire_unix,
        }
    }

    pub fn ttl_remaining(&self, now: u64) -> u64 {
        self.expire_unix.saturating_sub(now)
    }
}

/// The expiry after renewing by `increment_secs` (0 = the lease's own TTL), capped by its
/// maximum. Vault counts the increment from now, not from the old expiry.
pub fn renewed_expiry(lease: &LeaseRecord, increment_secs: u64, now: u64) -> u64 {
    let wanted = if increment_secs > 0 {
        increment_secs
    } else {
        lease.ttl_secs
    };
    now.saturating_add(wanted).min(lease.max_expire_unix)
}

/// How long to wait after the `attempts`-th failed revocation: 5s, 10s, 20s, ... 1h.
pub fn retry_delay_secs(attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(20);
    FIRST_RETRY_SECS
        .saturating_mul(1u64 << doublings)
        .min(MAX_RETRY_SECS)
}

/// The failure state after one more failed attempt.
pub fn record_failure(
    previous: Option<&RevocationFailure>,
    error: &str,
    now: u64,
) -> RevocationFailure {
    let attempts = previous.map(|failure| failure.attempts).unwrap_or(0) + 1;
    RevocationFailure {
        attempts,
        last_error: error.to_string(),
        first_failed_unix: previous
            .map(|failure| failure.first_failed_unix)
            .unwrap_or(now),
        next_attempt_unix: now.saturating_add(retry_delay_secs(attempts)),
    }
}

/// One level of a directory-style listing: the ids under `prefix` (which ends in `/` or is
/// empty) cut at their next `/` (folders keep the slash), sorted and unique.
pub fn list_level<'a>(prefix: &str, ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut keys: Vec<String> = ids
        .into_iter()
        .filter_map(|id| id.strip_prefix(prefix))
        .filter(|rest| !rest.is_empty())
        .map(|rest| match rest.split_once('/') {
            Some((folder, _)) => format!("{folder}/"),
            None => rest.to_string(),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ttl: u64, max: u64, now: u64) -> LeaseRecord {
        LeaseRecord {
            lease_id: "test/creds/x/1".into(),
            secret_kind: "test".into(),
            issue_unix: now,
            expire_unix: now + ttl,
            max_expire_unix: now + max,
            ttl_secs: ttl,
            renewable: true,
            last_renewal_unix: None,
            owner_accessor: None,
            revoke_data: Value::Null,
            revocation: None,
        }
    }

    #[test]
    fn renewal_counts_from_now_and_stops_at_the_maximum() {
        let record = lease(3600, 7200, 1000);
        assert_eq!(renewed_expiry(&record, 0, 2000), 5600);
        assert_eq!(renewed_expiry(&record, 60, 2000), 2060);
        assert_eq!(renewed_expiry(&record, 100_000, 2000), 8200);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let delays: Vec<u64> = (1..=6).map(retry_delay_secs).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160]);
        assert_eq!(retry_delay_secs(40), MAX_RETRY_SECS);
        let first = record_failure(None, "host unreachable", 100);
        assert_eq!(first.attempts, 1);
        assert_eq!(first.next_attempt_unix, 105);
        let second = record_failure(Some(&first), "still unreachable", 105);
        assert_eq!(second.attempts, 2);
        assert_eq!(second.first_failed_unix, 100);
        assert_eq!(second.next_attempt_unix, 115);
        let mut failing = lease(10, 10, 0);
        failing.revocation = Some(second);
        assert_eq!(failing.due_unix(), 115);
    }

    #[test]
    fn listing_is_one_level_deep() {
        let ids = [
            "ssh/creds/otp/a1",
            "ssh/creds/otp/b2",
            "ssh/creds/other/c3",
            "database/creds/ro/d4",
        ];
        assert_eq!(list_level("", ids), vec!["database/", "ssh/"]);
        assert_eq!(list_level("ssh/creds/", ids), vec!["other/", "otp/"]);
        assert_eq!(list_level("ssh/creds/otp/", ids), vec!["a1", "b2"]);
        assert!(list_level("nothing/", ids).is_empty());
    }
}
