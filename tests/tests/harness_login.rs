//! Scenario: a fresh host accepts the password the harness set and refuses a wrong one,
//! and the refusal is reported as a wrong password, not as an unreachable host.
//! Owns only this scenario; no Rotor processes.

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn login_with_the_set_password_works_and_a_wrong_one_is_refused() -> Result<()> {
    if skip_requested("harness_login") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let host = site.host("web-1").with_user("app1", "app1-pw").start()?;

    host.login("app1", "app1-pw")?;
    assert_password(&host, "app1", "app1-pw");

    let error = host
        .login("app1", "not-the-password")
        .expect_err("a wrong password must be refused");
    assert_eq!(*error.failure(), LoginFailure::WrongPassword, "{error}");
    let message = error.to_string();
    assert!(message.contains("wrong password"), "{message}");
    assert!(!message.contains("unreachable"), "{message}");
    assert!(
        message.contains("web-1") && message.contains("`app1`"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-password"),
        "the password leaked: {message}"
    );
    assert_not_password(&host, "app1", "not-the-password");

    let log = host.auth_log()?;
    assert!(
        log.contains("Accepted password for app1"),
        "sshd log:\n{log}"
    );
    assert!(log.contains("Failed password for app1"), "sshd log:\n{log}");
    Ok(())
}
