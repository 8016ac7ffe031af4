//! Assertions that prove a password by logging in over SSH, never by asking Rotor.
//! Panic messages name the host, the user and the reason; they never contain a password.

use crate::host::Host;

/// Panics unless `user` can log in to `host` with `password`.
#[track_caller]
pub fn assert_password(host: &Host, user: &str, password: &str) {
    if let Err(error) = host.login(user, password) {
        panic!("assert_password: expected the password to work, but {error}");
    }
}

/// Panics unless sshd on `host` is reached and refuses `password` for `user`. A host
/// that cannot be reached proves nothing, so that panics too (saying so).
#[track_caller]
pub fn assert_not_password(host: &Host, user: &str, password: &str) {
    match host.login(user, password) {
        Err(error) if error.failure().is_wrong_password() => {}
        Ok(()) => panic!(
            "assert_not_password: host {} of site {} accepted that password for `{user}`; \
             it should have been refused",
            host.name(),
            host.site().name()
        ),
        Err(error) => {
            panic!("assert_not_password: cannot show that the password is refused, because {error}")
        }
    }
}
