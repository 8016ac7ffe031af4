//! Console sessions: which browser holds which token, and the CSRF token of its forms.
//!
//! Owns the session table (in memory: a controller restart signs everyone out), the cookie
//! that names a session and the CSRF check. The token stays on the server; the browser holds
//! only a random session id in an `HttpOnly; Secure; SameSite=Strict` cookie that scripts
//! cannot read. Every POST form carries the session's CSRF token, compared in constant time.
//! Pure apart from the random ids: `now` is always an argument. Must not call the API (the
//! handlers do, with the token a session hands them).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::tokens::ClientToken;

/// The cookie's name. `__Host-` makes browsers insist on `Secure`, `Path=/` and no `Domain`,
/// so no other host or path can plant or read it.
pub const COOKIE_NAME: &str = "__Host-rotor_console";

/// A session unused this long is forgotten (its token is not revoked: it is the operator's).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// At most this many sessions (signed in or not); the least recently used goes first.
const MAX_SESSIONS: usize = 4096;

/// One browser's session.
#[derive(Debug)]
pub struct Session {
    /// The signed-in token (`None`: the sign-in form was shown, nobody signed in yet).
    pub token: Option<ClientToken>,
    /// Every POST form of this session must carry this value.
    pub csrf: String,
    /// A message for the next page (the outcome of an action), shown once.
    pub flash: Option<Flash>,
    last_used: Instant,
}

/// The outcome of an action, shown on the page the browser is sent to next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub message: String,
}

/// What a handler learns of its caller's session.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: String,
    pub csrf: String,
    /// The token as the API client needs it (a copy; redacting `Debug`).
    pub token: Option<ClientTokenCopy>,
    pub flash: Option<Flash>,
}

/// A copy of a session's token for one request.
#[derive(Clone)]
pub struct ClientTokenCopy(String);

impl ClientTokenCopy {
    pub fn to_client_token(&self) -> ClientToken {
        ClientToken::new(self.0.clone())
    }
}

impl std::fmt::Debug for ClientTokenCopy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClientTokenCopy(<redacted>)")
    }
}

