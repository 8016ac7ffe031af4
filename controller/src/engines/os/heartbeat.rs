//! Heartbeat verification's records: an account's `verify_period` and what its last
//! verification found, kept in `meta` under `os-verify:<mount><host>/<account>`.
//!
//! Owns that record's layout and its store operations, and the pure question "is a
//! verification due?". Kept beside the account record rather than in it so that adding it
//! changed no account layout; `model::delete_account` deletes it with the account. Must not
//! log in anywhere: the driver's `verify_current` does, and records its result here; the
//! scheduler decides when.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model;
use crate::store::{Store, StoreResult, Table};

/// What a verification login found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyResult {
    /// The known password logs in.
    InSync,
    /// It does not: the account was marked `out_of_sync`.
    OutOfSync,
    /// The login could not be tried (no agent, host unreachable, …).
    NotRun,
}

impl VerifyResult {
    pub fn name(self) -> &'static str {
        match self {
            VerifyResult::InSync => "in_sync",
            VerifyResult::OutOfSync => "out_of_sync",
            VerifyResult::NotRun => "not_run",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyRecord {
    /// Verify this often; `None`: only when asked (`…/verify`).
    pub period_secs: Option<u64>,
    /// When the period was set: the first heartbeat is one period after it.
    pub since_unix: u64,
    pub last_verified_unix: Option<u64>,
    pub last_result: Option<VerifyResult>,
    /// Why, when the result is not `in_sync`.
    pub last_detail: Option<String>,
}

impl VerifyRecord {
    /// When the next heartbeat is due, if the account has a period.
    pub fn next_due(&self) -> Option<u64> {
        let period = self.period_secs?;
        let base = self.last_verified_unix.unwrap_or(0).max(self.since_unix);
        Some(base.saturating_add(period))
    }

    /// Pure: is a heartbeat verification due at `now`?
    pub fn due(&self, now: u64) -> bool {
        self.next_due().is_some_and(|due| now >= due)
    }
}

pub const PREFIX: &str = "os-verify:";

pub fn key(mount: &str, host: &str, account: &str) -> String {
    format!("{PREFIX}{}", model::account_key(mount, host, account))
}

pub fn get(store: &Store, mount: &str, host: &str, account: &str) -> StoreResult<VerifyRecord> {
    Ok(store
        .get(Table::Meta, &key(mount, host, account))?
        .unwrap_or_default())
}

/// Sets (or with 0, clears) the account's heartbeat period.
pub fn set_period(
    store: &Store,
    mount: &str,
    host: &str,
    account: &str,
    period_secs: u64,
    now: u64,
) -> StoreResult<()> {
    let key = key(mount, host, account);
    store.write(|tx| {
        let mut record: VerifyRecord = tx.get(Table::Meta, &key)?.unwrap_or_default();
        record.period_secs = Some(period_secs).filter(|secs| *secs > 0);
        record.since_unix = now;
        tx.put(Table::Meta, &key, &record)
    })
}

/// Records what a verification (scheduled or asked for) found.
pub fn record_result(
    store: &Store,
    mount: &str,
    host: &str,
    account: &str,
    at: u64,
    result: VerifyResult,
    detail: Option<String>,
) -> StoreResult<()> {
    let key = key(mount, host, account);
    store.write(|tx| {
        let mut record: VerifyRecord = tx.get(Table::Meta, &key)?.unwrap_or_default();
        record.last_verified_unix = Some(at);
        record.last_result = Some(result);
        record.last_detail = detail;
        tx.put(Table::Meta, &key, &record)
    })
}

/// Every account of `mount` with a heartbeat record: `(host, account, record)`.
pub fn all(store: &Store, mount: &str) -> StoreResult<Vec<(String, String, VerifyRecord)>> {
    let prefix = format!("{PREFIX}{mount}");
    Ok(store
        .scan::<VerifyRecord>(Table::Meta, &prefix)?
        .into_iter()
        .filter_map(|(key, record)| {
            let rest = key.strip_prefix(&prefix)?;
            let (host, account) = rest.split_once('/')?;
            Some((host.to_string(), account.to_string(), record))
        })
        .collect())
}

/// The fields an account's read shows.
pub fn json(record: &VerifyRecord) -> Map<String, Value> {
    let rfc3339 = |unix: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix),
        )
        .to_string()
    };
    crate::data_map! {
        "verify_period" => record.period_secs,
        "last_verified" => record.last_verified_unix.map(rfc3339),
        "last_verification" => record.last_result.map(VerifyResult::name),
        "last_verification_detail" => record.last_detail,
        "next_verification" => record.next_due().map(rfc3339),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;

    #[test]
    fn due_one_period_after_the_last_verification_or_the_period_set() {
        let mut record = VerifyRecord::default();
        assert!(!record.due(u64::MAX), "no period: never due");
        record.period_secs = Some(60);
        record.since_unix = 1_000;
        assert!(!record.due(1_059));
        assert!(record.due(1_060));
        record.last_verified_unix = Some(2_000);
        assert!(!record.due(2_059));
        assert!(record.due(2_060));
        assert_eq!(record.next_due(), Some(2_060));
        // Re-setting the period later restarts the count from then.
        record.since_unix = 3_000;
        assert_eq!(record.next_due(), Some(3_060));
    }

    #[test]
    fn records_round_trip_and_are_listed_per_mount() {
        let store = Store::in_memory(Sealer::ephemeral()).expect("store");
        set_period(&store, "os/", "web-1", "app1", 30, 100).expect("set");
        set_period(&store, "other/", "web-1", "app1", 30, 100).expect("set");
        record_result(
            &store,
            "os/",
            "web-1",
            "app1",
            150,
            VerifyResult::OutOfSync,
            Some("the known password no longer logs in".into()),
        )
        .expect("record");
        let record = get(&store, "os/", "web-1", "app1").expect("get");
        assert_eq!(record.period_secs, Some(30));
        assert_eq!(record.last_result, Some(VerifyResult::OutOfSync));
        assert_eq!(record.next_due(), Some(180));
        let listed = all(&store, "os/").expect("all");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].0.as_str(), listed[0].1.as_str()),
            ("web-1", "app1")
        );
        let shown = json(&record);
        assert_eq!(shown["last_verification"], "out_of_sync");
        assert_eq!(shown["verify_period"], 30);
        set_period(&store, "os/", "web-1", "app1", 0, 200).expect("clear");
        assert!(
            !get(&store, "os/", "web-1", "app1")
                .expect("get")
                .due(u64::MAX)
        );
    }
}
