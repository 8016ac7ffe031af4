//! Scenario: a host cut from its site network, or paused, cannot be logged in to, and
//! the error names host, user and the cause; healing the network or unpausing restores
//! logins. Owns only this scenario; no Rotor processes.

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn cut_or_paused_host_is_reported_unreachable_and_heals() -> Result<()> {
    if skip_requested("harness_network_cut") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let host = site.host("web-1").with_user("app1", "app1-pw").start()?;
    assert_password(&host, "app1", "app1-pw");

    host.disconnect_from(site.network())?;
    let error = host
        .login("app1", "app1-pw")
        .expect_err("login must fail while the host is cut off");
    assert!(error.failure().is_unreachable(), "{error}");
    let message = error.to_string();
    for expected in ["web-1", "`app1`", "unreachable"] {
        assert!(
            message.contains(expected),
            "`{expected}` missing from: {message}"
        );
    }
    host.connect_to(site.network())?;
    assert_password(&host, "app1", "app1-pw");

    host.pause()?;
    let error = host
        .login("app1", "app1-pw")
        .expect_err("login must fail while the host is paused");
    host.unpause()?;
    assert_eq!(*error.failure(), LoginFailure::TimedOut, "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert_password(&host, "app1", "app1-pw");
    Ok(())
}
