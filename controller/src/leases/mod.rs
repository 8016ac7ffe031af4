//! The lease manager: every secret Rotor hands out with a lifetime (SSH OTPs, later
//! database users and check-outs) is registered here and ended here.
//!
//! Owns the `leases` and `lease_owners` tables, the in-memory schedule of what is due next,
//! and running revoke actions. Engines register a [`Revoker`] per secret kind at startup and
//! call [`LeaseManager::register`] when they issue a secret. A failed revocation keeps the
//! lease, records the error and retries with backoff (`record.rs`); only `revoke-force`
//! forgets a lease whose action failed. Everything is in the store, so a restart resumes
//! where it stopped. Must not know what any secret kind is: that is the revokers'.

pub mod record;
pub mod sweeper;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

pub use record::{LeaseRecord, RevocationFailure};

use crate::store::{Store, StoreError, Table, WriteTx};

/// What a revoke action answers: `Err` with a message that says what failed (no secrets).
pub type RevokeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Ends one kind of secret (deletes a database user, forgets an OTP, checks an account in).
/// Must be idempotent: after a crash a lease may be revoked again.
pub trait Revoker: Send + Sync {
    fn revoke<'a>(&'a self, lease: &'a LeaseRecord) -> RevokeFuture<'a>;
}

/// Extends one kind of secret on its target before a renewal is recorded (a database role's
/// `VALID UNTIL`). Kinds without one renew in the store only.
pub trait Renewer: Send + Sync {
    /// Makes the secret of `lease` valid until `new_expire_unix`.
    fn renew<'a>(&'a self, lease: &'a LeaseRecord, new_expire_unix: u64) -> RevokeFuture<'a>;
}

/// Why a lease operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease not found: {0} (it expired, was revoked, or never existed)")]
    NotFound(String),
    #[error("lease {0} is not renewable")]
    NotRenewable(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "revoking lease {lease_id} failed: {error}; Rotor keeps the lease and retries in {retry_secs}s (sys/leases/lookup shows the attempts; revoke-force forgets it without revoking)"
    )]
    RevokeFailed {
        lease_id: String,
        error: String,
        retry_secs: u64,
    },
    #[error(
        "renewing lease {lease_id} failed: {error}; the lease keeps its old expiry, renew again once that is fixed"
    )]
    RenewFailed { lease_id: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A secret to put under a lease.
#[derive(Debug, Clone)]
pub struct NewLease {
    /// The path the secret was issued at (`ssh/creds/otp`); the lease id starts with it.
    pub path_prefix: String,
    pub secret_kind: String,
    pub ttl: Duration,
    /// Renewals stop here (from issue time); zero means the same as `ttl`.
    pub max_ttl: Duration,
    pub renewable: bool,
    /// What the kind's revoker needs to end the secret.
    pub revoke_data: Value,
    /// The token the secret is issued to.
    pub owner_accessor: Option<String>,
}

/// What a prefix revocation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PrefixOutcome {
    pub revoked: Vec<String>,
    /// Leases whose action failed: kept and retried (or forgotten with force).
    pub failed: Vec<(String, String)>,
}

struct Inner {
    store: Arc<Store>,
    revokers: RwLock<HashMap<String, Arc<dyn Revoker>>>,
    renewers: RwLock<HashMap<String, Arc<dyn Renewer>>>,
    /// (due time, lease id): what the sweeper looks at next. Mirrors the store; rebuilt from
    /// it at start. A std mutex: never held across an await.
    schedule: Mutex<BTreeSet<(u64, String)>>,
    /// Leases being revoked right now, so a sweep and an API call never run one twice.
    in_flight: Mutex<HashSet<String>>,
    /// Wakes the sweeper when something became due now (a token was revoked).
    wake: Notify,
    /// Leases whose last revocation failed (kept and retried): `sys/metrics` counts them.
    failing: Mutex<HashSet<String>>,
}

