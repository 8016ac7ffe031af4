//! OS engine, end to end through an agent in the host's site: parent-managed (sudo
//! chpasswd), self-managed (passwd in a PTY), batching of one parent's children into one SSH
//! session, versions, reset and restore. Every new password is proved by logging in with
//! it from the site's network, and every old one by being refused.

use anyhow::{Context, Result};
use rotor_tests::prelude::*;

fn creds(rotor: &Rotor, host: &Host, account: &str) -> Result<(String, u64)> {
    let answer = rotor.cli_json(&[
        "read",
        &format!("os/hosts/{}/accounts/{account}/creds", host.name()),
    ])?;
    let password = answer["data"]["password"]
        .as_str()
        .context("no password in creds")?
        .to_string();
    let version = answer["data"]["version"]
        .as_u64()
        .context("no version in creds")?;
    Ok((password, version))
}

fn accepted_logins(host: &Host, user: &str) -> Result<usize> {
    let log = host.auth_log()?;
    Ok(log
        .lines()
        .filter(|line| line.contains("Accepted ") && line.contains(&format!(" for {user} from ")))
        .count())
}

#[test]
fn parent_managed_and_self_managed_rotation() -> Result<()> {
    if skip_requested("parent_managed_and_self_managed_rotation") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let host = site
        .host("web-1")
        .with_parent("mgmt", "Mgmt-initial-1")
        .with_user("app1", "App1-initial-1")
        .with_user("svc1", "Svc1-initial-1")
        .start()?;
    let rotor = Rotor::start(&[&site])?;
    rotor.register_os_host(&site, &host, &[])?;
    let accounts = "os/hosts/web-1/accounts";
    rotor.cli(&[
        "write",
        &format!("{accounts}/mgmt"),
        "username=mgmt",
        "password=Mgmt-initial-1",
    ])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/app1"),
        "username=app1",
        "password=App1-initial-1",
        "parent_ref=mgmt",
    ])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/svc1"),
        "username=svc1",
        "password=Svc1-initial-1",
    ])?;

    // Parent-managed: sudo chpasswd through mgmt.
    let rotated = rotor.cli_json(&["write", "-f", &format!("{accounts}/app1/rotate")])?;
    assert_eq!(rotated["data"]["version"], 2, "{rotated}");
    let (app1_password, version) = creds(&rotor, &host, "app1")?;
    assert_eq!(version, 2);
    assert_password(&host, "app1", &app1_password);
    assert_not_password(&host, "app1", "App1-initial-1");

    // Self-managed: passwd in a PTY, logged in as the account.
    rotor.cli(&["write", "-f", &format!("{accounts}/svc1/rotate")])?;
    let (svc1_password, version) = creds(&rotor, &host, "svc1")?;
    assert_eq!(version, 2);
    assert_password(&host, "svc1", &svc1_password);
    assert_not_password(&host, "svc1", "Svc1-initial-1");

    // The parent itself (self-managed) rotates too, and can still rotate its child after.
    rotor.cli(&["write", "-f", &format!("{accounts}/mgmt/rotate")])?;
    let (mgmt_password, _) = creds(&rotor, &host, "mgmt")?;
    assert_password(&host, "mgmt", &mgmt_password);
    rotor.cli(&["write", "-f", &format!("{accounts}/app1/rotate")])?;
    let (app1_third, version) = creds(&rotor, &host, "app1")?;
    assert_eq!(version, 3);
    assert_password(&host, "app1", &app1_third);
    assert_not_password(&host, "app1", &app1_password);

    // Versions: every one kept, with created and expired times.
    let versions = rotor.cli_json(&["read", &format!("{accounts}/app1/versions")])?;
    assert_eq!(versions["data"]["current_version"], 3);
    let map = versions["data"]["versions"]
        .as_object()
        .context("versions map")?;
    assert_eq!(map.len(), 3);
    assert_ne!(map["1"]["expired_time"], "0001-01-01T00:00:00Z");
    assert_eq!(map["3"]["expired_time"], "0001-01-01T00:00:00Z");

    // Reset and restore change what the controller knows, never the host.
    rotor.cli(&[
        "write",
        &format!("{accounts}/app1/reset"),
        "password=Not-on-host-1",
    ])?;
    assert_eq!(
        creds(&rotor, &host, "app1")?,
        ("Not-on-host-1".to_string(), 4)
    );
    assert_password(&host, "app1", &app1_third);
    rotor.cli(&[
        "write",
        "-f",
        &format!("{accounts}/app1/versions/3/restore"),
    ])?;
    assert_eq!(creds(&rotor, &host, "app1")?, (app1_third.clone(), 5));
    assert_password(&host, "app1", &app1_third);

    // The account's read never shows a password.
    let read = rotor.cli_json(&["read", &format!("{accounts}/app1")])?;
    assert!(read["data"].get("password").is_none(), "{read}");
    assert_eq!(read["data"]["status"], "in_sync");
    Ok(())
}

