//! Issue 21 item 5, "Packaging an operator expects": the `rotor-agent` Debian package,
//! built by `scripts/build-deb.sh` from this build's binary, installed with `dpkg -i` on a
//! jump host (a harness host on the site's network and the controller's). Checked: its
//! system user, the state directory's owner and mode, the binary, the units and the
//! conffile; then the one documented step after install (`rotor-agent enroll` as the
//! package's user), the agent run as its unit runs it (the unit's `User=`, `EnvironmentFile=`
//! and `ExecStart=`, read from the installed unit: the image has no systemd), a password
//! rotated through it on another host and proved by SSH logins, and `dpkg --purge`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rotor_tests::docker::docker;
use rotor_tests::packages::build_debs;
use rotor_tests::prelude::*;

const UNIT: &str = "/lib/systemd/system/rotor-agent.service";
const STATE_DIR: &str = "/var/lib/rotor-agent";

#[test]
fn the_agent_package_installs_enrolls_and_rotates_as_its_own_user() -> Result<()> {
    if skip_requested("packaging_deb") {
        return Ok(());
    }
    let packages = tempfile::tempdir()?;
    let debs = build_debs(&["rotor-agent"], packages.path())?;
    let deb = debs.first().context("no .deb built")?;

    let site = Site::new("pkg")?;
    let target = site
        .host("web-1")
        .with_parent("mgmt", "Mgmt-initial-1")
        .with_user("app1", "App1-initial-1")
        .start()?;
    let jump = site.host("jump").start()?;
    let rotor = Rotor::start(&[])?;
    jump.container().connect_to(rotor.core())?;

    // Install.
    docker(&[
        "cp",
        &deb.to_string_lossy(),
        &format!("{}:/tmp/rotor-agent.deb", jump.container().name()),
    ])?;
    let installed = jump.exec("dpkg -i /tmp/rotor-agent.deb 2>&1")?;
    assert!(
        installed.contains("rotor-agent enroll"),
        "the install names the one step after it:\n{installed}"
    );

    // What the package made.
    let account = jump.exec("getent passwd rotor-agent")?;
    let fields: Vec<&str> = account.trim().split(':').collect();
    let uid: u32 = fields.get(2).context("uid")?.parse()?;
    assert!(uid < 1000, "a system user: {account}");
    assert_eq!(fields.get(5), Some(&STATE_DIR), "{account}");
    assert_eq!(fields.get(6), Some(&"/usr/sbin/nologin"), "{account}");
    assert_eq!(
        owner_and_mode(&jump, STATE_DIR)?,
        "rotor-agent:rotor-agent 700"
    );
    assert_eq!(
        owner_and_mode(&jump, "/usr/bin/rotor-agent")?,
        "root:root 755"
    );
    assert_eq!(owner_and_mode(&jump, UNIT)?, "root:root 644");
    assert_eq!(
        owner_and_mode(&jump, "/lib/systemd/system/rotor-agent.path")?,
        "root:root 644"
    );
    let conffiles = jump.exec("dpkg-query -W -f='${Conffiles}' rotor-agent")?;
    assert!(
        conffiles.contains("/etc/default/rotor-agent"),
        "{conffiles}"
    );
    let unit = jump.exec(&format!("cat {UNIT}"))?;
    let user = unit_setting(&unit, "User")?;
    assert_eq!(user, "rotor-agent");
    let exec_start = unit_setting(&unit, "ExecStart")?;
    assert!(
        exec_start.starts_with("/usr/bin/rotor-agent run --dir /var/lib/rotor-agent"),
        "{exec_start}"
    );
    let environment_file = unit_setting(&unit, "EnvironmentFile")?;
    let environment_file = environment_file.trim_start_matches('-');

    // The one step after install: enroll, as the package's user (docs/install.md).
    let enrollment = rotor.cli_json(&["write", "agents/enroll", "site=pkg"])?;
    let data = &enrollment["data"];
    let agent_id = data["agent_id"].as_str().context("agent_id")?.to_string();
    let fingerprint = data["ca_fingerprint"].as_str().context("ca_fingerprint")?;
    let token = data["token"].as_str().context("token")?;
    let controller = rotor.controller().agent_address();
    let enrolled = jump.container().exec_program(
        &[
            "runuser",
            "-u",
            "rotor-agent",
            "-w",
            "ROTOR_ENROLL_TOKEN",
            "--",
            "rotor-agent",
            "enroll",
            "--controller",
            &controller,
            "--ca-fingerprint",
            fingerprint,
        ],
        &[("ROTOR_ENROLL_TOKEN", token)],
        None,
        Duration::from_secs(60),
    )?;
    assert!(
        enrolled.success(),
        "enroll as rotor-agent failed: {}",
        enrolled.diagnostics()
    );
    assert_eq!(
        owner_and_mode(&jump, &format!("{STATE_DIR}/agent.key"))?,
        "rotor-agent:rotor-agent 600"
    );

    // Run as the unit does.
    jump.container().exec_detached(
        &format!(
            "set -a; [ -r {environment_file} ] && . {environment_file}; set +a; \
             exec runuser -u {user} -- {exec_start} >>/var/log/rotor-agent.log 2>&1"
        ),
        &[],
    )?;
    rotor
        .wait_agent_connected(&agent_id, Duration::from_secs(30))
        .map_err(|error| {
            let log = jump
                .exec("cat /var/log/rotor-agent.log")
                .unwrap_or_default();
            error.context(format!("agent log:\n{log}"))
        })?;
    let running_as = jump.exec("ps -o user= -C rotor-agent")?;
    assert_eq!(running_as.trim(), "rotor-agent");

    // A password rotated through it, proved by logins.
    rotor.register_os_host(&site, &target, &[])?;
    rotor.write_os_parent("web-1", "mgmt", "Mgmt-initial-1")?;
    rotor.cli(&[
        "write",
        "os/hosts/web-1/accounts/app1",
        "username=app1",
        "password=App1-initial-1",
        "parent_ref=mgmt",
    ])?;
    rotor.cli(&["write", "-f", "os/hosts/web-1/accounts/app1/rotate"])?;
    let creds = rotor.cli_json(&["read", "os/hosts/web-1/accounts/app1/creds"])?;
    let password = creds["data"]["password"]
        .as_str()
        .context("no password in creds")?;
    assert_eq!(creds["data"]["version"], 2, "{creds}");
    assert_password(&target, "app1", password);
    assert_not_password(&target, "app1", "App1-initial-1");

    // Purge: the identity goes with the package.
    jump.exec("pkill -TERM -x rotor-agent; for _ in $(seq 50); do pgrep -x rotor-agent >/dev/null || break; sleep 0.2; done")?;
    jump.exec("dpkg --purge rotor-agent >/dev/null 2>&1")?;
    let left = jump.exec(&format!(
        "ls -d {STATE_DIR} /usr/bin/rotor-agent {UNIT} 2>/dev/null || true"
    ))?;
    assert!(left.trim().is_empty(), "left after purge: {left}");
    Ok(())
}

/// `user:group mode` of `path` on `host`.
fn owner_and_mode(host: &Host, path: &str) -> Result<String> {
    Ok(host
        .exec(&format!("stat -L -c '%U:%G %a' {path}"))?
        .trim()
        .to_string())
}

/// The value of `name=` in a systemd unit's text.
fn unit_setting(unit: &str, name: &str) -> Result<String> {
    let prefix = format!("{name}=");
    let Some(value) = unit
        .lines()
        .find_map(|line| line.trim().strip_prefix(&prefix))
    else {
        bail!("the unit has no {name}=:\n{unit}");
    };
    Ok(value.trim().to_string())
}
