//! The OS engine's driver: turns API calls into jobs, runs them through the dispatcher,
//! and applies the change core's decisions to the store.
//!
//! Owns per-host serialisation (a host's accounts never rotate concurrently), building
//! `OsJob`s, batching children of one parent into one job, verification after an uncertain
//! outcome, and recovery of candidates left pending by a crash. It is the executor of the
//! change core (`crate::change`), which decides; `rotation.rs` says how an account is changed
//! and probed; record changes live in `model.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rotor_common::ids::{AgentId, JobId};
use rotor_common::secret::Password;
use rotor_common::wire::os::{
    AccountChange, HostKeyObserved, HostKeyRule, HostSpec, OsJob, OsOutcome,
};
use rotor_common::wire::{JobKind, JobOutcome};

use super::heartbeat::{self, VerifyResult};
use super::model::{
    self, AccountRecord, AccountStatus, Connection, HostRecord, OsConfig, PasswordConfirmed,
};
use super::password;
use super::rotation::{self, AccountTarget, Recipe};
use crate::api::ApiError;
use crate::change::{Action, Answer, Change, ChangeTarget, Event, Knowledge, Policy, ProbeAnswer};
use crate::dispatch::{DispatchError, Dispatcher, JobTarget};
use crate::metrics::{self, RotationOutcome, VerificationKind};
use crate::store::Store;

/// Hosts whose pending changes recover at once (each host's accounts stay in order).
const RECOVERY_HOSTS_AT_ONCE: usize = 16;

/// How a job ended, as the dispatcher reported it.
pub enum JobEnd {
    Answered(JobOutcome),
    /// The job was never accepted by an agent: certain it did not run.
    NotRun(String),
    /// Accepted, then silence (agent lost, deadline passed): it may have run.
    Unknown(String),
}

impl JobEnd {
    /// What a rotation's end says about `username`, for the change core.
    fn answer_for(&self, username: &str) -> Answer {
        match self {
            JobEnd::Answered(outcome) => rotation::read_answer(outcome, username),
            JobEnd::NotRun(reason) => Answer::NotChanged(reason.clone()),
            JobEnd::Unknown(detail) => Answer::Unknown(detail.clone()),
        }
    }
}

/// How the metrics name a rotation's end.
fn rotation_outcome(report: &AccountReport) -> RotationOutcome {
    match (report.committed_version, report.status) {
        (Some(_), _) => RotationOutcome::Committed,
        (None, AccountStatus::OutOfSync) => RotationOutcome::OutOfSync,
        (None, AccountStatus::Verifying | AccountStatus::Rotating) => RotationOutcome::Unresolved,
        (None, AccountStatus::InSync) => RotationOutcome::Failed,
    }
}

/// What happened to one account of a rotation.
#[derive(Debug, Clone)]
pub struct AccountReport {
    pub account: String,
    pub committed_version: Option<u64>,
    pub status: AccountStatus,
    pub error: Option<String>,
}