#[test]
fn ten_children_of_one_parent_rotate_over_one_ssh_session() -> Result<()> {
    if skip_requested("ten_children_of_one_parent_rotate_over_one_ssh_session") {
        return Ok(());
    }
    let site = Site::new("b")?;
    let mut builder = site.host("db-1").with_parent("mgmt", "Mgmt-initial-1");
    for index in 1..=10 {
        builder = builder.with_user(&format!("app{index}"), &format!("App{index}-initial-1"));
    }
    let host = builder.start()?;
    let rotor = Rotor::start(&[&site])?;
    rotor.register_os_host(&site, &host, &[])?;
    let accounts = "os/hosts/db-1/accounts";
    rotor.cli(&[
        "write",
        &format!("{accounts}/mgmt"),
        "username=mgmt",
        "password=Mgmt-initial-1",
    ])?;
    for index in 1..=10 {
        rotor.cli(&[
            "write",
            &format!("{accounts}/app{index}"),
            &format!("username=app{index}"),
            &format!("password=App{index}-initial-1"),
            "parent_ref=mgmt",
            "verify_connection=false",
        ])?;
    }
    let mgmt_sessions_before = accepted_logins(&host, "mgmt")?;
    let answer = rotor.cli_json(&["write", "-f", "os/hosts/db-1/rotate"])?;
    assert_eq!(answer["data"]["failed"], 0, "{answer}");
    // One session for the ten children, one for mgmt's own passwd rotation.
    let mgmt_sessions = accepted_logins(&host, "mgmt")? - mgmt_sessions_before;
    assert_eq!(mgmt_sessions, 2, "auth log:\n{}", host.auth_log()?);
    for index in 1..=10 {
        let user = format!("app{index}");
        let (password, version) = creds(&rotor, &host, &user)?;
        assert_eq!(version, 2, "{user}");
        assert_password(&host, &user, &password);
        assert_not_password(&host, &user, &format!("App{index}-initial-1"));
    }

    // `accounts` narrows a host rotation to the named accounts; the rest keep their version.
    let answer = rotor.cli_json(&["write", "-f", "os/hosts/db-1/rotate", "accounts=app1,app2"])?;
    assert_eq!(answer["data"]["failed"], 0, "{answer}");
    for index in 1..=10 {
        let user = format!("app{index}");
        let (password, version) = creds(&rotor, &host, &user)?;
        assert_eq!(version, if index <= 2 { 3 } else { 2 }, "{user}: {answer}");
        assert_password(&host, &user, &password);
    }
    let refused = rotor.controller().cli_output(&[
        "write",
        "os/hosts/db-1/rotate",
        "accounts=app1,nobody",
    ])?;
    assert!(!refused.success(), "an unknown account must be refused");
    assert!(
        refused
            .stderr
            .contains("nobody is not an account of host db-1"),
        "{}",
        refused.stderr
    );
    let (_, version) = creds(&rotor, &host, "app1")?;
    assert_eq!(version, 3, "a refused request must rotate nothing");
    Ok(())
}

