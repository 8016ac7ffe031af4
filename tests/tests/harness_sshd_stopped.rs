//! Scenario: with sshd stopped, `login` fails saying the host is unreachable because
//! the connection was refused, naming host and user; after `start_sshd` it works again.
//! Owns only this scenario; no Rotor processes.

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn stopped_sshd_makes_login_fail_with_connection_refused() -> Result<()> {
    if skip_requested("harness_sshd_stopped") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let host = site.host("web-1").with_user("app1", "app1-pw").start()?;
    assert_password(&host, "app1", "app1-pw");

    host.stop_sshd()?;
    let error = host
        .login("app1", "app1-pw")
        .expect_err("login must fail while sshd is stopped");
    assert_eq!(*error.failure(), LoginFailure::ConnectionRefused, "{error}");
    let message = error.to_string();
    for expected in ["web-1", "`app1`", "unreachable", "connection refused"] {
        assert!(
            message.contains(expected),
            "`{expected}` missing from: {message}"
        );
    }

    host.start_sshd()?;
    assert_password(&host, "app1", "app1-pw");
    Ok(())
}
