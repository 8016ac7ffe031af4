//! The fleet as the signed-in token sees it: hosts, accounts, agents, jobs and leases, each
//! gathered through the API (`client.rs`), and the pure summaries pages draw from them
//! (accounts by status per site, out-of-sync first, filters).
//!
//! Owns the console's statuses: the API's `in_sync | rotating | verifying | out_of_sync`, plus
//! `rotation_failing` for an account in sync whose last rotation failed and waits to retry.
//! An account the token may not read is listed as `hidden` (its name came from a list the
//! token may read) and never counted in a status. Must not read the store.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::client::{ApiClient, Visible, text};
use crate::api::ApiError;

/// The OS engine's mount the console shows.
pub const OS_MOUNT: &str = "os";

/// Statuses in the order pages show them.
pub const STATUSES: [&str; 5] = [
    "out_of_sync",
    "rotation_failing",
    "rotating",
    "verifying",
    "in_sync",
];

/// One account as the list pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub host: String,
    pub account: String,
    pub site: String,
    /// One of [`STATUSES`], or `hidden` when the token may not read the account.
    pub status: String,
    /// Why it is out of sync, or the last error.
    pub reason: String,
    pub next_rotation: String,
    pub parent_ref: String,
}

/// One host as the list pages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub host: String,
    pub site: String,
    pub address: String,
    /// `None`: the token may not list the host's accounts.
    pub accounts: Option<usize>,
}

/// What the token may see of the OS engine.
#[derive(Debug, Default)]
pub struct Fleet {
    /// `false`: the token may not list hosts.
    pub hosts_visible: bool,
    pub hosts: Vec<HostRow>,
    pub accounts: Vec<AccountRow>,
}

/// The console's status of an account from its API read.
pub fn console_status(account: &Map<String, Value>) -> String {
    let status = text(account, "status");
    let failing =
        !text(account, "retry_after").is_empty() || !text(account, "last_error").is_empty();
    if status == "in_sync" && failing {
        "rotation_failing".into()
    } else {
        status
    }
}

/// Reads hosts and accounts through the API.
pub async fn load(client: &ApiClient) -> Result<Fleet, ApiError> {
    let hosts = match Visible::from_result(client.list(&format!("{OS_MOUNT}/hosts")).await)? {
        Visible::Shown((hosts, _)) => hosts,
        Visible::Denied => return Ok(Fleet::default()),
    };
    let mut fleet = Fleet {
        hosts_visible: true,
        ..Fleet::default()
    };
    for host in hosts {
        let record = Visible::from_result(client.read(&format!("{OS_MOUNT}/hosts/{host}")).await)?;
        let (site, address) = match &record {
            Visible::Shown(record) => (text(record, "site"), text(record, "address")),
            Visible::Denied => (String::new(), String::new()),
        };
        let accounts = Visible::from_result(
            client
                .list(&format!("{OS_MOUNT}/hosts/{host}/accounts"))
                .await,
        )?;
        let names = match accounts {
            Visible::Shown((names, _)) => names,
            Visible::Denied => {
                fleet.hosts.push(HostRow {
                    host,
                    site,
                    address,
                    accounts: None,
                });
                continue;
            }
        };
        fleet.hosts.push(HostRow {
            host: host.clone(),
            site: site.clone(),
            address,
            accounts: Some(names.len()),
        });
        let reads = names.iter().map(|name| {
            let path = format!("{OS_MOUNT}/hosts/{host}/accounts/{name}");
            async move { (name, Visible::from_result(client.read(&path).await)) }
        });
        for (name, read) in futures::future::join_all(reads).await {
            let row = match read? {
                Visible::Shown(account) => {
                    let status = console_status(&account);
                    let reason = match text(&account, "status_detail") {
                        detail if !detail.is_empty() => detail,
                        _ => text(&account, "last_error"),
                    };
                    AccountRow {
                        host: host.clone(),
                        account: name.clone(),
                        site: site.clone(),
                        status,
                        reason,
                        next_rotation: text(&account, "next_vault_rotation"),
                        parent_ref: text(&account, "parent_ref"),
                    }
                }
                Visible::Denied => AccountRow {
                    host: host.clone(),
                    account: name.clone(),
                    site: site.clone(),
                    status: "hidden".into(),
                    reason: String::new(),
                    next_rotation: String::new(),
                    parent_ref: String::new(),
                },
            };
            fleet.accounts.push(row);
        }
    }
    Ok(fleet)
}