#[test]
fn certain_failures_change_nothing_and_keep_the_working_password() -> Result<()> {
    if skip_requested("certain_failures_change_nothing_and_keep_the_working_password") {
        return Ok(());
    }
    let site = Site::new("c")?;
    let host = site
        .host("app-1")
        .with_parent("mgmt", "Mgmt-initial-1")
        .with_user("app1", "App1-initial-1")
        .with_user("nosudo", "Nosudo-initial-1")
        .with_user("app2", "App2-initial-1")
        .start()?;
    let rotor = Rotor::start(&[&site])?;
    let accounts = "os/hosts/app-1/accounts";

    // No pinned key and TOFU off: creating an account is refused with the fix.
    rotor.cli(&[
        "write",
        "os/hosts/app-1",
        &format!("address={}", host.address()?),
        &format!("site={}", site.name()),
    ])?;
    let refused = rotor.controller().cli_output(&[
        "write",
        &format!("{accounts}/mgmt"),
        "username=mgmt",
        "password=Mgmt-initial-1",
    ])?;
    assert!(!refused.success());
    assert!(
        refused.stderr.contains("ssh_host_key_trust_on_first_use"),
        "{}",
        refused.stderr
    );

    // TOFU on: the first contact records the key.
    rotor.cli(&["write", "os/config", "ssh_host_key_trust_on_first_use=true"])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/mgmt"),
        "username=mgmt",
        "password=Mgmt-initial-1",
    ])?;
    let read = rotor.cli_json(&["read", "os/hosts/app-1"])?;
    let trusted = read["data"]["trusted_host_key"]
        .as_str()
        .context("no trusted key recorded")?;
    assert!(trusted.starts_with("ssh-"), "{read}");
    rotor.cli(&[
        "write",
        &format!("{accounts}/app1"),
        "username=app1",
        "password=App1-initial-1",
        "parent_ref=mgmt",
    ])?;

    // A wrong password at creation is refused (verify_connection defaults to true).
    let refused = rotor.controller().cli_output(&[
        "write",
        &format!("{accounts}/app2"),
        "username=app2",
        "password=wrong",
        "parent_ref=mgmt",
    ])?;
    assert!(!refused.success());
    assert!(
        refused.stderr.contains("cannot log in as app2"),
        "{}",
        refused.stderr
    );

    // A parent without a sudo rule: clear error, nothing changed, nothing lost.
    rotor.cli(&[
        "write",
        &format!("{accounts}/nosudo"),
        "username=nosudo",
        "password=Nosudo-initial-1",
    ])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/app2"),
        "username=app2",
        "password=App2-initial-1",
        "parent_ref=nosudo",
    ])?;
    let failed =
        rotor
            .controller()
            .cli_output(&["write", "-f", &format!("{accounts}/app2/rotate")])?;
    assert!(!failed.success());
    assert!(failed.stderr.contains("sudo"), "{}", failed.stderr);
    assert_eq!(
        creds(&rotor, &host, "app2")?,
        ("App2-initial-1".to_string(), 1)
    );
    assert_password(&host, "app2", "App2-initial-1");

    // A wrong parent password (changed behind Rotor's back): clear error, child untouched.
    host.set_password("mgmt", "Changed-outside-1")?;
    let failed =
        rotor
            .controller()
            .cli_output(&["write", "-f", &format!("{accounts}/app1/rotate")])?;
    assert!(!failed.success());
    assert!(
        failed.stderr.contains("authentication as mgmt failed"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        creds(&rotor, &host, "app1")?,
        ("App1-initial-1".to_string(), 1)
    );
    assert_password(&host, "app1", "App1-initial-1");

    // verify finds the out-of-band change and says so loudly; reset repairs Rotor's knowledge.
    let verify = rotor.cli_json(&["write", "-f", &format!("{accounts}/mgmt/verify")])?;
    assert_eq!(verify["data"]["in_sync"], false, "{verify}");
    let read = rotor.cli_json(&["read", &format!("{accounts}/mgmt")])?;
    assert_eq!(read["data"]["status"], "out_of_sync", "{read}");
    rotor.cli(&[
        "write",
        &format!("{accounts}/mgmt/reset"),
        "password=Changed-outside-1",
    ])?;
    let verify = rotor.cli_json(&["write", "-f", &format!("{accounts}/mgmt/verify")])?;
    assert_eq!(verify["data"]["in_sync"], true, "{verify}");

    // The host's key changes (rebuilt): rotation aborts naming both fingerprints; nothing changes.
    let old_fingerprint = host.host_key_fingerprint()?;
    host.regenerate_host_keys()?;
    let new_fingerprint = host.host_key_fingerprint()?;
    let failed =
        rotor
            .controller()
            .cli_output(&["write", "-f", &format!("{accounts}/app1/rotate")])?;
    assert!(!failed.success());
    let message = failed.stderr;
    assert!(message.contains("host key mismatch"), "{message}");
    assert!(
        message.contains(&new_fingerprint),
        "offered fingerprint missing: {message}"
    );
    assert_ne!(old_fingerprint, new_fingerprint);
    assert_eq!(creds(&rotor, &host, "app1")?.1, 1);
    assert_password(&host, "app1", "App1-initial-1");

    // Bad input is a 400 naming the field.
    for (args, needle) in [
        (vec!["write", "os/hosts/app-1", "port=70000"], "port"),
        (
            vec![
                "write",
                &format!("{accounts}/x1"),
                "username=Bad User",
                "password=p",
            ],
            "username",
        ),
        (
            vec![
                "write",
                &format!("{accounts}/x2"),
                "username=x2",
                "password=p",
                "parent_ref=ghost",
            ],
            "parent_ref",
        ),
        (vec!["delete", "os/hosts/app-1"], "still has accounts"),
    ] {
        let output = rotor.controller().cli_output(&args)?;
        assert!(!output.success(), "{args:?} succeeded");
        assert!(
            output.stderr.contains(needle),
            "{args:?}: {}",
            output.stderr
        );
    }
    Ok(())
}

