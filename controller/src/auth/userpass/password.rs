//! Password hashing for userpass: argon2id with the argon2 crate's defaults (19 MiB, 2
//! passes, 1 lane: OWASP's recommendation), a 16-byte salt from the CSPRNG, stored as a PHC
//! string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so the parameters travel with the
//! hash and can be raised later without breaking stored ones.
//!
//! Pure CPU work (tens of milliseconds a call): callers run it off the async workers
//! (`spawn_blocking`). Must not see a password anywhere but its argument.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Hashes `password`; answers the PHC string to store.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("hashing the password failed: {error}"))
}

/// Whether `password` matches the stored PHC string. A malformed stored hash matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// A hash no password is known for: a login for an unknown user verifies against it, so it
/// costs what a known user's login costs and its timing does not say which users exist.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    let mut random = [0u8; 24];
    rand::fill(&mut random[..]);
    hash(&hex::encode(random)).unwrap_or_default()
});

/// Spends one verification's work on the decoy hash; always false.
pub fn verify_decoy(password: &str) -> bool {
    verify(password, &DECOY);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify_only_their_password() {
        let first = hash("correct horse").expect("hash");
        let second = hash("correct horse").expect("hash");
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!first.contains("correct horse"));
        assert!(verify("correct horse", &first));
        assert!(verify("correct horse", &second));
        assert!(!verify("correct horse!", &first));
        assert!(!verify("", &first));
        assert!(!verify("correct horse", "not a phc string"));
        assert!(!verify_decoy("anything"));
    }
}