/// Accounts by status, per site (sites sorted; every status present, zeros included).
pub fn counts_by_site(accounts: &[AccountRow]) -> BTreeMap<String, BTreeMap<&'static str, usize>> {
    let mut counts: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for account in accounts {
        let site = counts.entry(account.site.clone()).or_insert_with(|| {
            STATUSES
                .iter()
                .map(|status| (*status, 0))
                .chain([("hidden", 0)])
                .collect()
        });
        let key = STATUSES
            .iter()
            .find(|status| **status == account.status)
            .copied()
            .unwrap_or("hidden");
        *site.entry(key).or_insert(0) += 1;
    }
    counts
}

/// What the browse page's search form asks for (each empty = any).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub status: String,
}

impl Filter {
    /// Whether the account matches: `q` is a substring of its host or account name.
    pub fn matches(&self, account: &AccountRow) -> bool {
        let q = self.q.trim().to_ascii_lowercase();
        (q.is_empty()
            || account.host.to_ascii_lowercase().contains(&q)
            || account.account.to_ascii_lowercase().contains(&q))
            && (self.site.is_empty() || account.site == self.site)
            && (self.status.is_empty() || account.status == self.status)
    }
}

/// Out-of-sync accounts first, then failing, then the rest; by host and name within each.
pub fn sort_for_attention(accounts: &mut [AccountRow]) {
    let rank = |status: &str| {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len())
    };
    accounts.sort_by(|a, b| {
        (rank(&a.status), &a.host, &a.account).cmp(&(rank(&b.status), &b.host, &b.account))
    });
}

/// One agent as the overview shows it.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub id: String,
    pub site: String,
    pub connected: bool,
    pub last_seen: String,
}