#[test]
fn passwd_refusing_the_new_password_changes_nothing_and_a_retry_succeeds() -> Result<()> {
    if skip_requested("passwd_refusing_the_new_password_changes_nothing_and_a_retry_succeeds") {
        return Ok(());
    }
    let site = Site::new("pw")?;
    let host = site
        .host("pw-1")
        .with_user("svc1", "Svc1-initial-1")
        .start()?;
    // The host demands 40 characters; Rotor's default policy makes 24.
    host.exec("sed -i 's/pam_unix.so obscure/pam_unix.so obscure minlen=40/' /etc/pam.d/common-password && grep -q minlen=40 /etc/pam.d/common-password")?;
    let rotor = Rotor::start(&[&site])?;
    rotor.register_os_host(&site, &host, &[])?;
    let account = "os/hosts/pw-1/accounts/svc1";
    rotor.cli(&["write", account, "username=svc1", "password=Svc1-initial-1"])?;
    let refused = rotor
        .controller()
        .cli_output(&["write", "-f", &format!("{account}/rotate")])?;
    assert!(!refused.success());
    assert!(
        refused.stderr.contains("refused the new password"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        creds(&rotor, &host, "svc1")?,
        ("Svc1-initial-1".to_string(), 1)
    );
    assert_password(&host, "svc1", "Svc1-initial-1");
    let read = rotor.cli_json(&["read", account])?;
    assert_eq!(read["data"]["status"], "in_sync", "{read}");
    assert!(
        read["data"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("new password")),
        "{read}"
    );

    // Meet the host's rule and retry: a fresh candidate, accepted.
    rotor.cli(&["write", "os/config", "password_length=48"])?;
    rotor.cli(&["write", "-f", &format!("{account}/rotate")])?;
    let (password, version) = creds(&rotor, &host, "svc1")?;
    assert_eq!((password.len(), version), (48, 2));
    assert_password(&host, "svc1", &password);
    assert_not_password(&host, "svc1", "Svc1-initial-1");
    Ok(())
}