impl Drop for ClientTokenCopy {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Every session of this controller process.
#[derive(Debug, Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex: a session id or a CSRF token.
fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

impl SessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a map that is still consistent (every
        // change is one insert or remove).
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session `id` names, if it exists and is not idle past [`IDLE_TIMEOUT`]; marks it
    /// used and takes its flash.
    pub fn touch(&self, id: &str, now: Instant) -> Option<SessionView> {
        let mut sessions = self.lock();
        let expired = sessions
            .get(id)
            .is_some_and(|session| now.saturating_duration_since(session.last_used) > IDLE_TIMEOUT);
        if expired {
            sessions.remove(id);
            return None;
        }
        let session = sessions.get_mut(id)?;
        session.last_used = now;
        Some(SessionView {
            id: id.to_string(),
            csrf: session.csrf.clone(),
            token: session
                .token
                .as_ref()
                .map(|token| ClientTokenCopy(token.expose().to_string())),
            flash: session.flash.take(),
        })
    }

    /// A new session without a token (for the sign-in form), answered with its id.
    pub fn open(&self, now: Instant) -> SessionView {
        self.insert(None, now)
    }

    /// Signs in: a new session id holding `token` (a fresh id, so an id known before sign-in
    /// is worth nothing after it); the old session `previous` is removed.
    pub fn sign_in(&self, previous: &str, token: ClientToken, now: Instant) -> SessionView {
        self.lock().remove(previous);
        self.insert(Some(token), now)
    }

    /// Forgets the session.
    pub fn sign_out(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Leaves `flash` for the session's next page.
    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(session) = self.lock().get_mut(id) {
            session.flash = Some(flash);
        }
    }

    fn insert(&self, token: Option<ClientToken>, now: Instant) -> SessionView {
        let mut sessions = self.lock();
        sessions
            .retain(|_, session| now.saturating_duration_since(session.last_used) <= IDLE_TIMEOUT);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.last_used)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        let id = random_id();
        let csrf = random_id();
        let view = SessionView {
            id: id.clone(),
            csrf: csrf.clone(),
            token: token
                .as_ref()
                .map(|token| ClientTokenCopy(token.expose().to_string())),
            flash: None,
        };
        sessions.insert(
            id,
            Session {
                token,
                csrf,
                flash: None,
                last_used: now,
            },
        );
        view
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Whether a submitted CSRF value is the session's: equal length and bytes, compared in
/// constant time.
pub fn csrf_matches(expected: &str, submitted: &str) -> bool {
    let (expected, submitted) = (expected.as_bytes(), submitted.as_bytes());
    if expected.is_empty() || expected.len() != submitted.len() {
        return false;
    }
    expected
        .iter()
        .zip(submitted)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// The session id in a `Cookie` header value, if the console's cookie is there.
pub fn session_id_from_cookies(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty() && value.len() <= 128)
}

/// The `Set-Cookie` value that gives the browser session `id`.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE_NAME}={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_secure_strict_and_host_bound() {
        let cookie = set_cookie("abc");
        for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(cookie.starts_with("__Host-rotor_console=abc;"), "{cookie}");
        assert!(!cookie.contains("Domain"), "{cookie}");
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn session_id_is_read_from_among_other_cookies() {
        assert_eq!(
            session_id_from_cookies("a=1; __Host-rotor_console=xyz ; b=2"),
            Some("xyz")
        );
        assert_eq!(session_id_from_cookies("rotor_console=xyz"), None);
        assert_eq!(session_id_from_cookies("__Host-rotor_console="), None);
        let long = format!("__Host-rotor_console={}", "a".repeat(200));
        assert_eq!(session_id_from_cookies(&long), None);
    }

    #[test]
    fn csrf_needs_the_exact_value() {
        assert!(csrf_matches("abcd", "abcd"));
        assert!(!csrf_matches("abcd", "abce"));
        assert!(!csrf_matches("abcd", "abc"));
        assert!(!csrf_matches("abcd", ""));
        assert!(!csrf_matches("", ""));
    }

    #[test]
    fn sign_in_replaces_the_session_id_and_sign_out_forgets_it() {
        let store = SessionStore::new();
        let start = Instant::now();
        let anonymous = store.open(start);
        assert!(anonymous.token.is_none());
        let signed = store.sign_in(&anonymous.id, ClientToken::new("tok-1".into()), start);
        assert_ne!(signed.id, anonymous.id, "a fresh id after sign-in");
        assert_ne!(
            signed.csrf, anonymous.csrf,
            "a fresh CSRF token after sign-in"
        );
        assert!(
            store.touch(&anonymous.id, start).is_none(),
            "the old id is gone"
        );
        let view = store.touch(&signed.id, start).expect("signed in");
        assert!(!format!("{view:?}").contains("tok-1"), "no token in Debug");
        assert_eq!(
            view.token.expect("token").to_client_token().expose(),
            "tok-1"
        );
        store.sign_out(&signed.id);
        assert!(store.touch(&signed.id, start).is_none());
    }

    #[test]
    fn idle_sessions_expire_and_use_keeps_them() {
        let store = SessionStore::new();
        let start = Instant::now();
        let session = store.sign_in("none", ClientToken::new("tok".into()), start);
        let later = start + IDLE_TIMEOUT - Duration::from_secs(1);
        assert!(store.touch(&session.id, later).is_some());
        assert!(
            store
                .touch(&session.id, later + IDLE_TIMEOUT + Duration::from_secs(1))
                .is_none()
        );
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_flash_is_shown_once() {
        let store = SessionStore::new();
        let start = Instant::now();
        let session = store.open(start);
        store.set_flash(
            &session.id,
            Flash {
                ok: true,
                message: "done".into(),
            },
        );
        let first = store.touch(&session.id, start).expect("session");
        assert_eq!(first.flash.map(|f| f.message).as_deref(), Some("done"));
        assert!(
            store
                .touch(&session.id, start)
                .expect("session")
                .flash
                .is_none()
        );
    }
}
