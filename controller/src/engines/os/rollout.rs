//! Fleet rotation in waves, the running half: `os/rotate` (a plan, or a run in the
//! background), `os/rotations`, `os/rotations/:id` (a run's progress and outcome) and
//! `os/rotations/:id/stop` (an operator stops it: no more hosts start).
//!
//! Owns the run record (kept in `meta` under `os-rotation:<mount><id>`, rewritten as hosts
//! finish, so a read after completion or after a restart works) and the runner: waves in
//! order, a host cap per site, the stop rule after every host. Must not rotate by itself:
//! each host goes through the driver's `rotate_accounts` (host lock, candidate sealed before
//! the job, verification of uncertain outcomes). A run that was `running` when its controller
//! stopped reads as `interrupted`; its hosts that were mid-rotation are left to the driver's
//! recovery of pending candidates, and the rest are `not_attempted`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::OsEngine;
use super::model::{self, HostRecord};
use super::waves::{self, Plan, Selector, Threshold, WaveOptions};
use crate::api::paths::{Field, FieldKind, HandlerFuture, Request};
use crate::api::{ApiError, ApiResponse, AppState};
use crate::store::{Store, Table};
use crate::tokens::now_unix;

/// This controller process: a run recorded as `running` by another process was interrupted.
static BOOT: LazyLock<String> = LazyLock::new(|| {
    let random: u64 = rand::random();
    format!("{random:016x}")
});

/// Runs an operator asked to stop (`os/rotations/:id/stop`), as `<mount><id>`: the runner
/// of this process reads it before it starts each host, so hosts in flight finish and the
/// rest are `not_attempted`, as when the failure threshold stops a run.
static STOP_REQUESTS: LazyLock<Mutex<HashSet<String>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