/// A host claimed for one job ([`OsEngine::claim_host`]); the claim ends when it drops.
pub struct HostClaim {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

#[derive(Clone)]
pub struct OsEngine {
    store: Arc<Store>,
    dispatcher: Dispatcher,
    /// One async mutex per host (`mount/host`): a host's accounts never rotate concurrently.
    host_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl OsEngine {
    pub fn new(store: Arc<Store>, dispatcher: Dispatcher) -> Self {
        Self {
            store,
            dispatcher,
            host_locks: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Claims `host` for one job (waiting while another holds it): the one owner of the
    /// one-job-per-host rule. Held until dropped.
    pub async fn claim_host(&self, mount: &str, host: &str) -> HostClaim {
        HostClaim {
            _guard: self.host_lock(mount, host).lock_owned().await,
        }
    }

    /// Claims `host` if nothing holds it now (the scheduler skips a busy host this pass).
    pub fn try_claim_host(&self, mount: &str, host: &str) -> Option<HostClaim> {
        self.host_lock(mount, host)
            .try_lock_owned()
            .ok()
            .map(|guard| HostClaim { _guard: guard })
    }

    fn host_lock(&self, mount: &str, host: &str) -> Arc<tokio::sync::Mutex<()>> {
        let key = model::host_key(mount, host);
        let mut locks = self.host_locks.lock().unwrap_or_else(|poisoned| {
            // A thread panicked while it held the map. The map itself is intact (a lookup or
            // an insert), so keep using it: a fresh lock here would let two jobs touch one
            // host at once. Said loudly and counted, since a panic there is a bug.
            tracing::error!(host = %key, "the host-lock map was poisoned by a panic; keeping its locks (one job per host still holds)");
            metrics::global().internal_error("host_lock_poisoned");
            poisoned.into_inner()
        });
        locks.entry(key).or_default().clone()
    }

    fn host_spec(config: &OsConfig, host: &HostRecord) -> HostSpec {
        let host_key = match (&host.ssh_host_key, config.ssh_host_key_trust_on_first_use) {
            (Some(pinned), _) => HostKeyRule::Pinned(pinned.clone()),
            (None, true) => HostKeyRule::TrustOnFirstUse {
                known: host.trusted_host_key.clone(),
            },
            (None, false) => match &host.trusted_host_key {
                // A key recorded while TOFU was on stays binding after TOFU is turned off.
                Some(known) => HostKeyRule::Pinned(known.clone()),
                None => HostKeyRule::Reject,
            },
        };
        HostSpec {
            name: host.name.clone(),
            address: host.address.clone(),
            port: host.port,
            host_key,
            connect_timeout_ms: config.connect_timeout_secs * 1000,
            step_timeout_ms: config.step_timeout_secs * 1000,
            passwd_prompts_json: host.passwd_prompts_json.clone(),
        }
    }

    fn target(host: &HostRecord) -> Result<JobTarget, ApiError> {
        match (host.connection, &host.agent, &host.site) {
            (Connection::Local, Some(agent), _) => AgentId::new(agent.clone())
                .map(JobTarget::Agent)
                .map_err(|error| {
                    ApiError::bad_request(format!("host {}: agent id: {error}", host.name))
                }),
            (Connection::Ssh, _, Some(site)) => Ok(JobTarget::Site(site.clone())),
            _ => Err(ApiError::bad_request(format!(
                "host {} names no site (connection=ssh) or no agent (connection=local)",
                host.name
            ))),
        }
    }

    /// Why `host`'s job cannot go anywhere: its site has no agent at all (none connected and
    /// none enrolled), which no waiting fixes. Hosts may be written before their site has
    /// agents (their site defaults at write), so this is where the operator learns it.
    fn site_without_agent(
        &self,
        mount: &str,
        host: &HostRecord,
    ) -> Result<Option<String>, ApiError> {
        let Some(site) = host
            .site
            .as_deref()
            .filter(|_| host.connection == Connection::Ssh)
        else {
            return Ok(None);
        };
        if !self.dispatcher.connected_agents(site).is_empty()
            || crate::dispatch::registry::site_has_agent(&self.store, site)?
        {
            return Ok(None);
        }
        Ok(Some(format!(
            "host {host_name} is in site '{site}', which has no enrolled agent: enroll one for it (rotor write agents/enroll site={site}, then rotor-agent enroll with the token on a machine that reaches {address}:{port}), or move the host to a site that has agents (rotor write {mount}hosts/{host_name} site=SITE)",
            host_name = host.name,
            address = host.address,
            port = host.port,
        )))
    }

    /// Runs a job that changes nothing (a login check): under an id of its own.
    async fn run(
        &self,
        mount: &str,
        host: &HostRecord,
        job: OsJob,
        deadline: Duration,
    ) -> Result<JobEnd, ApiError> {
        self.run_as(mount, host, JobId::generate(), job, deadline)
            .await
            .map(|(end, _)| end)
    }

    /// Runs `job` under `job_id`: for a change, the id recorded with its pending candidates,
    /// so the agent's journal and the store name the same change. Answers the end and the
    /// agent that answered (a change's result is acknowledged to it once committed).
    async fn run_as(
        &self,
        mount: &str,
        host: &HostRecord,
        job_id: JobId,
        job: OsJob,
        deadline: Duration,
    ) -> Result<(JobEnd, Option<AgentId>), ApiError> {
        let target = Self::target(host)?;
        if let Some(reason) = self.site_without_agent(mount, host)? {
            return Ok((JobEnd::NotRun(reason), None));
        }
        let result = self
            .dispatcher
            .submit_for_host(
                &target,
                Some(&host.name),
                job_id,
                JobKind::Os(job),
                deadline,
            )
            .await;
        Ok(match result {
            Ok((agent, outcome)) => (JobEnd::Answered(outcome), Some(agent)),
            Err(error @ DispatchError::OutcomeUnknown { .. }) => {
                (JobEnd::Unknown(error.to_string()), None)
            }
            Err(error) => (JobEnd::NotRun(format!("host {}: {error}", host.name)), None),
        })
    }

    fn remember_host_key(&self, mount: &str, host: &HostRecord, outcome: &JobEnd) {
        let observed: Option<&HostKeyObserved> = match outcome {
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login { host_key, .. }))
            | JobEnd::Answered(JobOutcome::Os(OsOutcome::Rotated { host_key, .. })) => {
                host_key.as_ref()
            }
            _ => None,
        };
        if let Some(observed) = observed
            && host.ssh_host_key.is_none()
            && host.trusted_host_key.is_none()
        {
            match model::record_trusted_host_key(&self.store, mount, &host.name, &observed.openssh)
            {
                Ok(()) => tracing::info!(host = %host.name, fingerprint = %observed.fingerprint,
                    "trusted the host key offered at first contact"),
                Err(error) => {
                    tracing::error!(host = %host.name, %error, "cannot record the host key")
                }
            }
        }
    }

    /// Logs in with `password` (account creation with verify_connection=true).
    pub async fn check_login(
        &self,
        mount: &str,
        host: &HostRecord,
        username: &str,
        password: &Password,
    ) -> Result<(), ApiError> {
        let config = model::read_config(&self.store, mount)?;
        let job = OsJob::VerifyLogin {
            host: Self::host_spec(&config, host),
            username: username.to_string(),
            candidates: vec![password.clone()],
        };
        let end = self
            .run(
                mount,
                host,
                job,
                Duration::from_secs(config.connect_timeout_secs + config.step_timeout_secs * 2),
            )
            .await?;
        self.remember_host_key(mount, host, &end);
        match end {
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login {
                accepted: Some(0), ..
            })) => Ok(()),
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login { .. })) => {
                Err(ApiError::bad_request(format!(
                    "cannot log in as {username} on host {} ({}:{}) with the given password; check it, or set verify_connection=false to defer the first contact",
                    host.name, host.address, host.port
                )))
            }
            JobEnd::Answered(JobOutcome::Failed(failure)) => Err(ApiError::bad_request(format!(
                "verifying the connection failed: {}",
                failure.message
            ))),
            JobEnd::Answered(_) => Err(ApiError::internal("unexpected answer to a login check")),
            JobEnd::NotRun(reason) | JobEnd::Unknown(reason) => {
                Err(ApiError::bad_request(format!(
                    "verifying the connection failed: {reason}; or set verify_connection=false to defer the first contact"
                )))
            }
        }
    }

    /// Rotates one account (through its parent when it has one).
    pub async fn rotate_account(
        &self,
        mount: &str,
        host_name: &str,
        account_name: &str,
    ) -> Result<AccountReport, ApiError> {
        let _claim = self.claim_host(mount, host_name).await;
        let (host, account) = self.load(mount, host_name, account_name)?;
        let reports = match &account.parent_ref {
            Some(parent_name) => {
                let (_, parent) = self.load(mount, host_name, parent_name)?;
                self.rotate_batch(mount, &host, Some(&parent), vec![account])
                    .await?
            }
            None => self.rotate_batch(mount, &host, None, vec![account]).await?,
        };
        reports
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("rotation produced no report"))
    }

    /// Rotates every account of a host: children of one parent in one job each parent, then
    /// the accounts without a parent one by one.
    pub async fn rotate_host(
        &self,
        mount: &str,
        host_name: &str,
    ) -> Result<Vec<AccountReport>, ApiError> {
        self.rotate_accounts(mount, host_name, None).await
    }

    /// Rotates the named accounts of a host (all when `only` is None), batched per parent.
    pub async fn rotate_accounts(
        &self,
        mount: &str,
        host_name: &str,
        only: Option<&[String]>,
    ) -> Result<Vec<AccountReport>, ApiError> {
        let claim = self.claim_host(mount, host_name).await;
        self.rotate_accounts_claimed(claim, mount, host_name, only)
            .await
    }

    /// [`OsEngine::rotate_accounts`] on a host the caller already claimed.
    pub async fn rotate_accounts_claimed(
        &self,
        _claim: HostClaim,
        mount: &str,
        host_name: &str,
        only: Option<&[String]>,
    ) -> Result<Vec<AccountReport>, ApiError> {
        let host = model::get_host(&self.store, mount, host_name)?
            .ok_or_else(|| ApiError::not_found(format!("host {host_name} does not exist")))?;
        let accounts: Vec<AccountRecord> = model::list_accounts(&self.store, mount, host_name)?
            .into_iter()
            .filter(|account| only.is_none_or(|names| names.contains(&account.name)))
            .collect();
        let mut by_parent: HashMap<String, Vec<AccountRecord>> = HashMap::new();
        let mut standalone = Vec::new();
        for account in accounts {
            match &account.parent_ref {
                Some(parent) => by_parent.entry(parent.clone()).or_default().push(account),
                None => standalone.push(account),
            }
        }
        let mut reports = Vec::new();
        let mut parents: Vec<String> = by_parent.keys().cloned().collect();
        parents.sort();
        for parent_name in parents {
            let children = by_parent.remove(&parent_name).unwrap_or_default();
            let (_, parent) = self.load(mount, host_name, &parent_name)?;
            reports.extend(
                self.rotate_batch(mount, &host, Some(&parent), children)
                    .await?,
            );
        }
        for account in standalone {
            reports.extend(self.rotate_batch(mount, &host, None, vec![account]).await?);
        }
        Ok(reports)
    }

    fn load(
        &self,
        mount: &str,
        host_name: &str,
        account_name: &str,
    ) -> Result<(HostRecord, AccountRecord), ApiError> {
        let host = model::get_host(&self.store, mount, host_name)?
            .ok_or_else(|| ApiError::not_found(format!("host {host_name} does not exist")))?;
        let account =
            model::get_account(&self.store, mount, host_name, account_name)?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "account {account_name} does not exist on host {host_name}"
                ))
            })?;
        Ok((host, account))
    }

    /// One rotation attempt for a batch (all children of `parent`, or one account alone),
    /// counted in the metrics: each account's outcome and the batch's latency. The caller
    /// holds the host lock.
    async fn rotate_batch(
        &self,
        mount: &str,
        host: &HostRecord,
        parent: Option<&AccountRecord>,
        accounts: Vec<AccountRecord>,
    ) -> Result<Vec<AccountReport>, ApiError> {
        let started = Instant::now();
        let batch_size = accounts.len();
        let result = self.rotate_batch_once(mount, host, parent, accounts).await;
        let registry = metrics::global();
        match &result {
            Ok(reports) => {
                for report in reports {
                    registry.rotation_finished(rotation_outcome(report), started.elapsed());
                }
            }
            Err(_) => {
                for _ in 0..batch_size {
                    registry.rotation_finished(RotationOutcome::Error, started.elapsed());
                }
            }
        }
        result
    }

    async fn rotate_batch_once(
        &self,
        mount: &str,
        host: &HostRecord,
        parent: Option<&AccountRecord>,
        accounts: Vec<AccountRecord>,
    ) -> Result<Vec<AccountReport>, ApiError> {
        let config = model::read_config(&self.store, mount)?;
        let policy = Self::change_policy(&config);
        let job_id = JobId::generate();
        // One change per account, all under the batch's one job id: the id sealed with each
        // candidate is the id the agent runs and journals.
        let mut changes: Vec<Change<Password>> = accounts
            .iter()
            .map(|account| Change::start(job_id, account.failed_attempts, policy))
            .collect();
        for change in &mut changes {
            match change.poll_action() {
                Some(Action::Seal { job }) if job == job_id => {}
                other => {
                    return Err(ApiError::internal(format!(
                        "the change core asked for {other:?} before sealing"
                    )));
                }
            }
        }
        // Fresh candidates every attempt: a retry never replays a password a host refused.
        // Each from the password policy that applies to it (account > host > config > default).
        let candidates: Vec<(String, Password)> = accounts
            .iter()
            .map(|account| {
                password::candidate(&self.store, &config, host, account)
                    .map(|candidate| (account.name.clone(), candidate))
            })
            .collect::<Result<_, ApiError>>()?;
        // A seal that fails sends nothing and leaves whatever the store held (an account
        // already in flight keeps its own pending change): the error is the answer.
        model::record_pending_candidates(
            &self.store,
            mount,
            &host.name,
            &job_id.to_string(),
            &candidates,
        )?;
        let now = Instant::now();
        let mut job_changes = Vec::new();
        for ((change, (_, candidate)), account) in
            changes.iter_mut().zip(&candidates).zip(&accounts)
        {
            change.handle(Event::Sealed(candidate.clone()), now);
            match change.poll_action() {
                Some(Action::Submit { job, candidate }) if job == job_id => {
                    job_changes.push(AccountChange {
                        username: account.username.clone(),
                        new_password: candidate,
                    })
                }
                other => {
                    return Err(ApiError::internal(format!(
                        "the change core asked for {other:?} after sealing"
                    )));
                }
            }
        }
        let recipe = self.recipe(mount, &config, host, parent, accounts.first())?;
        let job = recipe
            .job(job_changes)
            .ok_or_else(|| ApiError::internal("empty rotation batch"))?;
        let (end, answered_by) = self
            .run_as(
                mount,
                host,
                job_id,
                job,
                Duration::from_secs(config.rotation_deadline_secs),
            )
            .await?;
        self.remember_host_key(mount, host, &end);
        let now = Instant::now();
        // Confirmed changes commit together, in one transaction; the rest one by one. Reports
        // keep the accounts' order.
        let mut slots: Vec<Option<AccountReport>> = Vec::new();
        let mut confirmed: Vec<(usize, String, PasswordConfirmed)> = Vec::new();
        for (mut change, account) in changes.into_iter().zip(&accounts) {
            change.handle(Event::Answered(end.answer_for(&account.username)), now);
            match change.poll_action() {
                Some(Action::Commit(proof)) => {
                    confirmed.push((slots.len(), account.name.clone(), proof));
                    slots.push(None);
                }
                Some(first) => {
                    let report = self
                        .execute(mount, host, account, &mut change, Some(first))
                        .await?;
                    slots.push(Some(report));
                }
                None => slots.push(None),
            }
        }
        if !confirmed.is_empty() {
            let (places, batch): (Vec<usize>, Vec<(String, PasswordConfirmed)>) = confirmed
                .into_iter()
                .map(|(place, name, proof)| (place, (name, proof)))
                .unzip();
            let versions = model::commit_confirmed_all(&self.store, mount, &host.name, &batch)?;
            for ((place, (name, _)), version) in places.into_iter().zip(&batch).zip(versions) {
                let report = match version {
                    Some(version) => {
                        tracing::info!(host = %host.name, account = %name, version, "password rotated");
                        AccountReport {
                            account: name.clone(),
                            committed_version: Some(version),
                            status: AccountStatus::InSync,
                            error: None,
                        }
                    }
                    None => AccountReport {
                        account: name.clone(),
                        committed_version: None,
                        status: AccountStatus::InSync,
                        error: Some(format!(
                            "account {name} was deleted while it rotated; its new password on host {} was not recorded",
                            host.name
                        )),
                    },
                };
                slots[place] = Some(report);
            }
        }
        // Every account of the job is settled in the store: the agent may forget the result.
        if let Some(agent) = answered_by {
            self.dispatcher.acknowledge_result(&agent, job_id).await;
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// How the change core paces this mount's changes.
    fn change_policy(config: &OsConfig) -> Policy {
        Policy {
            look_gap: Duration::from_secs(config.step_timeout_secs.clamp(1, 30)),
            ..Policy::default()
        }
    }

    /// How `host`'s passwords are changed for a batch: through `parent`, locally, or by the
    /// account itself (`first`, the batch's only account).
    fn recipe(
        &self,
        mount: &str,
        config: &OsConfig,
        host: &HostRecord,
        parent: Option<&AccountRecord>,
        first: Option<&AccountRecord>,
    ) -> Result<Recipe, ApiError> {
        Ok(match (host.connection, parent) {
            (Connection::Local, _) => Recipe::Local {
                command: host.chpasswd_command.clone(),
            },
            (Connection::Ssh, Some(parent)) => Recipe::Parent {
                host: Self::host_spec(config, host),
                parent_username: parent.username.clone(),
                parent_password: model::current_password(&self.store, mount, parent)?,
                command: host.chpasswd_command.clone(),
            },
            (Connection::Ssh, None) => {
                let account = first.ok_or_else(|| ApiError::internal("empty rotation batch"))?;
                Recipe::Itself {
                    host: Self::host_spec(config, host),
                    current: model::current_password(&self.store, mount, account)?,
                }
            }
        })
    }

    /// Carries out `change`'s actions for `account` (starting with `first`, already polled)
    /// until it ends or parks, and reports where the account stands. The caller holds the
    /// host lock. The executor of the change core for the OS engine.
    async fn execute(
        &self,
        mount: &str,
        host: &HostRecord,
        account: &AccountRecord,
        change: &mut Change<Password>,
        first: Option<Action<Password>>,
    ) -> Result<AccountReport, ApiError> {
        let mut next = first;
        let mut target: Option<AccountTarget> = None;
        let mut report = AccountReport {
            account: account.name.clone(),
            committed_version: None,
            status: account.status,
            error: None,
        };
        loop {
            let action = match next.take().or_else(|| change.poll_action()) {
                Some(action) => action,
                None => match change.poll_timeout() {
                    Some(due) => {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                        change.handle_timeout(Instant::now());
                        continue;
                    }
                    None => return Ok(report),
                },
            };
            match action {
                // Sealing and submitting happen in `rotate_batch_once`, for the whole batch.
                Action::Seal { .. } | Action::Submit { .. } => {
                    return Err(ApiError::internal(
                        "the change core asked to seal or submit outside a rotation",
                    ));
                }
                Action::MarkVerifying { detail } => {
                    model::mark_verifying(&self.store, mount, &host.name, &account.name, &detail)?;
                    tracing::warn!(host = %host.name, account = %account.name, %detail, "rotation outcome unknown; verifying by login");
                    report.status = AccountStatus::Verifying;
                }
                Action::ReadJournal { job } => {
                    let answer = self.journal_answer(mount, host, account, job).await?;
                    change.handle(Event::Journal(answer), Instant::now());
                }
                Action::Probe { candidate, look } => {
                    if target.is_none() {
                        target = Some(self.account_target(mount, host, account)?);
                    }
                    let Some(target) = &target else { continue };
                    if look > 1 {
                        tracing::warn!(host = %host.name, account = %account.name, look,
                            "verification: neither password logged in; a change may still be landing, looking again");
                    }
                    let config = model::read_config(&self.store, mount)?;
                    let JobKind::Os(job) = target.probe_job(&candidate) else {
                        return Err(ApiError::internal("the OS engine built a non-OS probe"));
                    };
                    let end = self
                        .run(
                            mount,
                            host,
                            job,
                            Duration::from_secs(
                                config.connect_timeout_secs + config.step_timeout_secs * 3,
                            ),
                        )
                        .await?;
                    let answer = match &end {
                        JobEnd::Answered(outcome) => target.read_probe(outcome),
                        JobEnd::NotRun(reason) | JobEnd::Unknown(reason) => {
                            ProbeAnswer::CouldNotTell(reason.clone())
                        }
                    };
                    let result = match &answer {
                        ProbeAnswer::CandidateWorks => "candidate_logs_in",
                        ProbeAnswer::CurrentWorks => "current_logs_in",
                        ProbeAnswer::NeitherWorks => "neither_logs_in",
                        ProbeAnswer::CouldNotTell(_) => "inconclusive",
                    };
                    let conclusive = !matches!(answer, ProbeAnswer::NeitherWorks)
                        || look >= Self::change_policy(&config).neither_looks;
                    if conclusive {
                        metrics::global().verification_finished(VerificationKind::Pending, result);
                    }
                    change.handle(Event::Probed(answer), Instant::now());
                }
                Action::Commit(proof) => {
                    let known_by = proof.known_by();
                    let version = model::commit_confirmed(
                        &self.store,
                        mount,
                        &host.name,
                        &account.name,
                        proof,
                    )?;
                    match known_by {
                        Knowledge::Journal => {
                            tracing::info!(host = %host.name, account = %account.name, version, job = %change.job(),
                                "settled from the agent's journal: the agent recorded the change as made; committed without a probe login");
                            metrics::global()
                                .verification_finished(VerificationKind::Pending, "agent_journal");
                        }
                        Knowledge::Probe => {
                            tracing::info!(host = %host.name, account = %account.name, version, "verification: the new password is on the host; committed")
                        }
                        Knowledge::Answer | Knowledge::NeverSent => {
                            tracing::info!(host = %host.name, account = %account.name, version, "password rotated")
                        }
                    }
                    report.committed_version = Some(version);
                    report.status = AccountStatus::InSync;
                    report.error = None;
                }
                Action::Drop {
                    reason,
                    retry_after,
                    known_by,
                } => {
                    model::drop_pending(
                        &self.store,
                        mount,
                        &host.name,
                        &account.name,
                        Some(reason.clone()),
                        Some(retry_after.as_secs()),
                    )?;
                    match known_by {
                        Knowledge::Journal => {
                            tracing::warn!(host = %host.name, account = %account.name, job = %change.job(), %reason,
                                "settled from the agent's journal: the change certainly did not happen; dropped without a probe login");
                            metrics::global()
                                .verification_finished(VerificationKind::Pending, "agent_journal");
                        }
                        Knowledge::Probe => {
                            tracing::warn!(host = %host.name, account = %account.name, "verification: the host kept the current password")
                        }
                        Knowledge::Answer | Knowledge::NeverSent => {
                            tracing::warn!(host = %host.name, account = %account.name, %reason, "rotation failed; nothing changed on the host")
                        }
                    }
                    report.status = AccountStatus::InSync;
                    report.error = Some(match known_by {
                        Knowledge::Probe => {
                            "the change did not happen (the current password still logs in)"
                                .to_string()
                        }
                        _ => reason,
                    });
                }
                Action::OutOfSync { detail } => {
                    let detail = format!(
                        "OUT OF SYNC: neither the new nor the current password logs in as {} on host {} ({detail}); reconcile through a parent or reset the password",
                        account.username, host.name
                    );
                    model::mark_out_of_sync(
                        &self.store,
                        mount,
                        &host.name,
                        &account.name,
                        &detail,
                    )?;
                    tracing::error!(host = %host.name, account = %account.name, "{detail}");
                    report.status = AccountStatus::OutOfSync;
                    report.error = Some(detail);
                }
                Action::Park { detail } => {
                    let detail = format!("verification pending: {detail}");
                    model::mark_verifying(&self.store, mount, &host.name, &account.name, &detail)?;
                    tracing::warn!(host = %host.name, account = %account.name, %detail, "verification could not run; will retry");
                    report.status = AccountStatus::Verifying;
                    report.error = Some(detail);
                }
            }
        }
    }

    /// `account` as the change core's target (for its probe).
    fn account_target(
        &self,
        mount: &str,
        host: &HostRecord,
        account: &AccountRecord,
    ) -> Result<AccountTarget, ApiError> {
        let config = model::read_config(&self.store, mount)?;
        let current = model::current_password(&self.store, mount, account)?;
        Ok(AccountTarget {
            host_name: host.name.clone(),
            username: account.username.clone(),
            host: Self::host_spec(&config, host),
            current: current.clone(),
            recipe: Recipe::Itself {
                host: Self::host_spec(&config, host),
                current,
            },
        })
    }

    /// Resolves an account's pending candidate: from its agent's journal when the agent
    /// recorded an answer, else by logging in with it, then with the current password. The
    /// caller holds the host lock.
    async fn verify_pending_locked(
        &self,
        mount: &str,
        host_name: &str,
        account_name: &str,
    ) -> Result<AccountReport, ApiError> {
        let (host, account) = self.load(mount, host_name, account_name)?;
        let (Some(pending), Some(candidate)) = (
            account.pending.clone(),
            model::pending_candidate(&self.store, mount, &account)?,
        ) else {
            return Ok(AccountReport {
                account: account.name.clone(),
                committed_version: None,
                status: account.status,
                error: None,
            });
        };
        let job = pending.job_id.parse::<JobId>().map_err(|error| {
            ApiError::internal(format!(
                "account {account_name} on host {host_name}: its pending change's job id {:?} is unreadable ({error}); reconcile or reset the account",
                pending.job_id
            ))
        })?;
        let config = model::read_config(&self.store, mount)?;
        let mut change = Change::resume(
            job,
            candidate,
            account.failed_attempts,
            Self::change_policy(&config),
        );
        self.execute(mount, &host, &account, &mut change, None)
            .await
    }

    /// The agent's journaled answer for `account`'s change `job`, when the agent that ran it
    /// reported the result after a reconnect (the controller was killed, or the link broke,
    /// before the answer arrived). Waits first for an agent of the host to connect (an event,
    /// at most `agent_wait`), since a reconnecting agent's journal is kept before its link
    /// registers. `None`: no answer; the core probes instead.
    async fn journal_answer(
        &self,
        mount: &str,
        host: &HostRecord,
        account: &AccountRecord,
        job: JobId,
    ) -> Result<Option<Answer>, ApiError> {
        if self.site_without_agent(mount, host)?.is_none()
            && let Ok(target) = Self::target(host)
        {
            self.dispatcher
                .wait_until_connected(&target, self.dispatcher.agent_wait())
                .await;
        }
        Ok(
            crate::dispatch::evidence::reported(&self.store, &job.to_string())?.map(
                |(agent, outcome)| {
                    tracing::debug!(host = %host.name, account = %account.name, %job, %agent, "the agent's journal answered for a pending change");
                    rotation::read_answer(&outcome, &account.username)
                },
            ),
        )
    }

    /// Resolves every pending candidate of a mount (after a controller restart, or later
    /// while some stay inconclusive). One account that cannot be resolved now (its host
    /// unreachable, its record damaged) is logged and left for the next pass; it never holds
    /// up the accounts after it.
    ///
    /// Hosts recover side by side (at most [`RECOVERY_HOSTS_AT_ONCE`]); one host's accounts
    /// one after another, under its lock, in the order they are stored.
    pub async fn recover_pending(&self, mount: &str) -> Result<usize, ApiError> {
        let mut by_host: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for account in model::accounts_with_pending(&self.store, mount)? {
            by_host.entry(account.host).or_default().push(account.name);
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(RECOVERY_HOSTS_AT_ONCE));
        let mut hosts = tokio::task::JoinSet::new();
        for (host, accounts) in by_host {
            let engine = self.clone();
            let mount = mount.to_string();
            let permits = permits.clone();
            hosts.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return 0;
                };
                engine.recover_host(&mount, &host, &accounts).await
            });
        }
        let mut resolved = 0;
        while let Some(joined) = hosts.join_next().await {
            match joined {
                Ok(count) => resolved += count,
                Err(error) => {
                    tracing::error!(mount, %error, "a host's recovery task panicked; the next recovery pass retries it");
                    metrics::global().internal_error("recovery_task_panicked");
                }
            }
        }
        Ok(resolved)
    }

    /// Recovers one host's pending accounts in order; answers how many settled.
    async fn recover_host(&self, mount: &str, host: &str, accounts: &[String]) -> usize {
        let _claim = self.claim_host(mount, host).await;
        let mut resolved = 0;
        for account in accounts {
            match self.verify_pending_locked(mount, host, account).await {
                Ok(report) if report.status != AccountStatus::Verifying => resolved += 1,
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    mount, %host, %account, error = %error.message,
                    "recovering a pending change failed; the next recovery pass retries it"
                ),
            }
        }
        resolved
    }

    /// `…/verify`: does the known password still log in? Changes nothing on the host.
    pub async fn verify_current(
        &self,
        mount: &str,
        host_name: &str,
        account_name: &str,
    ) -> Result<bool, ApiError> {
        self.verify_current_as(mount, host_name, account_name, VerificationKind::Current)
            .await
    }

    /// `verify_current` for `kind` (asked for, or the scheduler's heartbeat), as the metrics
    /// count it; its result is recorded for the account's read (`heartbeat.rs`).
    pub async fn verify_current_as(
        &self,
        mount: &str,
        host_name: &str,
        account_name: &str,
        kind: VerificationKind,
    ) -> Result<bool, ApiError> {
        let claim = self.claim_host(mount, host_name).await;
        self.verify_current_claimed(claim, mount, host_name, account_name, kind)
            .await
    }

    /// [`OsEngine::verify_current_as`] on a host the caller already claimed.
    pub async fn verify_current_claimed(
        &self,
        claim: HostClaim,
        mount: &str,
        host_name: &str,
        account_name: &str,
        kind: VerificationKind,
    ) -> Result<bool, ApiError> {
        let (host, account) = self.load(mount, host_name, account_name)?;
        if account.pending.is_some() {
            return Err(ApiError::bad_request(format!(
                "account {account_name} has a rotation in flight; verify when it is done"
            )));
        }
        let current = model::current_password(&self.store, mount, &account)?;
        let config = model::read_config(&self.store, mount)?;
        let job = OsJob::VerifyLogin {
            host: Self::host_spec(&config, &host),
            username: account.username.clone(),
            candidates: vec![current],
        };
        let end = self
            .run(
                mount,
                &host,
                job,
                Duration::from_secs(config.connect_timeout_secs + config.step_timeout_secs * 2),
            )
            .await?;
        self.remember_host_key(mount, &host, &end);
        let result = match &end {
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login {
                accepted: Some(0), ..
            })) => "in_sync",
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login { .. })) => "out_of_sync",
            _ => "not_run",
        };
        metrics::global().verification_finished(kind, result);
        let (found, detail) = match &end {
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login {
                accepted: Some(0), ..
            })) => (VerifyResult::InSync, None),
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login { .. })) => (
                VerifyResult::OutOfSync,
                Some("the known password no longer logs in".to_string()),
            ),
            JobEnd::Answered(JobOutcome::Failed(failure)) => {
                (VerifyResult::NotRun, Some(failure.message.clone()))
            }
            JobEnd::Answered(_) => (
                VerifyResult::NotRun,
                Some("unexpected answer to a login check".to_string()),
            ),
            JobEnd::NotRun(reason) | JobEnd::Unknown(reason) => {
                (VerifyResult::NotRun, Some(reason.clone()))
            }
        };
        if let Err(error) = heartbeat::record_result(
            &self.store,
            mount,
            host_name,
            account_name,
            crate::tokens::now_unix(),
            found,
            detail,
        ) {
            tracing::error!(host = %host_name, account = %account_name, %error, "cannot record the verification's result");
        }
        match end {
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login {
                accepted: Some(0), ..
            })) => {
                if account.status == AccountStatus::OutOfSync {
                    model::drop_pending(&self.store, mount, host_name, account_name, None, None)?;
                }
                Ok(true)
            }
            JobEnd::Answered(JobOutcome::Os(OsOutcome::Login { .. })) => {
                let detail = format!(
                    "OUT OF SYNC: the known password of {} no longer logs in on host {host_name} (changed outside Rotor?)",
                    account.username
                );
                model::mark_out_of_sync(&self.store, mount, host_name, account_name, &detail)?;
                tracing::error!(host = %host_name, account = %account_name, "{detail}");
                if account.auto_reconcile && account.parent_ref.is_some() {
                    drop(claim);
                    self.reconcile(mount, host_name, account_name).await?;
                }
                Ok(false)
            }
            JobEnd::Answered(JobOutcome::Failed(failure)) => Err(ApiError::bad_request(format!(
                "cannot verify {account_name} on host {host_name}: {}",
                failure.message
            ))),
            JobEnd::Answered(_) => Err(ApiError::internal("unexpected answer to a login check")),
            JobEnd::NotRun(reason) | JobEnd::Unknown(reason) => Err(ApiError::bad_request(
                format!("cannot verify {account_name} on host {host_name}: {reason}"),
            )),
        }
    }

    /// Sets a fresh password through the parent (the account's own password is not needed)
    /// and commits it: the way back from `out_of_sync`.
    pub async fn reconcile(
        &self,
        mount: &str,
        host_name: &str,
        account_name: &str,
    ) -> Result<AccountReport, ApiError> {
        let (_, account) = self.load(mount, host_name, account_name)?;
        if account.parent_ref.is_none() {
            return Err(ApiError::bad_request(format!(
                "account {account_name} has no parent_ref, so Rotor cannot set its password without knowing it; reset it with the right password instead"
            )));
        }
        self.rotate_account(mount, host_name, account_name).await
    }
}
