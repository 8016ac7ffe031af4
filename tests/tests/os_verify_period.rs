//! OS engine, end to end: heartbeat verification on a schedule (`verify_period`, issue 7).
//! A password changed on the host behind Rotor's back is found `out_of_sync` by the scheduler
//! within a bounded time; a healthy account is verified and stays `in_sync`; the account read
//! shows the last and next verification, and `sys/metrics` counts them as kind="scheduled".
//! Owns only this scenario; the harness owns containers and logins.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rotor_tests::prelude::*;
use serde_json::Value;

const HOST: &str = "beat-1";
/// Short enough for a test, long enough that the first heartbeat comes after the change.
const VERIFY_PERIOD_SECS: u64 = 6;

/// `rotor_verifications_total{kind="scheduled",result=...}` from `sys/metrics` (Vault's JSON).
fn scheduled_verifications(rotor: &Rotor, result: &str) -> Result<u64> {
    let metrics = rotor.cli_json(&["read", "sys/metrics"])?;
    let counters = metrics["Counters"]
        .as_array()
        .with_context(|| format!("sys/metrics has no Counters: {metrics}"))?;
    Ok(counters
        .iter()
        .filter(|counter| {
            counter["Name"] == "rotor_verifications_total"
                && counter["Labels"]["kind"] == "scheduled"
                && counter["Labels"]["result"] == result
        })
        .filter_map(|counter| counter["Count"].as_u64())
        .sum())
}

fn account(rotor: &Rotor, name: &str) -> Result<Value> {
    let read = rotor.cli_json(&["read", &format!("os/hosts/{HOST}/accounts/{name}")])?;
    Ok(read["data"].clone())
}

fn unix_of(data: &Value, field: &str) -> Result<std::time::SystemTime> {
    let text = data[field]
        .as_str()
        .with_context(|| format!("no {field} in {data}"))?;
    humantime::parse_rfc3339(text).with_context(|| format!("{field} '{text}' is not RFC 3339"))
}

#[test]
fn verify_period_finds_a_password_changed_behind_rotors_back() -> Result<()> {
    if skip_requested("verify_period_finds_a_password_changed_behind_rotors_back") {
        return Ok(());
    }
    let site = Site::new("vp")?;
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
    let period = format!("verify_period={VERIFY_PERIOD_SECS}s");
    for (name, password) in [("app1", "App1-initial-1"), ("app2", "App2-initial-1")] {
        rotor.cli(&[
            "write",
            &format!("{accounts}/{name}"),
            &format!("username={name}"),
            &format!("password={password}"),
            "parent_ref=mgmt",
            "disable_automated_rotation=true",
            &period,
        ])?;
    }
    let out_of_sync_before = scheduled_verifications(&rotor, "out_of_sync")?;
    let in_sync_before = scheduled_verifications(&rotor, "in_sync")?;

    // The read shows the period and when the first heartbeat is due; none has run yet.
    let app1 = account(&rotor, "app1")?;
    assert_eq!(app1["verify_period"], VERIFY_PERIOD_SECS, "{app1}");
    assert!(app1["last_verification"].is_null(), "{app1}");
    unix_of(&app1, "next_verification")?;
    // mgmt has no period: no heartbeat fields set.
    let mgmt = account(&rotor, "mgmt")?;
    assert!(mgmt["verify_period"].is_null(), "{mgmt}");
    assert!(mgmt["next_verification"].is_null(), "{mgmt}");

    // Behind Rotor's back: app1's password changes on the host.
    host.set_password("app1", "Changed-behind-1")?;
    let changed_at = Instant::now();

    // Within a period plus the scheduler's 5 s tick plus a login: out_of_sync.
    let bound = Duration::from_secs(VERIFY_PERIOD_SECS + 5 + 15);
    wait_until("the heartbeat to mark app1 out_of_sync", bound, || {
        Ok(account(&rotor, "app1")?["status"] == "out_of_sync")
    })?;
    eprintln!(
        "app1 found out_of_sync {:?} after the change",
        changed_at.elapsed()
    );
    let app1 = account(&rotor, "app1")?;
    assert_eq!(app1["out_of_sync"], true, "{app1}");
    assert_eq!(app1["last_verification"], "out_of_sync", "{app1}");
    let detail = app1["last_verification_detail"]
        .as_str()
        .context("an out_of_sync verification says why")?;
    assert!(detail.contains("no longer logs in"), "{app1}");
    let last = unix_of(&app1, "last_verified")?;
    let next = unix_of(&app1, "next_verification")?;
    assert_eq!(
        next.duration_since(last)?,
        Duration::from_secs(VERIFY_PERIOD_SECS),
        "the next heartbeat is one period after the last: {app1}"
    );
    // Rotor still holds (and hands out) the old password, which the host refuses now.
    let creds = rotor.cli_json(&["read", &format!("{accounts}/app1/creds")])?;
    assert_eq!(creds["data"]["password"], "App1-initial-1", "{creds}");
    assert_not_password(&host, "app1", "App1-initial-1");
    assert_password(&host, "app1", "Changed-behind-1");

    // The healthy account was verified on the same schedule and stays in sync.
    wait_until("a scheduled verification of app2", bound, || {
        Ok(account(&rotor, "app2")?["last_verification"] == "in_sync")
    })?;
    let app2 = account(&rotor, "app2")?;
    assert_eq!(app2["status"], "in_sync", "{app2}");
    assert_eq!(app2["out_of_sync"], false, "{app2}");
    unix_of(&app2, "last_verified")?;
    unix_of(&app2, "next_verification")?;
    assert_password(&host, "app2", "App2-initial-1");

    // Both heartbeats are counted as scheduled verifications.
    assert!(
        scheduled_verifications(&rotor, "out_of_sync")? > out_of_sync_before,
        "no scheduled out_of_sync verification counted"
    );
    assert!(
        scheduled_verifications(&rotor, "in_sync")? > in_sync_before,
        "no scheduled in_sync verification counted"
    );

    // A heartbeat that cannot reach the host proves nothing: not_run, still in sync.
    let not_run_before = scheduled_verifications(&rotor, "not_run")?;
    host.stop_sshd()?;
    wait_until("a heartbeat of app2 that could not run", bound, || {
        Ok(account(&rotor, "app2")?["last_verification"] == "not_run")
    })?;
    let app2 = account(&rotor, "app2")?;
    assert_eq!(app2["status"], "in_sync", "{app2}");
    let detail = app2["last_verification_detail"]
        .as_str()
        .context("a heartbeat that could not run says why")?;
    // Refused, or reset when the heartbeat's connection met sshd going down: either way the
    // heartbeat could not connect, and says so.
    assert!(detail.contains("could not connect"), "{app2}");
    assert!(scheduled_verifications(&rotor, "not_run")? > not_run_before);
    host.start_sshd()?;
    wait_until("app2's heartbeat to log in again", bound, || {
        Ok(account(&rotor, "app2")?["last_verification"] == "in_sync")
    })?;

    // Once the host has the known password again, app1's next heartbeat finds it in sync.
    host.set_password("app1", "App1-initial-1")?;
    wait_until("the heartbeat to find app1 in sync again", bound, || {
        Ok(account(&rotor, "app1")?["status"] == "in_sync")
    })?;
    let app1 = account(&rotor, "app1")?;
    assert_eq!(app1["last_verification"], "in_sync", "{app1}");
    assert_eq!(app1["out_of_sync"], false, "{app1}");
    Ok(())
}