fn stop_requests() -> std::sync::MutexGuard<'static, HashSet<String>> {
    // A set of ids stays consistent whatever panicked while holding it.
    STOP_REQUESTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub const ROTATE_FIELDS: &[Field] = &[
    Field::new("site", FieldKind::String, "only hosts of this site"),
    Field::new(
        "host",
        FieldKind::String,
        "a glob over host names, like web-*",
    ),
    Field::new(
        "account",
        FieldKind::String,
        "a glob over account names, like app*",
    ),
    Field::new(
        "dry_run",
        FieldKind::Bool,
        "answer the plan only (default true); dry_run=false runs it",
    ),
    Field::new(
        "canary",
        FieldKind::Int,
        "hosts in the first wave (default 1)",
    ),
    Field::new(
        "wave_size",
        FieldKind::Int,
        "hosts in each later wave (default 10)",
    ),
    Field::new(
        "max_parallel_per_site",
        FieldKind::Int,
        "hosts of one site rotating at once (default 4)",
    ),
    Field::new(
        "failure_threshold",
        FieldKind::String,
        "stop once more accounts than this failed: a count (default 0) or a percentage like 10%",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// The stop rule fired; what had not started was left untouched.
    Stopped,
    Completed,
    /// The controller stopped while the run was going.
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Pending,
    Running,
    Succeeded,
    Failed,
    NotAttempted,
    /// Mid-rotation when the controller stopped: the driver's recovery resolves it.
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRun {
    pub account: String,
    pub state: AccountState,
    /// The version committed by this run.
    pub version: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRun {
    pub host: String,
    pub site: Option<String>,
    pub accounts: Vec<AccountRun>,
}

/// One bulk rotation: its plan and, account by account, what became of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub mount: String,
    pub selector: Selector,
    pub options: WaveOptions,
    pub state: RunState,
    pub stop_reason: Option<String>,
    /// The controller process running it.
    pub boot: String,
    pub created_unix: u64,
    pub finished_unix: Option<u64>,
    /// The wave running (or the last one that ran), from 0.
    pub current_wave: usize,
    pub waves: Vec<Vec<HostRun>>,
}

impl RunRecord {
    fn new(id: String, mount: &str, selector: Selector, options: WaveOptions, plan: Plan) -> Self {
        let waves = plan
            .waves
            .into_iter()
            .map(|wave| {
                wave.into_iter()
                    .map(|planned| HostRun {
                        host: planned.host,
                        site: planned.site,
                        accounts: planned
                            .accounts
                            .into_iter()
                            .map(|account| AccountRun {
                                account,
                                state: AccountState::Pending,
                                version: None,
                                error: None,
                            })
                            .collect(),
                    })
                    .collect()
            })
            .collect();
        Self {
            id,
            mount: mount.to_string(),
            selector,
            options,
            state: RunState::Running,
            stop_reason: None,
            boot: BOOT.clone(),
            created_unix: now_unix(),
            finished_unix: None,
            current_wave: 0,
            waves,
        }
    }

    fn accounts(&self) -> impl Iterator<Item = &AccountRun> {
        self.waves
            .iter()
            .flatten()
            .flat_map(|host| host.accounts.iter())
    }

    fn count(&self, state: AccountState) -> u64 {
        self.accounts().filter(|a| a.state == state).count() as u64
    }

    fn planned(&self) -> u64 {
        self.accounts().count() as u64
    }

    /// Every account not started yet becomes `not_attempted`, running ones `to`.
    fn close(&mut self, state: RunState, running_become: AccountState, note: Option<&str>) {
        for account in self
            .waves
            .iter_mut()
            .flatten()
            .flat_map(|host| host.accounts.iter_mut())
        {
            match account.state {
                AccountState::Pending => account.state = AccountState::NotAttempted,
                AccountState::Running => {
                    account.state = running_become;
                    account.error = note.map(String::from);
                }
                _ => {}
            }
        }
        self.state = state;
        self.finished_unix = Some(now_unix());
    }

    /// What the API answers for the run.
    pub fn to_json(&self) -> serde_json::Map<String, Value> {
        let waves: Vec<Value> = self
            .waves
            .iter()
            .map(|wave| serde_json::to_value(wave).unwrap_or(Value::Null))
            .collect();
        let rfc3339 = |unix: u64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix),
            )
            .to_string()
        };
        crate::data_map! {
            "id" => self.id,
            "state" => self.state,
            "stop_reason" => self.stop_reason,
            "selector" => self.selector,
            "canary" => self.options.canary,
            "wave_size" => self.options.wave_size,
            "max_parallel_per_site" => self.options.max_parallel_per_site,
            "failure_threshold" => self.options.failure_threshold.describe(),
            "created_time" => rfc3339(self.created_unix),
            "finished_time" => self.finished_unix.map(rfc3339),
            "current_wave" => self.current_wave,
            "wave_count" => self.waves.len(),
            "planned" => self.planned(),
            "succeeded" => self.count(AccountState::Succeeded),
            "failed" => self.count(AccountState::Failed),
            "not_attempted" => self.count(AccountState::NotAttempted),
            "pending" => self.count(AccountState::Pending),
            "running" => self.count(AccountState::Running),
            "interrupted" => self.count(AccountState::Interrupted),
            "waves" => waves,
        }
    }
}

fn record_key(mount: &str, id: &str) -> String {
    format!("os-rotation:{mount}{id}")
}

fn save(store: &Store, record: &RunRecord) {
    let key = record_key(&record.mount, &record.id);
    if let Err(error) = store.write(|tx| tx.put(Table::Meta, &key, record)) {
        tracing::error!(run = %record.id, %error, "cannot save the fleet rotation's progress; it goes on");
    }
}

/// Reads a run; one left `running` by an earlier controller process is marked interrupted.
pub fn load(store: &Store, mount: &str, id: &str) -> Result<Option<RunRecord>, ApiError> {
    let Some(mut record) = store.get::<RunRecord>(Table::Meta, &record_key(mount, id))? else {
        return Ok(None);
    };
    if record.state == RunState::Running && record.boot != *BOOT {
        record.close(
            RunState::Interrupted,
            AccountState::Interrupted,
            Some("the controller stopped during this host's rotation; its recovery verifies any candidate left pending: read the account for the outcome"),
        );
        record.stop_reason = Some("the controller stopped while the run was going".into());
        save(store, &record);
    }
    Ok(Some(record))
}

