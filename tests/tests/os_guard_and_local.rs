//! OS engine, end to end: least privilege with deploy/'s chpasswd guard (an allow-listed
//! account rotates; a batch naming root is refused whole and root's password stays), and
//! `connection=local` rotation by an agent installed on the target host itself.

use std::time::Duration;

use anyhow::{Context, Result};
use rotor_tests::docker::docker;
use rotor_tests::prelude::*;
use rotor_tests::rotor::binaries::locate_binaries;

fn creds_password(rotor: &Rotor, host: &str, account: &str) -> Result<String> {
    let answer = rotor.cli_json(&["read", &format!("os/hosts/{host}/accounts/{account}/creds")])?;
    Ok(answer["data"]["password"]
        .as_str()
        .context("creds without password")?
        .to_string())
}

fn shadow_hash(host: &Host, user: &str) -> Result<String> {
    Ok(host
        .exec(&format!("getent shadow {user} | cut -d: -f2"))?
        .trim()
        .to_string())
}

#[test]
fn guard_passes_allow_listed_accounts_and_refuses_root() -> Result<()> {
    if skip_requested("guard_passes_allow_listed_accounts_and_refuses_root") {
        return Ok(());
    }
    let site = Site::new("grd")?;
    let host = site
        .host("grd-1")
        .with_parent("mgmt", "Mgmt-initial-1")
        .with_user("app1", "App1-initial-1")
        .start()?;
    host.set_password("root", "Root-initial-1")?;
    let guard = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/rotor-chpasswd-guard"
    );
    docker(&[
        "cp",
        guard,
        &format!(
            "{}:/usr/local/sbin/rotor-chpasswd-guard",
            host.container().name()
        ),
    ])?;
    host.exec(
        "chown root:root /usr/local/sbin/rotor-chpasswd-guard && chmod 755 /usr/local/sbin/rotor-chpasswd-guard \
         && mkdir -p /etc/rotor && printf 'app1\\n' > /etc/rotor/chpasswd-allow \
         && echo 'mgmt ALL=(root) NOPASSWD: /usr/local/sbin/rotor-chpasswd-guard' > /etc/sudoers.d/rotor-guard \
         && chmod 440 /etc/sudoers.d/rotor-guard && visudo -cf /etc/sudoers.d/rotor-guard",
    )?;
    let rotor = Rotor::start(&[&site])?;
    rotor.cli(&[
        "write",
        "os/hosts/grd-1",
        &format!("address={}", host.address()?),
        &format!("site={}", site.name()),
        &format!("ssh_host_key={}", host.host_public_key("ed25519")?),
        "chpasswd_command=/usr/local/sbin/rotor-chpasswd-guard",
    ])?;
    let accounts = "os/hosts/grd-1/accounts";
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
        &format!("{accounts}/root"),
        "username=root",
        "password=Root-initial-1",
        "parent_ref=mgmt",
        "verify_connection=false",
    ])?;

    rotor.cli(&["write", "-f", &format!("{accounts}/app1/rotate")])?;
    let app1 = creds_password(&rotor, "grd-1", "app1")?;
    assert_password(&host, "app1", &app1);
    assert_not_password(&host, "app1", "App1-initial-1");

    let root_hash = shadow_hash(&host, "root")?;
    let refused =
        rotor
            .controller()
            .cli_output(&["write", "-f", &format!("{accounts}/root/rotate")])?;
    assert!(
        !refused.success(),
        "rotating root through the guard must fail"
    );
    assert!(
        refused.stderr.contains("not on the allow-list"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        shadow_hash(&host, "root")?,
        root_hash,
        "root's password changed on the host"
    );
    assert_eq!(creds_password(&rotor, "grd-1", "root")?, "Root-initial-1");
    Ok(())
}

#[test]
fn agent_on_the_target_rotates_locally() -> Result<()> {
    if skip_requested("agent_on_the_target_rotates_locally") {
        return Ok(());
    }
    let site = Site::new("loc")?;
    let host = site
        .host("loc-1")
        .with_user("app1", "App1-initial-1")
        .with_user("app2", "App2-initial-1")
        .start()?;
    let rotor = Rotor::start(&[&site])?;

    // Install rotor-agent on the target and enroll it; it reaches the controller over core.
    host.container().connect_to(rotor.core())?;
    let binaries = locate_binaries()?;
    let agent_binary = binaries.agent.to_string_lossy().to_string();
    docker(&[
        "cp",
        &agent_binary,
        &format!("{}:/usr/local/bin/rotor-agent", host.container().name()),
    ])?;
    let enrollment = rotor.cli_json(&["write", "agents/enroll", "site=loc-local"])?;
    let data = &enrollment["data"];
    let agent_id = data["agent_id"].as_str().context("agent_id")?.to_string();
    let fingerprint = data["ca_fingerprint"].as_str().context("ca_fingerprint")?;
    let token = data["token"].as_str().context("token")?;
    let controller = rotor.controller().agent_address();
    let enrolled = host.container().exec_program(
        &[
            "rotor-agent",
            "enroll",
            "--controller",
            &controller,
            "--ca-fingerprint",
            fingerprint,
            "--dir",
            "/var/lib/rotor-agent",
        ],
        &[("ROTOR_ENROLL_TOKEN", token)],
        None,
        Duration::from_secs(60),
    )?;
    assert!(
        enrolled.success(),
        "enroll on the host failed: {}",
        enrolled.stderr
    );
    host.container().exec_detached(
        "exec rotor-agent run --dir /var/lib/rotor-agent >>/var/log/rotor-agent.log 2>&1",
        &[],
    )?;
    rotor.wait_agent_connected(&agent_id, Duration::from_secs(30))?;

    rotor.cli(&[
        "write",
        "os/hosts/loc-1",
        "connection=local",
        &format!("agent={agent_id}"),
        "address=localhost",
    ])?;
    let accounts = "os/hosts/loc-1/accounts";
    rotor.cli(&[
        "write",
        &format!("{accounts}/app1"),
        "username=app1",
        "password=App1-initial-1",
    ])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/app2"),
        "username=app2",
        "password=App2-initial-1",
    ])?;
    rotor.cli(&["write", "-f", &format!("{accounts}/app1/rotate")])?;
    let app1 = creds_password(&rotor, "loc-1", "app1")?;
    assert_password(&host, "app1", &app1);
    assert_not_password(&host, "app1", "App1-initial-1");
    // The whole host at once: both accounts, one local chpasswd each batch.
    let answer = rotor.cli_json(&["write", "-f", "os/hosts/loc-1/rotate"])?;
    assert_eq!(answer["data"]["failed"], 0, "{answer}");
    for user in ["app1", "app2"] {
        let password = creds_password(&rotor, "loc-1", user)?;
        assert_password(&host, user, &password);
    }
    assert_not_password(&host, "app1", &app1);
    Ok(())
}
