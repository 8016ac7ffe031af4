//! OS engine, end to end: rotations interrupted at a random moment by the faults that make
//! an outcome uncertain — the agent killed with -9, the controller killed with -9, the
//! site's network cut after the job was sent — for parent-managed and self-managed accounts.
//! After recovery, the password Rotor knows must log in on the host: the number of accounts
//! that end with a password Rotor does not know is counted and must be zero.
//!
//! `ROTOR_FAULT_ITERATIONS` sets the rounds per fault kind (default 3 here; the figures in
//! docs/benchmarks.md come from 20).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::RngExt;
use rotor_tests::prelude::*;

const HOST: &str = "fault-1";

fn iterations() -> usize {
    std::env::var("ROTOR_FAULT_ITERATIONS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3)
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillAgent,
    KillController,
    CutSiteNetwork,
}

fn setup(site: &Site) -> Result<(Host, Rotor)> {
    let host = site
        .host(HOST)
        .with_parent("mgmt", "Mgmt-initial-1")
        .with_user("app1", "App1-initial-1")
        .with_user("svc1", "Svc1-initial-1")
        .start()?;
    // Widen the windows a fault can land in (this kernel has no netem to slow links): the
    // parent's chpasswd pauses before and after the change, and passwd pauses after PAM has
    // updated the password but before it reports success.
    host.exec(
        "printf '#!/bin/sh\\nsleep 1\\n/usr/sbin/chpasswd\\nrc=$?\\nsleep 1\\nexit $rc\\n' > /usr/local/sbin/slow-chpasswd \
         && chmod 755 /usr/local/sbin/slow-chpasswd \
         && echo 'mgmt ALL=(root) NOPASSWD: /usr/local/sbin/slow-chpasswd' > /etc/sudoers.d/slow \
         && chmod 440 /etc/sudoers.d/slow \
         && echo 'password optional pam_exec.so quiet /bin/sleep 1' >> /etc/pam.d/common-password",
    )?;
    let rotor = Rotor::start(&[site])?;
    rotor.cli(&[
        "write",
        "os/config",
        "connect_timeout=5s",
        "step_timeout=5s",
        "rotation_deadline=30s",
    ])?;
    rotor.register_os_host(
        site,
        &host,
        &["chpasswd_command=/usr/local/sbin/slow-chpasswd"],
    )?;
    let accounts = format!("os/hosts/{HOST}/accounts");
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
    Ok((host, rotor))
}

/// Waits until the account has no rotation or verification in flight; answers its status.
fn wait_settled(rotor: &Rotor, account: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(answer) =
            rotor.cli_json(&["read", &format!("os/hosts/{HOST}/accounts/{account}")])
        {
            let status = answer["data"]["status"].as_str().unwrap_or("").to_string();
            if status == "in_sync" || status == "out_of_sync" {
                return Ok(status);
            }
        }
        if Instant::now() > deadline {
            bail!("account {account} still rotating/verifying after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn known_password(rotor: &Rotor, account: &str) -> Result<String> {
    let answer = rotor.cli_json(&["read", &format!("os/hosts/{HOST}/accounts/{account}/creds")])?;
    Ok(answer["data"]["password"]
        .as_str()
        .context("creds without password")?
        .to_string())
}

fn inject(fault: Fault, rotor: &Rotor, site: &Site) -> Result<()> {
    let agent = rotor.agent(site)?;
    match fault {
        Fault::KillAgent => {
            agent.kill()?;
            std::thread::sleep(Duration::from_millis(500));
            agent.restart()?;
        }
        Fault::KillController => {
            rotor.kill_controller()?;
            rotor.restart_controller()?;
        }
        Fault::CutSiteNetwork => {
            agent.disconnect_from(site.network())?;
            std::thread::sleep(Duration::from_secs(3));
            agent.connect_to(site.network())?;
        }
    }
    Ok(())
}

/// Runs `iterations()` interrupted rotations per account kind; answers
/// (rounds, lost, out_of_sync).
fn soak(fault: Fault, site_name: &str) -> Result<(usize, usize, usize)> {
    let site = Site::new(site_name)?;
    let (host, rotor) = setup(&site)?;
    let mut lost = 0;
    let mut out_of_sync = 0;
    let mut rounds = 0;
    for round in 0..iterations() {
        for account in ["app1", "svc1"] {
            rounds += 1;
            let path = format!("os/hosts/{HOST}/accounts/{account}/rotate");
            let delay = Duration::from_millis(rand::rng().random_range(100..2500));
            std::thread::scope(|scope| -> Result<()> {
                let rotation =
                    scope.spawn(|| rotor.controller().cli_output(&["write", "-f", &path]));
                std::thread::sleep(delay);
                inject(fault, &rotor, &site)?;
                let _ = rotation.join();
                Ok(())
            })?;
            let status = wait_settled(&rotor, account, Duration::from_secs(120))?;
            let password = known_password(&rotor, account)?;
            let works = host.login(account, &password).is_ok();
            eprintln!(
                "{fault:?} round {round} {account}: fault after {delay:?}, status {status}, known password logs in: {works}"
            );
            if status == "out_of_sync" {
                out_of_sync += 1;
            } else if !works {
                lost += 1;
            }
        }
    }
    eprintln!(
        "{fault:?}: {rounds} interrupted rotations, {lost} ended with a password Rotor did not know, {out_of_sync} flagged out_of_sync"
    );
    Ok((rounds, lost, out_of_sync))
}

fn check(fault: Fault, site: &str) -> Result<()> {
    let (rounds, lost, out_of_sync) = soak(fault, site)?;
    assert!(rounds > 0);
    assert_eq!(
        lost, 0,
        "{fault:?}: {lost} of {rounds} rotations lost a password silently"
    );
    assert_eq!(
        out_of_sync, 0,
        "{fault:?}: {out_of_sync} of {rounds} rotations ended out of sync"
    );
    Ok(())
}

#[test]
fn agent_killed_mid_rotation_loses_no_password() -> Result<()> {
    if skip_requested("agent_killed_mid_rotation_loses_no_password") {
        return Ok(());
    }
    check(Fault::KillAgent, "ka")
}

#[test]
fn controller_killed_mid_rotation_loses_no_password() -> Result<()> {
    if skip_requested("controller_killed_mid_rotation_loses_no_password") {
        return Ok(());
    }
    check(Fault::KillController, "kc")
}

#[test]
fn site_network_cut_mid_rotation_loses_no_password() -> Result<()> {
    if skip_requested("site_network_cut_mid_rotation_loses_no_password") {
        return Ok(());
    }
    check(Fault::CutSiteNetwork, "cut")
}

#[test]
fn only_the_sites_agent_reaches_the_host_and_without_it_rotation_fails_cleanly() -> Result<()> {
    if skip_requested("only_the_sites_agent_reaches_the_host_and_without_it_rotation_fails_cleanly")
    {
        return Ok(());
    }
    let site = Site::new("iso")?;
    let (host, rotor) = setup(&site)?;
    let address = host.address()?;
    let agent = rotor.agent(&site)?;
    assert!(
        !rotor.controller().container().can_reach(address, 22)?,
        "the controller must not reach the site's host"
    );
    assert!(
        agent.container().can_reach(address, 22)?,
        "the site's agent must reach its host"
    );
    rotor.cli(&[
        "write",
        "-f",
        &format!("os/hosts/{HOST}/accounts/app1/rotate"),
    ])?;
    let before = known_password(&rotor, "app1")?;
    assert_password(&host, "app1", &before);

    agent.kill()?;
    rotor.wait_agent_disconnected(agent.id(), Duration::from_secs(30))?;
    let started = Instant::now();
    let output = rotor.controller().cli_output(&[
        "write",
        "-f",
        &format!("os/hosts/{HOST}/accounts/app1/rotate"),
    ])?;
    assert!(!output.success());
    assert!(
        output.stderr.contains("no agent of site"),
        "{}",
        output.stderr
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "the rotation should wait for an agent before failing"
    );
    assert_eq!(known_password(&rotor, "app1")?, before);
    assert_password(&host, "app1", &before);
    Ok(())
}

/// Lines of sshd's log that speak of a login as `user` (a probe of a pending change logs in
/// as the account itself).
fn logins_as(host: &Host, user: &str) -> Result<usize> {
    let needle = format!(" for {user} from ");
    Ok(host
        .auth_log()?
        .lines()
        .filter(|line| line.contains(&needle))
        .count())
}

#[test]
fn a_change_applied_before_a_controller_kill_settles_from_the_agents_journal() -> Result<()> {
    if skip_requested("a_change_applied_before_a_controller_kill_settles_from_the_agents_journal") {
        return Ok(());
    }
    let site = Site::new("journal")?;
    let (host, rotor) = setup(&site)?;
    // The parent's chpasswd marks the moment the host has the new password, then holds the
    // job's answer back: the controller is killed in that window, after the change and
    // before its result arrives. The agent finishes the job meanwhile and journals it.
    host.exec(
        "rm -f /tmp/applied /tmp/done && printf '#!/bin/sh\\n/usr/sbin/chpasswd\\nrc=$?\\ntouch /tmp/applied\\nsleep 2\\ntouch /tmp/done\\nexit $rc\\n' > /usr/local/sbin/slow-chpasswd",
    )?;
    let before = known_password(&rotor, "app1")?;
    let probes_before = logins_as(&host, "app1")?;
    let path = format!("os/hosts/{HOST}/accounts/app1/rotate");
    std::thread::scope(|scope| -> Result<()> {
        let rotation = scope.spawn(|| rotor.controller().cli_output(&["write", "-f", &path]));
        wait_until(
            "the host applied the change",
            Duration::from_secs(60),
            || Ok(host.exec_output("test -e /tmp/applied")?.success()),
        )?;
        rotor.kill_controller()?;
        let _ = rotation.join();
        wait_until("the agent's job finished", Duration::from_secs(30), || {
            Ok(host.exec_output("test -e /tmp/done")?.success())
        })?;
        Ok(())
    })?;
    rotor.restart_controller()?;
    assert_eq!(
        wait_settled(&rotor, "app1", Duration::from_secs(60))?,
        "in_sync"
    );
    let after = known_password(&rotor, "app1")?;
    assert_ne!(
        after, before,
        "the change the host applied must be committed"
    );
    assert_eq!(
        logins_as(&host, "app1")?,
        probes_before,
        "the change must settle from the agent's journal, without a probe login"
    );
    let logs = rotor.controller_logs()?;
    assert!(
        logs.contains("settled from the agent's journal"),
        "the controller must say how it settled the change:\n{logs}"
    );
    let metrics = rotor.cli_json(&["read", "sys/metrics"])?.to_string();
    assert!(
        metrics.contains("agent_journal"),
        "sys/metrics must count the settlement from the journal: {metrics}"
    );
    assert_password(&host, "app1", &after);
    assert_not_password(&host, "app1", &before);
    Ok(())
}

#[test]
fn deleting_an_account_mid_rotation_is_refused_until_the_change_settles() -> Result<()> {
    if skip_requested("deleting_an_account_mid_rotation_is_refused_until_the_change_settles") {
        return Ok(());
    }
    let site = Site::new("delmid")?;
    let (host, rotor) = setup(&site)?;
    let account = format!("os/hosts/{HOST}/accounts/app1");
    let rotate = format!("{account}/rotate");
    std::thread::scope(|scope| -> Result<()> {
        let rotation = scope.spawn(|| rotor.controller().cli_output(&["write", "-f", &rotate]));
        wait_until("the rotation is in flight", Duration::from_secs(30), || {
            Ok(rotor.cli_json(&["read", &account])?["data"]["status"] == "rotating")
        })?;
        let refused = rotor.controller().cli_output(&["delete", &account])?;
        assert!(!refused.success(), "a delete mid-rotation must be refused");
        assert!(
            refused.stderr.contains("password change in flight") && refused.stderr.contains("job "),
            "the refusal must name the change: {}",
            refused.stderr
        );
        let _ = rotation.join();
        Ok(())
    })?;
    assert_eq!(
        wait_settled(&rotor, "app1", Duration::from_secs(60))?,
        "in_sync"
    );
    // The host has exactly the password Rotor knows; now the delete goes through.
    assert_password(&host, "app1", &known_password(&rotor, "app1")?);
    rotor.cli(&["delete", &account])?;
    assert!(rotor.cli_json(&["read", &account]).is_err());
    Ok(())
}