/// What one account's rotation came to: the committed version, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOutcome {
    pub account: String,
    pub result: Result<u64, String>,
}

/// Rotates one host's selected accounts. The driver in production; a fake in tests.
pub trait HostRotator: Send + Sync {
    fn rotate(
        &self,
        mount: &str,
        host: &str,
        accounts: &[String],
    ) -> impl Future<Output = Vec<AccountOutcome>> + Send;
}

/// The driver as a [`HostRotator`].
pub struct DriverRotator {
    pub engine: OsEngine,
    pub store: Arc<Store>,
}

impl DriverRotator {
    fn versions(&self, mount: &str, host: &str, accounts: &[String]) -> HashMap<String, u64> {
        accounts
            .iter()
            .filter_map(|name| {
                model::get_account(&self.store, mount, host, name)
                    .ok()
                    .flatten()
                    .map(|record| (name.clone(), record.current_version))
            })
            .collect()
    }
}

impl HostRotator for DriverRotator {
    async fn rotate(&self, mount: &str, host: &str, accounts: &[String]) -> Vec<AccountOutcome> {
        let before = self.versions(mount, host, accounts);
        match self
            .engine
            .rotate_accounts(mount, host, Some(accounts))
            .await
        {
            Ok(reports) => accounts
                .iter()
                .map(|name| {
                    let result = match reports.iter().find(|r| &r.account == name) {
                        Some(report) => match (report.committed_version, &report.error) {
                            (Some(version), _) => Ok(version),
                            (None, Some(error)) => Err(error.clone()),
                            (None, None) => {
                                Err(format!("not committed (status {})", report.status.name()))
                            }
                        },
                        None => Err(format!("account {name} no longer exists on host {host}")),
                    };
                    AccountOutcome {
                        account: name.clone(),
                        result,
                    }
                })
                .collect(),
            Err(error) => {
                // An error can end a host after some of its batches committed: what the store
                // holds now says which.
                let after = self.versions(mount, host, accounts);
                accounts
                    .iter()
                    .map(|name| {
                        let result = match (before.get(name), after.get(name)) {
                            (Some(old), Some(new)) if new > old => Ok(*new),
                            _ => Err(format!("host {host}: {}", error.message)),
                        };
                        AccountOutcome {
                            account: name.clone(),
                            result,
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Runs the waves in order: within a wave, hosts start while their site has room; after
/// each host the stop rule is checked, and once it fires no host starts again (hosts in
/// flight finish: a rotation is never abandoned midway). Saves progress as it goes.
pub async fn execute<R: HostRotator>(
    rotator: &R,
    store: &Store,
    mut record: RunRecord,
) -> RunRecord {
    let planned = record.planned();
    let cap = record.options.max_parallel_per_site.max(1);
    let threshold = record.options.failure_threshold;
    let mount = record.mount.clone();
    let mut stopped = false;
    save(store, &record);
    for wave_index in 0..record.waves.len() {
        if stopped {
            break;
        }
        record.current_wave = wave_index;
        let mut queue: VecDeque<usize> = (0..record.waves[wave_index].len()).collect();
        let mut per_site: HashMap<String, usize> = HashMap::new();
        let mut in_flight = FuturesUnordered::new();
        loop {
            let mut launched = false;
            if !stopped && stop_requests().contains(&format!("{mount}{}", record.id)) {
                stopped = true;
                let reason = "stopped by an operator (rotations/<id>/stop); hosts not started were left untouched".replace("<id>", &record.id);
                tracing::warn!(run = %record.id, "fleet rotation stopped: {reason}");
                record.stop_reason = Some(reason);
                save(store, &record);
            }
            if !stopped {
                let mut waiting = VecDeque::new();
                while let Some(index) = queue.pop_front() {
                    let host = &mut record.waves[wave_index][index];
                    let site = host.site.clone().unwrap_or_default();
                    let busy = per_site.entry(site).or_insert(0);
                    if *busy >= cap {
                        waiting.push_back(index);
                        continue;
                    }
                    *busy += 1;
                    for account in &mut host.accounts {
                        account.state = AccountState::Running;
                    }
                    let names: Vec<String> =
                        host.accounts.iter().map(|a| a.account.clone()).collect();
                    let host_name = host.host.clone();
                    let mount = mount.clone();
                    in_flight.push(async move {
                        let outcomes = rotator.rotate(&mount, &host_name, &names).await;
                        (index, outcomes)
                    });
                    launched = true;
                }
                queue = waiting;
            }
            if launched {
                save(store, &record);
            }
            let Some((index, outcomes)) = in_flight.next().await else {
                break;
            };
            let host = &mut record.waves[wave_index][index];
            if let Some(busy) = per_site.get_mut(&host.site.clone().unwrap_or_default()) {
                *busy = busy.saturating_sub(1);
            }
            for account in &mut host.accounts {
                match outcomes.iter().find(|o| o.account == account.account) {
                    Some(AccountOutcome {
                        result: Ok(version),
                        ..
                    }) => {
                        account.state = AccountState::Succeeded;
                        account.version = Some(*version);
                    }
                    Some(AccountOutcome {
                        result: Err(reason),
                        ..
                    }) => {
                        account.state = AccountState::Failed;
                        account.error = Some(reason.clone());
                    }
                    None => {
                        account.state = AccountState::Failed;
                        account.error = Some("the rotation gave no outcome for it".into());
                    }
                }
            }
            let failed = record.count(AccountState::Failed);
            if !stopped && threshold.exceeded(failed, planned) {
                stopped = true;
                let reason = format!(
                    "{failed} of {planned} account(s) failed, past the failure threshold of {}; hosts not started were left untouched",
                    threshold.describe()
                );
                tracing::warn!(run = %record.id, "fleet rotation stopped: {reason}");
                record.stop_reason = Some(reason);
            }
            save(store, &record);
        }
    }
    let state = if stopped {
        RunState::Stopped
    } else {
        RunState::Completed
    };
    record.close(
        state,
        AccountState::Failed,
        Some("the run ended while it was running"),
    );
    save(store, &record);
    stop_requests().remove(&format!("{mount}{}", record.id));
    tracing::info!(run = %record.id, state = ?record.state, succeeded = record.count(AccountState::Succeeded),
        failed = record.count(AccountState::Failed), not_attempted = record.count(AccountState::NotAttempted),
        "fleet rotation finished");
    record
}

fn positive(request: &Request, field: &str, default: usize) -> Result<usize, ApiError> {
    match request.int(field)? {
        None => Ok(default),
        Some(value) if (1..=100_000).contains(&value) => Ok(value as usize),
        Some(value) => Err(ApiError::bad_request(format!(
            "field '{field}': {value} must be between 1 and 100000"
        ))),
    }
}

/// A site no host of the mount is in is a typo far more often than an empty site: refuse it
/// rather than answer an empty plan, and name the sites there are.
fn check_site_known(site: &str, mount: &str, hosts: &[HostRecord]) -> Result<(), ApiError> {
    if hosts.iter().any(|host| host.site.as_deref() == Some(site)) {
        return Ok(());
    }
    let mut sites: Vec<&str> = hosts
        .iter()
        .filter_map(|host| host.site.as_deref())
        .collect();
    sites.sort_unstable();
    sites.dedup();
    let known = if sites.is_empty() {
        "none has a site".to_string()
    } else {
        format!("the sites with hosts are {}", sites.join(", "))
    };
    Err(ApiError::bad_request(format!(
        "field 'site': no host of {mount} is in site '{site}'; {known}"
    )))
}

fn plan_json(plan: &Plan) -> Vec<Value> {
    plan.waves
        .iter()
        .map(|wave| serde_json::to_value(wave).unwrap_or(Value::Null))
        .collect()
}

/// `os/rotate`: answers the plan; with `dry_run=false`, starts it and answers its id too.
pub fn rotate(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let selector = Selector {
            site: request.string("site")?.filter(|s| !s.is_empty()),
            host: request.string("host")?.filter(|s| !s.is_empty()),
            account: request.string("account")?.filter(|s| !s.is_empty()),
        };
        selector.check().map_err(ApiError::bad_request)?;
        let defaults = WaveOptions::default();
        let failure_threshold = match request.string("failure_threshold")? {
            Some(text) => Threshold::parse(&text).map_err(|reason| {
                ApiError::bad_request(format!("field 'failure_threshold': {reason}"))
            })?,
            None => defaults.failure_threshold,
        };
        let options = WaveOptions {
            canary: positive(&request, "canary", defaults.canary)?,
            wave_size: positive(&request, "wave_size", defaults.wave_size)?,
            max_parallel_per_site: positive(
                &request,
                "max_parallel_per_site",
                defaults.max_parallel_per_site,
            )?,
            failure_threshold,
        };
        let dry_run = request.bool("dry_run")?.unwrap_or(true);
        let hosts: Vec<HostRecord> = state
            .store
            .scan::<HostRecord>(Table::Hosts, &request.mount)?
            .into_iter()
            .map(|(_, host)| host)
            .collect();
        if let Some(site) = selector.site.as_deref() {
            check_site_known(site, &request.mount, &hosts)?;
        }
        let accounts = model::all_accounts(&state.store, &request.mount)?;
        let plan = waves::build_plan(&selector, &options, &hosts, &accounts);
        let mut data = crate::data_map! {
            "dry_run" => dry_run,
            "hosts" => plan.host_count(),
            "accounts" => plan.account_count(),
            "canary" => options.canary,
            "wave_size" => options.wave_size,
            "max_parallel_per_site" => options.max_parallel_per_site,
            "failure_threshold" => options.failure_threshold.describe(),
            "waves" => plan_json(&plan),
        };
        if dry_run {
            return Ok(ApiResponse::data(data));
        }
        if plan.account_count() == 0 {
            return Err(ApiError::bad_request(
                "the selector matches no account; check it with dry_run=true",
            ));
        }
        let id = rotor_common::ids::JobId::generate().to_string();
        let record = RunRecord::new(id.clone(), &request.mount, selector, options, plan);
        save(&state.store, &record);
        let rotator = DriverRotator {
            engine: state.os.clone(),
            store: state.store.clone(),
        };
        let store = state.store.clone();
        tracing::info!(run = %id, mount = %request.mount, accounts = record.planned(), waves = record.waves.len(), "fleet rotation started");
        tokio::spawn(async move {
            execute(&rotator, &store, record).await;
        });
        data.insert("id".into(), json!(id));
        data.insert("state".into(), json!(RunState::Running));
        Ok(ApiResponse::data(data))
    })
}

/// `os/rotations/:id`: a run's progress, account by account.
pub fn read_run(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let id = request.param("id");
        let record = load(&state.store, &request.mount, id)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "no fleet rotation {id} on {}; list them at {}rotations",
                request.mount, request.mount
            ))
        })?;
        Ok(ApiResponse::data(record.to_json()))
    })
}