/// Enrolled, unrevoked agents (`None`: the token may not list agents).
pub async fn agents(client: &ApiClient) -> Result<Option<Vec<AgentRow>>, ApiError> {
    let (ids, data) = match Visible::from_result(client.list("agents").await)? {
        Visible::Shown(found) => found,
        Visible::Denied => return Ok(None),
    };
    let info = data.get("key_info").and_then(Value::as_object);
    let mut rows = Vec::new();
    for id in ids {
        let entry = info
            .and_then(|info| info.get(&id))
            .and_then(Value::as_object);
        if entry
            .and_then(|e| e.get("revoked"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            continue;
        }
        let last_seen = match Visible::from_result(client.read(&format!("agents/{id}")).await)? {
            Visible::Shown(agent) => text(&agent, "last_seen"),
            Visible::Denied => String::new(),
        };
        rows.push(AgentRow {
            site: entry.map(|e| text(e, "site")).unwrap_or_default(),
            connected: entry
                .and_then(|e| e.get("connected"))
                .and_then(Value::as_bool)
                == Some(true),
            id,
            last_seen,
        });
    }
    rows.sort_by(|a, b| (&a.site, &a.id).cmp(&(&b.site, &b.id)));
    Ok(Some(rows))
}

/// Jobs in flight and queued per site, from `sys/metrics` (`None`: not readable).
pub async fn jobs(client: &ApiClient) -> Result<Option<BTreeMap<String, (u64, u64)>>, ApiError> {
    let response = match Visible::from_result(client.read_raw("sys/metrics", &[]).await)? {
        Visible::Shown(response) => response,
        Visible::Denied => return Ok(None),
    };
    let body = response.raw.map(|(_, body)| body).unwrap_or(Value::Null);
    Ok(Some(jobs_from_metrics(&body)))
}

/// `(in flight, queued)` per site from Vault-shaped metrics JSON.
pub fn jobs_from_metrics(body: &Value) -> BTreeMap<String, (u64, u64)> {
    let mut sites: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for gauge in body["Gauges"].as_array().into_iter().flatten() {
        let site = gauge["Labels"]["site"].as_str().unwrap_or("").to_string();
        let value = gauge["Value"].as_f64().unwrap_or(0.0) as u64;
        match gauge["Name"].as_str() {
            Some("rotor_site_jobs_in_flight") => sites.entry(site).or_default().0 = value,
            Some("rotor_dispatch_queue_depth") => sites.entry(site).or_default().1 = value,
            _ => {}
        }
    }
    sites
}

/// One lease as the leases page shows it.
#[derive(Debug, Clone)]
pub struct LeaseRow {
    pub id: String,
    pub engine: String,
    pub expire_time: String,
    pub ttl: String,
    pub last_revocation_error: String,
}

/// Most leases the console lists (a page, not an export).
const MAX_LEASES: usize = 500;

/// Every lease the token may list (`sys/leases/lookup/`, which needs sudo), with its
/// details. `None`: the token may not list leases.
pub async fn leases(client: &ApiClient) -> Result<Option<Vec<LeaseRow>>, ApiError> {
    let mut prefixes = vec![String::new()];
    let mut ids = Vec::new();
    while let Some(prefix) = prefixes.pop() {
        let path = format!("sys/leases/lookup/{prefix}");
        let keys = match Visible::from_result(client.list(path.trim_end_matches('/')).await)? {
            Visible::Shown((keys, _)) => keys,
            Visible::Denied if prefix.is_empty() => return Ok(None),
            Visible::Denied => continue,
        };
        for key in keys {
            if key.ends_with('/') {
                prefixes.push(format!("{prefix}{key}"));
            } else if ids.len() < MAX_LEASES {
                ids.push(format!("{prefix}{key}"));
            }
        }
    }
    ids.sort();
    let mut rows = Vec::new();
    for id in ids {
        let body = serde_json::json!({ "lease_id": id });
        let (lease, _) = match client.write("sys/leases/lookup", &body).await {
            Ok(found) => found,
            Err(_) => continue,
        };
        rows.push(LeaseRow {
            engine: id.split('/').next().unwrap_or("").to_string(),
            id,
            expire_time: text(&lease, "expire_time"),
            ttl: text(&lease, "ttl"),
            last_revocation_error: text(&lease, "last_revocation_error"),
        });
    }
    Ok(Some(rows))
}

/// Leases per engine (the first segment of the id: its mount).
pub fn leases_by_engine(leases: &[LeaseRow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lease in leases {
        *counts.entry(lease.engine.clone()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, account: &str, site: &str, status: &str) -> AccountRow {
        AccountRow {
            host: host.into(),
            account: account.into(),
            site: site.into(),
            status: status.into(),
            reason: String::new(),
            next_rotation: String::new(),
            parent_ref: String::new(),
        }
    }

    #[test]
    fn failing_is_in_sync_with_an_error_or_a_retry() {
        let read = |pairs: Value| pairs.as_object().cloned().expect("object");
        assert_eq!(
            console_status(&read(serde_json::json!({"status": "in_sync"}))),
            "in_sync"
        );
        assert_eq!(
            console_status(&read(
                serde_json::json!({"status": "in_sync", "last_error": "refused"})
            )),
            "rotation_failing"
        );
        assert_eq!(
            console_status(&read(
                serde_json::json!({"status": "out_of_sync", "last_error": "x"})
            )),
            "out_of_sync"
        );
    }

    #[test]
    fn counts_per_site_include_zeros_and_hidden() {
        let accounts = [
            row("a", "x", "s1", "in_sync"),
            row("a", "y", "s1", "out_of_sync"),
            row("b", "x", "s2", "hidden"),
        ];
        let counts = counts_by_site(&accounts);
        assert_eq!(counts["s1"]["in_sync"], 1);
        assert_eq!(counts["s1"]["out_of_sync"], 1);
        assert_eq!(counts["s1"]["rotating"], 0);
        assert_eq!(counts["s2"]["hidden"], 1);
        assert_eq!(counts["s2"]["in_sync"], 0);
    }

    #[test]
    fn out_of_sync_comes_first() {
        let mut accounts = vec![
            row("a", "x", "s", "in_sync"),
            row("b", "x", "s", "out_of_sync"),
            row("a", "z", "s", "rotation_failing"),
        ];
        sort_for_attention(&mut accounts);
        let order: Vec<&str> = accounts.iter().map(|a| a.status.as_str()).collect();
        assert_eq!(order, ["out_of_sync", "rotation_failing", "in_sync"]);
    }

    #[test]
    fn filter_by_name_site_and_status() {
        let account = row("web-01", "app1", "dc1", "in_sync");
        let filter = |q: &str, site: &str, status: &str| Filter {
            q: q.into(),
            site: site.into(),
            status: status.into(),
        };
        assert!(filter("", "", "").matches(&account));
        assert!(filter("WEB", "", "").matches(&account));
        assert!(filter("app", "dc1", "in_sync").matches(&account));
        assert!(!filter("db", "", "").matches(&account));
        assert!(!filter("", "dc2", "").matches(&account));
        assert!(!filter("", "", "out_of_sync").matches(&account));
    }

    #[test]
    fn jobs_are_read_from_metrics_gauges() {
        let body = serde_json::json!({"Gauges": [
            {"Name": "rotor_site_jobs_in_flight", "Value": 3, "Labels": {"site": "dc1"}},
            {"Name": "rotor_dispatch_queue_depth", "Value": 7, "Labels": {"site": "dc1"}},
            {"Name": "rotor_agents_connected", "Value": 1, "Labels": {"site": "dc1"}},
        ]});
        assert_eq!(jobs_from_metrics(&body)["dc1"], (3, 7));
    }
}
