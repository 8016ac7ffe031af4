//! OS engine, end to end: accounts rotate on their own schedule (`rotation_period`), lazy
//! accounts rotate when read once past their period, and a controller that was down while
//! periods passed runs the missed rotation once, not once per missed period.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rotor_tests::prelude::*;

const HOST: &str = "sched-1";

fn creds(rotor: &Rotor, account: &str) -> Result<(String, u64)> {
    let answer = rotor.cli_json(&["read", &format!("os/hosts/{HOST}/accounts/{account}/creds")])?;
    Ok((
        answer["data"]["password"]
            .as_str()
            .context("password")?
            .to_string(),
        answer["data"]["version"].as_u64().context("version")?,
    ))
}

fn version(rotor: &Rotor, account: &str) -> Result<u64> {
    let answer = rotor.cli_json(&["read", &format!("os/hosts/{HOST}/accounts/{account}")])?;
    answer["data"]["current_version"]
        .as_u64()
        .context("current_version")
}

/// Every version of `account` with the time the controller created it.
fn version_times(rotor: &Rotor, account: &str) -> Result<Vec<(u64, std::time::SystemTime)>> {
    let answer = rotor.cli_json(&[
        "read",
        &format!("os/hosts/{HOST}/accounts/{account}/versions"),
    ])?;
    let versions = answer["data"]["versions"]
        .as_object()
        .with_context(|| format!("no versions in {answer}"))?;
    versions
        .iter()
        .map(|(number, version)| {
            let created = version["created_time"]
                .as_str()
                .with_context(|| format!("version {number} has no created_time"))?;
            Ok((
                number.parse()?,
                humantime::parse_rfc3339(created)
                    .with_context(|| format!("created_time {created}"))?,
            ))
        })
        .collect()
}

fn wait_version(rotor: &Rotor, account: &str, at_least: u64, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let current = version(rotor, account)?;
        if current >= at_least {
            return Ok(current);
        }
        if Instant::now() > deadline {
            bail!("{account} still at version {current} after {timeout:?}, expected {at_least}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn periods_lazy_reads_and_missed_periods_after_a_restart() -> Result<()> {
    if skip_requested("periods_lazy_reads_and_missed_periods_after_a_restart") {
        return Ok(());
    }
    let site = Site::new("sch")?;
    let host = site
        .host(HOST)
        .with_parent("mgmt", "Mgmt-initial-1")
        .with_user("app1", "App1-initial-1")
        .with_user("app2", "App2-initial-1")
        .start()?;
    let rotor = Rotor::start(&[&site])?;
    rotor.register_os_host(&site, &host, &[])?;
    let accounts = format!("os/hosts/{HOST}/accounts");
    rotor.write_os_parent(HOST, "mgmt", "Mgmt-initial-1")?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/app1"),
        "username=app1",
        "password=App1-initial-1",
        "parent_ref=mgmt",
        "rotation_period=8s",
    ])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/app2"),
        "username=app2",
        "password=App2-initial-1",
        "parent_ref=mgmt",
        "rotation_period=4s",
        "lazy_rotation=true",
    ])?;
    let read = rotor.cli_json(&["read", &format!("{accounts}/app1")])?;
    assert!(
        read["data"]["next_vault_rotation"].as_str().is_some(),
        "{read}"
    );

    // The schedule rotates app1 by itself, and the host has the new password.
    wait_version(&rotor, "app1", 2, Duration::from_secs(40))?;
    let (password, _) = creds(&rotor, "app1")?;
    assert_password(&host, "app1", &password);
    assert_not_password(&host, "app1", "App1-initial-1");

    // app2 is lazy: past its period it has not rotated until read, then it has.
    assert_eq!(
        version(&rotor, "app2")?,
        1,
        "a lazy account must not rotate from the schedule"
    );
    let (password, version_read) = creds(&rotor, "app2")?;
    assert_eq!(
        version_read, 2,
        "reading a lazy account past its period rotates it first"
    );
    assert_password(&host, "app2", &password);

    // Down for several periods: the missed rotation runs once after the restart.
    rotor.cli(&["write", &format!("{accounts}/app1"), "rotation_period=12s"])?;
    let before = wait_version(&rotor, "app1", 2, Duration::from_secs(1))?;
    rotor.kill_controller()?;
    std::thread::sleep(Duration::from_secs(30));
    rotor.restart_controller()?;
    wait_version(&rotor, "app1", before + 1, Duration::from_secs(60))?;
    // The catch-up made version before+1. The next period can start no sooner than a period
    // after it, so any other version the controller stamped within that period is a second
    // catch-up. Judged by the controller's own timestamps once the period has passed, so a
    // slow machine delays the check but cannot fail it.
    let caught_up_at = version_times(&rotor, "app1")?
        .into_iter()
        .find(|(number, _)| *number == before + 1)
        .map(|(_, created)| created)
        .context("no catch-up version in versions")?;
    let period_end = caught_up_at + Duration::from_secs(12);
    while std::time::SystemTime::now() < period_end + Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let within_period: Vec<u64> = version_times(&rotor, "app1")?
        .into_iter()
        .filter(|(number, created)| *number > before && *created < period_end)
        .map(|(number, _)| number)
        .collect();
    assert_eq!(
        within_period,
        vec![before + 1],
        "missed periods must run once, not once each"
    );
    // The next period's rotation may be on its way by now; stop the schedule and let it
    // settle, so the password read is the one the host has.
    rotor.cli(&[
        "write",
        &format!("{accounts}/app1"),
        "disable_automated_rotation=true",
    ])?;
    wait_in_sync(&rotor, "app1", Duration::from_secs(60))?;
    let (password, _) = creds(&rotor, "app1")?;
    assert_password(&host, "app1", &password);
    Ok(())
}

/// Waits until `account` has no change in flight (status `in_sync`).
fn wait_in_sync(rotor: &Rotor, account: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = rotor.cli_json(&["read", &format!("os/hosts/{HOST}/accounts/{account}")])?;
        if answer["data"]["status"] == "in_sync" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{account} still not in_sync after {timeout:?}: {answer}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
