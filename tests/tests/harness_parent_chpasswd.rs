//! Scenario: a parent account changes a child's password over SSH with
//! `sudo -n /usr/sbin/chpasswd` (line on stdin), proved by logging in with the new
//! password and being refused with the old; the child itself has no sudo.
//! Owns only this scenario; no Rotor processes.

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn parent_changes_a_childs_password_with_sudo_chpasswd() -> Result<()> {
    if skip_requested("harness_parent_chpasswd") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let host = site
        .host("web-1")
        .with_parent("mgmt", "mgmt-pw")
        .with_user("app1", "app1-old")
        .start()?;

    let change = host.ssh(
        "mgmt",
        "mgmt-pw",
        "sudo -n /usr/sbin/chpasswd",
        b"app1:app1-new\n",
    )?;
    assert!(
        change.success(),
        "sudo -n chpasswd as mgmt failed ({}): {}",
        change.describe_exit(),
        change.stderr
    );

    assert_password(&host, "app1", "app1-new");
    assert_not_password(&host, "app1", "app1-old");

    let denied = host.ssh(
        "app1",
        "app1-new",
        "sudo -n /usr/sbin/chpasswd",
        b"mgmt:x\n",
    )?;
    assert!(!denied.success(), "a self-managed user must not have sudo");
    assert!(
        denied.stderr.contains("a password is required"),
        "unexpected sudo refusal: {}",
        denied.stderr
    );
    assert_password(&host, "mgmt", "mgmt-pw");
    Ok(())
}