/// Handle to the lease manager. Cheap to clone.
#[derive(Clone)]
pub struct LeaseManager {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_suffix() -> String {
    crate::tokens::random_uuid()
}

impl LeaseManager {
    /// Loads every lease from the store and schedules it (expired ones are due at once).
    pub fn new(store: Arc<Store>) -> Result<Self, LeaseError> {
        let schedule: BTreeSet<(u64, String)> = store
            .scan::<LeaseRecord>(Table::Leases, "")?
            .into_iter()
            .map(|(id, lease)| (lease.due_unix(), id))
            .collect();
        let failing: HashSet<String> = store
            .scan::<LeaseRecord>(Table::Leases, "")?
            .into_iter()
            .filter(|(_, lease)| lease.revocation.is_some())
            .map(|(id, _)| id)
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                revokers: RwLock::new(HashMap::new()),
                renewers: RwLock::new(HashMap::new()),
                schedule: Mutex::new(schedule),
                in_flight: Mutex::new(HashSet::new()),
                wake: Notify::new(),
                failing: Mutex::new(failing),
            }),
        })
    }

    /// Installs the revoke action for a secret kind (engines call this at startup).
    pub fn register_revoker(&self, secret_kind: &str, revoker: Arc<dyn Revoker>) {
        if let Ok(mut revokers) = self.inner.revokers.write() {
            revokers.insert(secret_kind.to_string(), revoker);
        }
    }

    /// Installs the renew action for a secret kind (engines call this at startup).
    pub fn register_renewer(&self, secret_kind: &str, renewer: Arc<dyn Renewer>) {
        if let Ok(mut renewers) = self.inner.renewers.write() {
            renewers.insert(secret_kind.to_string(), renewer);
        }
    }

    /// How many leases have a failing revocation (kept, retried with backoff).
    pub fn revocations_pending(&self) -> usize {
        lock(&self.inner.failing).len()
    }

    /// How many leases exist (scheduled).
    pub fn count(&self) -> usize {
        lock(&self.inner.schedule).len()
    }

    fn schedule(&self, lease_id: &str, old_due: Option<u64>, new_due: Option<u64>) {
        let mut schedule = lock(&self.inner.schedule);
        if let Some(due) = old_due {
            schedule.remove(&(due, lease_id.to_string()));
        }
        if let Some(due) = new_due {
            schedule.insert((due, lease_id.to_string()));
        }
    }

    /// Puts a secret under a lease; answers the record (its id goes in the response).
    pub fn register(&self, new: NewLease, now: u64) -> Result<LeaseRecord, LeaseError> {
        let prefix = new.path_prefix.trim_matches('/');
        if prefix.is_empty() {
            return Err(LeaseError::Invalid(
                "a lease needs the path its secret was issued at".into(),
            ));
        }
        if new.ttl.is_zero() {
            return Err(LeaseError::Invalid("a lease needs a TTL above zero".into()));
        }
        let ttl_secs = new.ttl.as_secs().max(1);
        let max_secs = new.max_ttl.as_secs().max(ttl_secs);
        let lease = LeaseRecord {
            lease_id: format!("{prefix}/{}", random_suffix()),
            secret_kind: new.secret_kind,
            issue_unix: now,
            expire_unix: now.saturating_add(ttl_secs),
            max_expire_unix: now.saturating_add(max_secs),
            ttl_secs,
            renewable: new.renewable,
            last_renewal_unix: None,
            owner_accessor: new.owner_accessor,
            revoke_data: new.revoke_data,
            revocation: None,
        };
        self.inner.store.write(|tx| {
            tx.put(Table::Leases, &lease.lease_id, &lease)?;
            if let Some(owner) = &lease.owner_accessor {
                tx.put(
                    Table::LeaseOwners,
                    &format!("{owner}/{}", lease.lease_id),
                    &(),
                )?;
            }
            Ok::<_, StoreError>(())
        })?;
        self.schedule(&lease.lease_id, None, Some(lease.due_unix()));
        Ok(lease)
    }

    pub fn lookup(&self, lease_id: &str) -> Result<LeaseRecord, LeaseError> {
        self.inner
            .store
            .get(Table::Leases, lease_id)?
            .ok_or_else(|| LeaseError::NotFound(lease_id.to_string()))
    }

    /// One level of lease ids under `prefix` (`""` for the top), Vault's `sys/leases/lookup/`.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, LeaseError> {
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            trimmed => format!("{trimmed}/"),
        };
        let ids: Vec<String> = self
            .inner
            .store
            .scan::<Value>(Table::Leases, &prefix)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        Ok(record::list_level(&prefix, ids.iter().map(String::as_str)))
    }

    /// Extends a lease by `increment` (zero: its own TTL), never past its maximum. A kind with
    /// a [`Renewer`] extends its secret on the target first; a failure there leaves the lease
    /// as it was.
    pub async fn renew(
        &self,
        lease_id: &str,
        increment: Duration,
        now: u64,
    ) -> Result<LeaseRecord, LeaseError> {
        let current = self.lookup(lease_id)?;
        if current.expire_unix <= now || current.revocation.is_some() {
            return Err(LeaseError::NotFound(lease_id.to_string()));
        }
        if !current.renewable {
            return Err(LeaseError::NotRenewable(lease_id.to_string()));
        }
        let wanted = record::renewed_expiry(&current, increment.as_secs(), now);
        let renewer = self
            .inner
            .renewers
            .read()
            .ok()
            .and_then(|renewers| renewers.get(&current.secret_kind).cloned());
        if let Some(renewer) = renewer {
            renewer
                .renew(&current, wanted)
                .await
                .map_err(|error| LeaseError::RenewFailed {
                    lease_id: lease_id.to_string(),
                    error,
                })?;
        }
        let (old_due, lease) = self.inner.store.write(|tx| {
            let mut lease: LeaseRecord = tx
                .get(Table::Leases, lease_id)?
                .ok_or_else(|| LeaseError::NotFound(lease_id.to_string()))?;
            if lease.expire_unix <= now || lease.revocation.is_some() {
                return Err(LeaseError::NotFound(lease_id.to_string()));
            }
            if !lease.renewable {
                return Err(LeaseError::NotRenewable(lease_id.to_string()));
            }
            let old_due = lease.due_unix();
            lease.expire_unix = wanted;
            lease.last_renewal_unix = Some(now);
            tx.put(Table::Leases, lease_id, &lease)?;
            Ok((old_due, lease))
        })?;
        self.schedule(lease_id, Some(old_due), Some(lease.due_unix()));
        Ok(lease)
    }

    /// Replaces what a lease's revoke action needs (an engine finishing what it issued under
    /// a lease written ahead). A lease that is gone is `NotFound`.
    pub fn update_revoke_data(&self, lease_id: &str, revoke_data: Value) -> Result<(), LeaseError> {
        self.inner.store.write(|tx| {
            let mut lease: LeaseRecord = tx
                .get(Table::Leases, lease_id)?
                .ok_or_else(|| LeaseError::NotFound(lease_id.to_string()))?;
            lease.revoke_data = revoke_data;
            tx.put(Table::Leases, lease_id, &lease)?;
            Ok(())
        })
    }

    /// Forgets a lease whose secret certainly never came to exist (its issuance failed before
    /// any change), without running its revoke action.
    pub fn discard_unissued(&self, lease_id: &str) -> Result<(), LeaseError> {
        let lease = self.lookup(lease_id)?;
        self.forget(&lease)
    }

    /// Makes a lease due now (its issuance ended in doubt: revoking it settles the target),
    /// and wakes the sweeper.
    pub fn expire_now(&self, lease_id: &str, now: u64) -> Result<(), LeaseError> {
        let old_due = self.inner.store.write(|tx| {
            let mut lease: LeaseRecord = tx
                .get(Table::Leases, lease_id)?
                .ok_or_else(|| LeaseError::NotFound(lease_id.to_string()))?;
            let old_due = lease.due_unix();
            if lease.revocation.is_none() && lease.expire_unix > now {
                lease.expire_unix = now;
                tx.put(Table::Leases, lease_id, &lease)?;
            }
            Ok::<_, LeaseError>(old_due)
        })?;
        self.note_due(&[(lease_id.to_string(), old_due)], now);
        Ok(())
    }

    /// Every lease of `secret_kind` (recovery at start).
    pub fn of_kind(&self, secret_kind: &str) -> Result<Vec<LeaseRecord>, LeaseError> {
        Ok(self
            .inner
            .store
            .scan::<LeaseRecord>(Table::Leases, "")?
            .into_iter()
            .map(|(_, lease)| lease)
            .filter(|lease| lease.secret_kind == secret_kind)
            .collect())
    }

    fn revoker_for(&self, kind: &str) -> Option<Arc<dyn Revoker>> {
        self.inner
            .revokers
            .read()
            .ok()
            .and_then(|revokers| revokers.get(kind).cloned())
    }

    fn forget(&self, lease: &LeaseRecord) -> Result<(), LeaseError> {
        self.inner.store.write(|tx| {
            tx.delete(Table::Leases, &lease.lease_id)?;
            if let Some(owner) = &lease.owner_accessor {
                tx.delete(Table::LeaseOwners, &format!("{owner}/{}", lease.lease_id))?;
            }
            Ok::<_, StoreError>(())
        })?;
        self.schedule(&lease.lease_id, Some(lease.due_unix()), None);
        lock(&self.inner.failing).remove(&lease.lease_id);
        Ok(())
    }

    /// Runs the revoke action of one lease. Success forgets the lease; failure records it
    /// and reschedules with backoff (or, with `force`, forgets it anyway).
    pub async fn revoke(&self, lease_id: &str, force: bool, now: u64) -> Result<(), LeaseError> {
        if !lock(&self.inner.in_flight).insert(lease_id.to_string()) {
            return Err(LeaseError::Invalid(format!(
                "lease {lease_id} is being revoked right now; look it up again in a moment"
            )));
        }
        let outcome = self.revoke_claimed(lease_id, force, now).await;
        lock(&self.inner.in_flight).remove(lease_id);
        outcome
    }

    async fn revoke_claimed(
        &self,
        lease_id: &str,
        force: bool,
        now: u64,
    ) -> Result<(), LeaseError> {
        let lease = self.lookup(lease_id)?;
        let result = match self.revoker_for(&lease.secret_kind) {
            Some(revoker) => revoker.revoke(&lease).await,
            None => Err(format!(
                "no revoke action is registered for secret kind '{}' (is its engine part of this build?)",
                lease.secret_kind
            )),
        };
        match result {
            Ok(()) => {
                self.forget(&lease)?;
                tracing::info!(lease_id = %lease_id, kind = %lease.secret_kind, "lease revoked");
                Ok(())
            }
            Err(error) if force => {
                self.forget(&lease)?;
                tracing::warn!(lease_id = %lease_id, kind = %lease.secret_kind, %error, "lease force-revoked: its revoke action failed, Rotor forgot it anyway");
                Ok(())
            }
            Err(error) => {
                let failure = record::record_failure(lease.revocation.as_ref(), &error, now);
                let retry_secs = failure.next_attempt_unix.saturating_sub(now);
                let attempts = failure.attempts;
                let old_due = lease.due_unix();
                let mut updated = lease;
                updated.revocation = Some(failure);
                let new_due = updated.due_unix();
                self.inner.store.write(|tx| {
                    tx.put(Table::Leases, lease_id, &updated)
                        .map_err(LeaseError::from)
                })?;
                self.schedule(lease_id, Some(old_due), Some(new_due));
                lock(&self.inner.failing).insert(lease_id.to_string());
                tracing::error!(lease_id = %lease_id, kind = %updated.secret_kind, attempts, retry_secs, %error, "lease revocation failed; will retry");
                Err(LeaseError::RevokeFailed {
                    lease_id: lease_id.to_string(),
                    error,
                    retry_secs,
                })
            }
        }
    }

    /// Revokes every lease whose id starts with `prefix` (a whole segment or more).
    pub async fn revoke_prefix(
        &self,
        prefix: &str,
        force: bool,
        now: u64,
    ) -> Result<PrefixOutcome, LeaseError> {
        let prefix = prefix.trim_start_matches('/');
        if prefix.trim_matches('/').is_empty() {
            return Err(LeaseError::Invalid(
                "a prefix is required (revoking every lease at once is not offered)".into(),
            ));
        }
        let ids: Vec<String> = self
            .inner
            .store
            .scan::<Value>(Table::Leases, prefix)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut outcome = PrefixOutcome::default();
        for id in ids {
            match self.revoke(&id, force, now).await {
                Ok(()) => outcome.revoked.push(id),
                Err(LeaseError::NotFound(_)) => {}
                Err(error) => outcome.failed.push((id, error.to_string())),
            }
        }
        Ok(outcome)
    }

    /// Inside a token revocation's transaction: makes every lease owned by `accessors` due
    /// now. Call [`LeaseManager::note_due`] with the answer once the transaction committed.
    pub fn expire_owned_by_in(
        &self,
        tx: &WriteTx<'_>,
        accessors: &[String],
        now: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut moved = Vec::new();
        for accessor in accessors {
            let links = tx.scan::<()>(Table::LeaseOwners, &format!("{accessor}/"))?;
            for (link, ()) in links {
                let Some((_, lease_id)) = link.split_once('/') else {
                    continue;
                };
                let Some(mut lease) = tx.get::<LeaseRecord>(Table::Leases, lease_id)? else {
                    tx.delete(Table::LeaseOwners, &link)?;
                    continue;
                };
                if lease.revocation.is_none() && lease.expire_unix > now {
                    let old_due = lease.due_unix();
                    lease.expire_unix = now;
                    tx.put(Table::Leases, lease_id, &lease)?;
                    moved.push((lease_id.to_string(), old_due));
                }
            }
        }
        Ok(moved)
    }

    /// Reschedules leases [`LeaseManager::expire_owned_by_in`] made due, and wakes the sweeper.
    pub fn note_due(&self, moved: &[(String, u64)], now: u64) {
        for (lease_id, old_due) in moved {
            self.schedule(lease_id, Some(*old_due), Some(now));
        }
        if !moved.is_empty() {
            self.inner.wake.notify_one();
        }
    }

    /// Lease ids due at `now`, not already being revoked.
    fn due(&self, now: u64) -> Vec<String> {
        let schedule = lock(&self.inner.schedule);
        let in_flight = lock(&self.inner.in_flight);
        schedule
            .iter()
            .take_while(|(due, _)| *due <= now)
            .filter(|(_, id)| !in_flight.contains(id))
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Revokes everything due at `now`; answers (revoked, failed) counts.
    pub async fn sweep(&self, now: u64) -> (usize, usize) {
        let mut revoked = 0;
        let mut failed = 0;
        for lease_id in self.due(now) {
            match self.revoke(&lease_id, false, now).await {
                Ok(()) => revoked += 1,
                Err(LeaseError::NotFound(_)) => {
                    // Gone from the store (revoked elsewhere): drop it from the schedule.
                    let mut schedule = lock(&self.inner.schedule);
                    schedule.retain(|(_, id)| id != &lease_id);
                }
                Err(_) => failed += 1,
            }
        }
        (revoked, failed)
    }

    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sealer;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A test-only secret kind: fails its first `failures` revocations, then succeeds.
    struct Flaky {
        failures: usize,
        calls: AtomicUsize,
    }

    impl Revoker for Flaky {
        fn revoke<'a>(&'a self, _lease: &'a LeaseRecord) -> RevokeFuture<'a> {
            Box::pin(async move {
                let call = self.calls.fetch_add(1, Ordering::SeqCst);
                if call < self.failures {
                    Err("test target unreachable".to_string())
                } else {
                    Ok(())
                }
            })
        }
    }

    fn flaky(failures: usize) -> Arc<Flaky> {
        Arc::new(Flaky {
            failures,
            calls: AtomicUsize::new(0),
        })
    }

    fn new_lease(ttl_secs: u64, owner: Option<&str>) -> NewLease {
        NewLease {
            path_prefix: "test/creds/role".into(),
            secret_kind: "test".into(),
            ttl: Duration::from_secs(ttl_secs),
            max_ttl: Duration::from_secs(ttl_secs * 3),
            renewable: true,
            revoke_data: serde_json::json!({"user": "u1"}),
            owner_accessor: owner.map(String::from),
        }
    }

    fn manager() -> LeaseManager {
        let store = Arc::new(Store::in_memory(Sealer::ephemeral()).expect("store"));
        LeaseManager::new(store).expect("manager")
    }

    #[tokio::test]
    async fn expiry_runs_the_kinds_revoke_action() {
        let leases = manager();
        let revoker = flaky(0);
        leases.register_revoker("test", revoker.clone());
        let lease = leases
            .register(new_lease(60, None), 1000)
            .expect("register");
        assert!(lease.lease_id.starts_with("test/creds/role/"));
        assert_eq!(leases.sweep(1059).await, (0, 0));
        assert_eq!(leases.sweep(1060).await, (1, 0));
        assert_eq!(revoker.calls.load(Ordering::SeqCst), 1);
        assert!(matches!(
            leases.lookup(&lease.lease_id),
            Err(LeaseError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn failed_revocations_are_kept_visible_and_retried_with_backoff() {
        let leases = manager();
        let revoker = flaky(2);
        leases.register_revoker("test", revoker.clone());
        let lease = leases.register(new_lease(10, None), 0).expect("register");
        assert_eq!(leases.sweep(10).await, (0, 1));
        let kept = leases.lookup(&lease.lease_id).expect("kept");
        assert_eq!(leases.revocations_pending(), 1);
        let failure = kept.revocation.expect("failure recorded");
        assert_eq!(failure.attempts, 1);
        assert_eq!(failure.last_error, "test target unreachable");
        assert_eq!(failure.next_attempt_unix, 15);
        assert_eq!(leases.sweep(14).await, (0, 0), "not before the backoff");
        assert_eq!(leases.sweep(15).await, (0, 1));
        let failure = leases
            .lookup(&lease.lease_id)
            .expect("kept")
            .revocation
            .expect("failing");
        assert_eq!((failure.attempts, failure.next_attempt_unix), (2, 25));
        assert_eq!(leases.sweep(25).await, (1, 0));
        assert_eq!(leases.revocations_pending(), 0);
        assert_eq!(revoker.calls.load(Ordering::SeqCst), 3);
        assert_eq!(leases.count(), 0);
    }

    #[tokio::test]
    async fn api_revoke_reports_failure_and_force_forgets() {
        let leases = manager();
        leases.register_revoker("test", flaky(usize::MAX));
        let lease = leases.register(new_lease(600, None), 0).expect("register");
        let error = leases
            .revoke(&lease.lease_id, false, 5)
            .await
            .expect_err("fails");
        assert!(error.to_string().contains("retries in 5s"), "{error}");
        assert!(leases.lookup(&lease.lease_id).is_ok());
        leases
            .revoke(&lease.lease_id, true, 6)
            .await
            .expect("forced");
        assert!(leases.lookup(&lease.lease_id).is_err());
        assert_eq!(leases.count(), 0);
    }

    #[tokio::test]
    async fn unknown_kinds_fail_loudly_instead_of_vanishing() {
        let leases = manager();
        let lease = leases.register(new_lease(1, None), 0).expect("register");
        assert_eq!(leases.sweep(1).await, (0, 1));
        let failure = leases
            .lookup(&lease.lease_id)
            .expect("kept")
            .revocation
            .expect("failure");
        assert!(
            failure.last_error.contains("no revoke action"),
            "{failure:?}"
        );
    }

    #[tokio::test]
    async fn renew_lookup_list_and_prefix_revoke() {
        let leases = manager();
        leases.register_revoker("test", flaky(0));
        let first = leases.register(new_lease(100, None), 0).expect("first");
        let mut other = new_lease(100, None);
        other.path_prefix = "test/creds/other".into();
        let second = leases.register(other, 0).expect("second");
        let renewed = leases
            .renew(&first.lease_id, Duration::from_secs(50), 90)
            .await
            .expect("renew");
        assert_eq!(renewed.expire_unix, 140);
        let capped = leases
            .renew(&first.lease_id, Duration::from_secs(10_000), 100)
            .await
            .expect("renew");
        assert_eq!(capped.expire_unix, 300);
        assert_eq!(
            leases.list("test/creds/").expect("list"),
            vec!["other/", "role/"]
        );
        assert_eq!(leases.list("").expect("list"), vec!["test/"]);
        let outcome = leases
            .revoke_prefix("test/creds/role", false, 120)
            .await
            .expect("prefix");
        assert_eq!(outcome.revoked, vec![first.lease_id.clone()]);
        assert!(leases.lookup(&second.lease_id).is_ok());
        assert!(leases.revoke_prefix("/", false, 120).await.is_err());
    }

    #[tokio::test]
    async fn revoking_the_owner_token_makes_its_leases_due() {
        let leases = manager();
        leases.register_revoker("test", flaky(0));
        let owned = leases
            .register(new_lease(600, Some("acc1")), 0)
            .expect("owned");
        let other = leases
            .register(new_lease(600, Some("acc2")), 0)
            .expect("other");
        let store = leases.inner.store.clone();
        let moved = store
            .write(|tx| leases.expire_owned_by_in(tx, &["acc1".to_string()], 10))
            .expect("expire");
        leases.note_due(&moved, 10);
        assert_eq!(leases.sweep(10).await, (1, 0));
        assert!(leases.lookup(&owned.lease_id).is_err());
        assert!(leases.lookup(&other.lease_id).is_ok());
    }

    #[tokio::test]
    async fn leases_survive_a_restart_and_expired_ones_are_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rotor.redb");
        let key = dir.path().join("seal.key");
        let lease_id = {
            let store = Arc::new(
                Store::open(&path, Sealer::create_key_file(&key).expect("key")).expect("open"),
            );
            let leases = LeaseManager::new(store).expect("manager");
            leases
                .register(new_lease(30, None), 100)
                .expect("register")
                .lease_id
        };
        let store =
            Arc::new(Store::open(&path, Sealer::load(&key).expect("load")).expect("reopen"));
        let leases = LeaseManager::new(store).expect("manager after restart");
        let revoker = flaky(0);
        leases.register_revoker("test", revoker.clone());
        assert_eq!(leases.lookup(&lease_id).expect("kept").expire_unix, 130);
        assert_eq!(leases.sweep(500).await, (1, 0));
        assert_eq!(revoker.calls.load(Ordering::SeqCst), 1);
    }
}
