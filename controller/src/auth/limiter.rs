//! Brute-force limiting of logins: failed attempts counted per (identity, client address)
//! and per client address, each key locked for a while once it passes its allowance.
//!
//! The lock grows (doubling from `first_lockout`) with each further failure but never past
//! `max_lockout`, and a key's failures are forgotten `forget_after` its last one, so nobody is
//! locked out for good. A real user is never locked out by somebody else's failures from
//! another address: the identity is counted together with the address it was tried from.
//! [`Limiter`] is pure (the caller passes `now`); [`LoginLimiter`] is the shared, locked
//! handle the login handlers use. Must not know what an identity is (a role ID, a user name).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How generous the limiter is.
#[derive(Debug, Clone, Copy)]
pub struct LimiterSettings {
    /// Failures of one identity from one address before it is locked.
    pub identity_failures_allowed: u32,
    /// Failures from one address (any identity) before the address is locked.
    pub address_failures_allowed: u32,
    /// The first lock's length; each failure past the allowance doubles it.
    pub first_lockout: Duration,
    /// No lock is longer than this.
    pub max_lockout: Duration,
    /// A key's failures are forgotten this long after its last one.
    pub forget_after: Duration,
    /// Above this many keys, forgotten ones are dropped (memory bound under a flood).
    pub max_keys: usize,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        Self {
            identity_failures_allowed: 5,
            address_failures_allowed: 20,
            first_lockout: Duration::from_secs(2),
            max_lockout: Duration::from_secs(300),
            forget_after: Duration::from_secs(900),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// A refused attempt: which key is locked and for how long still.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub what: String,
    /// The address itself is locked (whatever identity it tries), not one identity from it.
    pub by_address: bool,
    pub retry_after: Duration,
}

impl Locked {
    /// Whole seconds to wait, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs.max(1)
        }
    }
}

/// The pure limiter.
#[derive(Debug)]
pub struct Limiter {
    settings: LimiterSettings,
    keys: HashMap<String, Failures>,
}

fn address_key(address: Option<IpAddr>) -> String {
    match address {
        Some(address) => format!("address {address}"),
        None => "address unknown".into(),
    }
}

fn identity_key(identity: &str, address: Option<IpAddr>) -> String {
    format!("{identity} from {}", address_key(address))
}

impl Limiter {
    pub fn new(settings: LimiterSettings) -> Self {
        Self {
            settings,
            keys: HashMap::new(),
        }
    }