/// `os/rotations/:id/stop`: asks a running run to start no more hosts.
pub fn stop_run(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let id = request.param("id");
        let record = load(&state.store, &request.mount, id)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "no fleet rotation {id} on {}; list them at {}rotations",
                request.mount, request.mount
            ))
        })?;
        if record.state != RunState::Running {
            return Err(ApiError::bad_request(format!(
                "fleet rotation {id} is {}: only a running run can be stopped",
                serde_json::to_value(record.state)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            )));
        }
        stop_requests().insert(format!("{}{id}", request.mount));
        tracing::warn!(run = %id, "fleet rotation stop requested");
        Ok(ApiResponse::data(crate::data_map! {
            "id" => id,
            "state" => "stopping",
        }))
    })
}

/// `os/rotations` (LIST): the runs' ids.
pub fn list_runs(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let prefix = record_key(&request.mount, "");
        let keys = state
            .store
            .scan::<Value>(Table::Meta, &prefix)?
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(String::from))
            .collect();
        Ok(ApiResponse::keys(keys))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::engines::os::waves::PlannedHost;

    /// Fails every account of the hosts it is told to; counts concurrency per site.
    struct Fake {
        failing: Vec<String>,
        started: Mutex<Vec<String>>,
        in_flight: Mutex<HashMap<String, usize>>,
        max_seen: Mutex<HashMap<String, usize>>,
    }

    impl Fake {
        fn new(failing: &[&str]) -> Self {
            Self {
                failing: failing.iter().map(|s| s.to_string()).collect(),
                started: Mutex::new(Vec::new()),
                in_flight: Mutex::new(HashMap::new()),
                max_seen: Mutex::new(HashMap::new()),
            }
        }
    }

    fn site_of(host: &str) -> String {
        host.split('-').next().unwrap_or_default().to_string()
    }

    impl HostRotator for Fake {
        async fn rotate(
            &self,
            _mount: &str,
            host: &str,
            accounts: &[String],
        ) -> Vec<AccountOutcome> {
            let site = site_of(host);
            {
                self.started.lock().expect("lock").push(host.to_string());
                let mut in_flight = self.in_flight.lock().expect("lock");
                let now = in_flight.entry(site.clone()).or_insert(0);
                *now += 1;
                let mut max = self.max_seen.lock().expect("lock");
                let seen = max.entry(site.clone()).or_insert(0);
                *seen = (*seen).max(*now);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(now) = self.in_flight.lock().expect("lock").get_mut(&site) {
                *now -= 1;
            }
            accounts
                .iter()
                .map(|account| AccountOutcome {
                    account: account.clone(),
                    result: if self.failing.iter().any(|h| h == host) {
                        Err(format!("{host} refused"))
                    } else {
                        Ok(2)
                    },
                })
                .collect()
        }
    }

    fn record(hosts: &[&str], options: WaveOptions) -> RunRecord {
        let planned: Vec<PlannedHost> = hosts
            .iter()
            .map(|host| PlannedHost {
                host: host.to_string(),
                site: Some(site_of(host)),
                accounts: vec!["app1".into(), "app2".into()],
            })
            .collect();
        let mut waves = Vec::new();
        let mut wave = planned;
        let mut rest = wave.split_off(options.canary.min(wave.len()));
        waves.push(wave);
        while !rest.is_empty() {
            let after = rest.split_off(options.wave_size.min(rest.len()));
            waves.push(rest);
            rest = after;
        }
        RunRecord::new(
            "run1".into(),
            "os/",
            Selector {
                host: Some("*".into()),
                ..Selector::default()
            },
            options,
            Plan { waves },
        )
    }

    fn store() -> Store {
        Store::in_memory(crate::store::Sealer::ephemeral()).expect("store")
    }

    fn states(record: &RunRecord) -> Vec<(String, AccountState)> {
        record
            .waves
            .iter()
            .flatten()
            .map(|host| (host.host.clone(), host.accounts[0].state))
            .collect()
    }

    #[tokio::test]
    async fn an_operator_stop_starts_no_more_hosts() {
        let store = store();
        let fake = Fake::new(&[]);
        let options = WaveOptions {
            canary: 1,
            wave_size: 2,
            max_parallel_per_site: 1,
            failure_threshold: Threshold::Count(0),
        };
        let mut run = record(&["a-1", "a-2", "a-3"], options);
        run.id = "run-stopped-by-operator".into();
        stop_requests().insert("os/run-stopped-by-operator".into());
        let done = execute(&fake, &store, run).await;
        assert_eq!(done.state, RunState::Stopped);
        assert!(fake.started.lock().expect("lock").is_empty());
        assert_eq!(done.count(AccountState::NotAttempted), 6);
        let reason = done.stop_reason.expect("a reason");
        assert!(reason.contains("stopped by an operator"), "{reason}");
        assert!(!stop_requests().contains("os/run-stopped-by-operator"));
    }

    #[tokio::test]
    async fn a_failure_past_the_threshold_stops_the_run_and_leaves_the_rest_untouched() {
        let store = store();
        let fake = Fake::new(&["a-2"]);
        let options = WaveOptions {
            canary: 1,
            wave_size: 2,
            max_parallel_per_site: 1,
            failure_threshold: Threshold::Count(1),
        };
        let done = execute(
            &fake,
            &store,
            record(&["a-1", "a-2", "a-3", "a-4"], options),
        )
        .await;
        assert_eq!(done.state, RunState::Stopped);
        assert_eq!(
            states(&done),
            [
                ("a-1".to_string(), AccountState::Succeeded),
                ("a-2".to_string(), AccountState::Failed),
                ("a-3".to_string(), AccountState::NotAttempted),
                ("a-4".to_string(), AccountState::NotAttempted),
            ]
        );
        assert_eq!(*fake.started.lock().expect("lock"), ["a-1", "a-2"]);
        let reason = done.stop_reason.clone().expect("a stop reason");
        assert!(reason.contains("2 of 8"), "{reason}");
        assert_eq!(
            done.waves[1][0].accounts[0].error.as_deref(),
            Some("a-2 refused")
        );
        // What a read answers is what the run left in the store.
        let read = load(&store, "os/", "run1").expect("load").expect("saved");
        let json = read.to_json();
        assert_eq!(json["succeeded"], 2);
        assert_eq!(json["failed"], 2);
        assert_eq!(json["not_attempted"], 4);
        assert_eq!(json["state"], "stopped");
    }

    #[tokio::test]
    async fn the_canary_runs_alone_before_the_next_wave() {
        let store = store();
        // The canary itself fails: nothing else starts.
        let fake = Fake::new(&["a-1"]);
        let options = WaveOptions {
            canary: 1,
            wave_size: 10,
            max_parallel_per_site: 10,
            failure_threshold: Threshold::Count(0),
        };
        let done = execute(&fake, &store, record(&["a-1", "a-2", "b-1"], options)).await;
        assert_eq!(done.state, RunState::Stopped);
        assert_eq!(*fake.started.lock().expect("lock"), ["a-1"]);
        assert_eq!(done.to_json()["not_attempted"], 4);
    }

    #[tokio::test]
    async fn per_site_caps_hold_and_a_clean_run_completes() {
        let store = store();
        let fake = Fake::new(&[]);
        let options = WaveOptions {
            canary: 1,
            wave_size: 10,
            max_parallel_per_site: 2,
            failure_threshold: Threshold::Percent(10),
        };
        let hosts = ["a-1", "a-2", "a-3", "a-4", "a-5", "b-1", "b-2", "b-3"];
        let done = execute(&fake, &store, record(&hosts, options)).await;
        assert_eq!(done.state, RunState::Completed);
        assert_eq!(done.to_json()["succeeded"], 16);
        let max = fake.max_seen.lock().expect("lock");
        assert_eq!(max.get("a"), Some(&2));
        assert_eq!(max.get("b"), Some(&2));
    }

    #[tokio::test]
    async fn a_run_left_running_by_another_process_reads_as_interrupted() {
        let store = store();
        let options = WaveOptions::default();
        let mut stale = record(&["a-1", "a-2"], options);
        stale.boot = "an-earlier-process".into();
        stale.waves[0][0].accounts[0].state = AccountState::Running;
        save(&store, &stale);
        let read = load(&store, "os/", "run1").expect("load").expect("saved");
        assert_eq!(read.state, RunState::Interrupted);
        assert_eq!(
            read.waves[0][0].accounts[0].state,
            AccountState::Interrupted
        );
        assert_eq!(
            read.waves[1][0].accounts[0].state,
            AccountState::NotAttempted
        );
        assert!(read.finished_unix.is_some());
    }
}