    fn locked(&self, key: &str, now: Instant) -> Option<Duration> {
        let failures = self.keys.get(key)?;
        failures
            .locked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Refuses an attempt of `identity` from `address` while either key is locked.
    pub fn check(
        &self,
        identity: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Locked> {
        let identity_key = identity_key(identity, address);
        if let Some(left) = self.locked(&identity_key, now) {
            return Err(Locked {
                what: identity_key,
                by_address: false,
                retry_after: left,
            });
        }
        let address_key = address_key(address);
        if let Some(left) = self.locked(&address_key, now) {
            return Err(Locked {
                what: address_key,
                by_address: true,
                retry_after: left,
            });
        }
        Ok(())
    }

    fn count(&mut self, key: String, allowed: u32, now: Instant) {
        let settings = self.settings;
        let failures = self.keys.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.saturating_duration_since(failures.last) >= settings.forget_after {
            failures.count = 0;
            failures.locked_until = None;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        if failures.count >= allowed {
            let doublings = (failures.count - allowed).min(20);
            let lockout = settings
                .first_lockout
                .saturating_mul(1u32 << doublings)
                .min(settings.max_lockout);
            failures.locked_until = Some(now + lockout);
        }
    }

    /// Counts a failed attempt against both keys.
    pub fn record_failure(&mut self, identity: &str, address: Option<IpAddr>, now: Instant) {
        if self.keys.len() >= self.settings.max_keys {
            self.make_room(now);
        }
        let allowed = self.settings.identity_failures_allowed;
        self.count(identity_key(identity, address), allowed, now);
        let allowed = self.settings.address_failures_allowed;
        self.count(address_key(address), allowed, now);
    }

    /// A successful login clears the identity's count from that address (the address's own
    /// count stays: one valid account must not buy unlimited guesses at others).
    pub fn record_success(&mut self, identity: &str, address: Option<IpAddr>) {
        self.keys.remove(&identity_key(identity, address));
    }

    /// Keeps memory bounded: forgotten keys go first, then (a flood of fresh keys) every key
    /// not locked now, and as a last resort everything: bounded memory wins over remembering.
    fn make_room(&mut self, now: Instant) {
        let forget_after = self.settings.forget_after;
        let locked = |failures: &Failures| failures.locked_until.is_some_and(|until| until > now);
        self.keys.retain(|_, failures| {
            now.saturating_duration_since(failures.last) < forget_after || locked(failures)
        });
        if self.keys.len() >= self.settings.max_keys {
            self.keys.retain(|_, failures| locked(failures));
        }
        if self.keys.len() >= self.settings.max_keys {
            tracing::warn!(
                keys = self.keys.len(),
                "login limiter full of locked keys: forgetting them all"
            );
            self.keys.clear();
        }
    }

    /// Keys currently remembered (for tests and the memory bound).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The limiter every login handler shares. A std mutex: held for a map update, never across
/// an await or a password hash.
#[derive(Debug)]
pub struct LoginLimiter {
    inner: Mutex<Limiter>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(LimiterSettings::default())
    }
}

impl LoginLimiter {
    pub fn new(settings: LimiterSettings) -> Self {
        Self {
            inner: Mutex::new(Limiter::new(settings)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn check(&self, identity: &str, address: Option<IpAddr>) -> Result<(), Locked> {
        self.lock().check(identity, address, Instant::now())
    }

    pub fn record_failure(&self, identity: &str, address: Option<IpAddr>) {
        self.lock()
            .record_failure(identity, address, Instant::now());
    }

    pub fn record_success(&self, identity: &str, address: Option<IpAddr>) {
        self.lock().record_success(identity, address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    fn settings() -> LimiterSettings {
        LimiterSettings {
            identity_failures_allowed: 3,
            address_failures_allowed: 5,
            first_lockout: Duration::from_secs(2),
            max_lockout: Duration::from_secs(60),
            forget_after: Duration::from_secs(600),
            max_keys: 1000,
        }
    }

    #[test]
    fn an_identity_is_locked_after_its_allowance_and_the_lock_doubles_up_to_the_cap() {
        let start = Instant::now();
        let mut limiter = Limiter::new(settings());
        let attacker = ip("192.0.2.66");
        for _ in 0..2 {
            limiter.record_failure("userpass/alice", attacker, start);
            assert!(limiter.check("userpass/alice", attacker, start).is_ok());
        }
        limiter.record_failure("userpass/alice", attacker, start);
        let locked = limiter
            .check("userpass/alice", attacker, start)
            .expect_err("locked");
        assert_eq!(locked.retry_after, Duration::from_secs(2));
        assert_eq!(locked.retry_after_secs(), 2);
        assert!(locked.what.contains("userpass/alice"), "{}", locked.what);
        // Once the lock ends, one more failure locks for twice as long.
        let later = start + Duration::from_secs(2);
        assert!(limiter.check("userpass/alice", attacker, later).is_ok());
        limiter.record_failure("userpass/alice", attacker, later);
        let locked = limiter
            .check("userpass/alice", attacker, later)
            .expect_err("locked");
        assert_eq!(locked.retry_after, Duration::from_secs(4));
        // Many more failures never lock for longer than the cap.
        let mut now = later;
        for _ in 0..30 {
            now += Duration::from_secs(61);
            limiter.record_failure("userpass/alice", attacker, now);
        }
        let locked = limiter
            .check("userpass/alice", attacker, now)
            .expect_err("locked");
        assert_eq!(locked.retry_after, Duration::from_secs(60));
        // And the lock ends: the user can try again within the cap.
        assert!(
            limiter
                .check("userpass/alice", attacker, now + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn someone_elses_failures_do_not_lock_a_user_out_from_their_own_address() {
        let now = Instant::now();
        let mut limiter = Limiter::new(settings());
        for _ in 0..10 {
            limiter.record_failure("userpass/alice", ip("192.0.2.66"), now);
        }
        assert!(
            limiter
                .check("userpass/alice", ip("192.0.2.66"), now)
                .is_err()
        );
        assert!(limiter.check("userpass/alice", ip("10.0.0.5"), now).is_ok());
    }

    #[test]
    fn an_address_guessing_many_identities_is_locked() {
        let now = Instant::now();
        let mut limiter = Limiter::new(settings());
        let attacker = ip("192.0.2.66");
        for user in ["a", "b", "c", "d", "e"] {
            limiter.record_failure(user, attacker, now);
        }
        let locked = limiter.check("f", attacker, now).expect_err("address");
        assert_eq!(locked.what, "address 192.0.2.66");
        assert!(limiter.check("f", ip("192.0.2.67"), now).is_ok());
    }

    #[test]
    fn failures_are_forgotten_and_success_clears_the_identity() {
        let start = Instant::now();
        let mut limiter = Limiter::new(settings());
        let client = ip("10.0.0.5");
        limiter.record_failure("role-1", client, start);
        limiter.record_failure("role-1", client, start);
        limiter.record_success("role-1", client);
        limiter.record_failure("role-1", client, start);
        limiter.record_failure("role-1", client, start);
        assert!(
            limiter.check("role-1", client, start).is_ok(),
            "success reset"
        );
        // Ten minutes later the two failures are forgotten: two more do not lock.
        let later = start + Duration::from_secs(600);
        limiter.record_failure("role-1", client, later);
        limiter.record_failure("role-1", client, later);
        assert!(limiter.check("role-1", client, later).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_identities() {
        let start = Instant::now();
        let mut limiter = Limiter::new(LimiterSettings {
            max_keys: 10,
            ..settings()
        });
        for index in 0..100 {
            let now = start + Duration::from_secs(601 * index);
            limiter.record_failure(&format!("user-{index}"), ip("192.0.2.1"), now);
        }
        assert!(limiter.len() <= 12, "{}", limiter.len());
        // A flood of fresh identities from many addresses within one instant stays bounded too.
        for index in 0..1000u32 {
            let address = std::net::Ipv4Addr::from(0x0A00_0000 + index);
            limiter.record_failure(&format!("flood-{index}"), Some(address.into()), start);
        }
        assert!(limiter.len() <= 12, "{}", limiter.len());
        assert!(!limiter.is_empty());
    }
}
