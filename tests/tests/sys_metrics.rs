//! Metrics over HTTPS on a local dev controller with a local agent (issue 7): API requests
//! counted by status, rotations by outcome with their latency (one through a stand-in
//! `chpasswd`, one whose command is missing), a verification that could not run, agents and
//! accounts as gauges, in Prometheus text and in Vault's JSON.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use support::http::request;
use support::{Agent, Controller};

/// The samples of a Prometheus text exposition, by series (`name{labels}`).
fn parse_prometheus(text: &str) -> Result<HashMap<String, f64>> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("malformed sample line {line:?}"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("bad value in {line:?}"))?;
        samples.insert(series.to_string(), value);
    }
    Ok(samples)
}

fn scrape(controller: &Controller) -> Result<HashMap<String, f64>> {
    let answer = request(controller, "GET", "sys/metrics?format=prometheus", None)?;
    if answer.status != 200 {
        bail!("sys/metrics answered {}: {}", answer.status, answer.text);
    }
    parse_prometheus(&answer.text)
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[test]
fn counters_move_with_requests_and_rotations() -> Result<()> {
    let controller = Controller::start_dev()?;
    let before = scrape(&controller)?;
    assert_eq!(value(&before, "rotor_accounts_out_of_sync"), 0.0);
    assert!(before.contains_key("rotor_rotations_total{outcome=\"committed\"}"));

    // Two 404s, one 400, one 204, one 200.
    for _ in 0..2 {
        let answer = request(&controller, "GET", "sys/policies/password/none", None)?;
        assert_eq!(answer.status, 404, "{}", answer.text);
    }
    let answer = request(
        &controller,
        "POST",
        "sys/policies/password/bad",
        Some(&json!({ "policy": "length = 0" })),
    )?;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let answer = request(
        &controller,
        "POST",
        "sys/policies/password/digits",
        Some(&json!({
            "policy": "length = 16\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 16\n}\n"
        })),
    )?;
    assert_eq!(answer.status, 204, "{}", answer.text);
    let answer = request(&controller, "GET", "sys/policies/password/digits", None)?;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let after = scrape(&controller)?;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved("rotor_api_requests_total{status=\"404\"}"), 2.0);
    assert_eq!(moved("rotor_api_requests_total{status=\"400\"}"), 1.0);
    assert_eq!(moved("rotor_api_requests_total{status=\"204\"}"), 1.0);
    // The read above and the first scrape.
    assert_eq!(moved("rotor_api_requests_total{status=\"200\"}"), 2.0);
    assert_eq!(moved("rotor_api_request_duration_seconds_count"), 6.0);

    // A local agent rotates through a stand-in chpasswd that records what it was fed.
    let mut agent = Agent::enroll(&controller, "lab")?;
    agent.start()?;
    controller.wait_connected(&agent.id, true, Duration::from_secs(30))?;
    let fed = controller.dir.path().join("chpasswd-input");
    let script = controller.dir.path().join("fake-chpasswd");
    std::fs::write(&script, format!("#!/bin/sh\ncat >> {}\n", fed.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    for (host, command) in [
        ("lab-1", script.display().to_string()),
        ("lab-2", "/nonexistent/chpasswd".to_string()),
    ] {
        let answer = request(
            &controller,
            "POST",
            &format!("os/hosts/{host}"),
            Some(&json!({
                "connection": "local",
                "agent": agent.id,
                "address": "localhost",
                "chpasswd_command": command,
            })),
        )?;
        assert_eq!(answer.status, 204, "{}", answer.text);
        let answer = request(
            &controller,
            "POST",
            &format!("os/hosts/{host}/accounts/app"),
            Some(&json!({
                "username": "app",
                "password": "App-initial-1",
                "password_policy": "digits",
            })),
        )?;
        assert_eq!(answer.status, 204, "{}", answer.text);
    }
    let rotated = request(
        &controller,
        "POST",
        "os/hosts/lab-1/accounts/app/rotate",
        None,
    )?;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let creds = request(
        &controller,
        "GET",
        "os/hosts/lab-1/accounts/app/creds",
        None,
    )?;
    let password = creds.json["data"]["password"]
        .as_str()
        .context("creds without a password")?;
    assert_eq!(password.len(), 16, "the digits policy was not used");
    assert!(password.bytes().all(|b| b.is_ascii_digit()), "not digits");
    let fed_text = std::fs::read_to_string(&fed)?;
    assert_eq!(fed_text, format!("app:{password}\n"));
    let failed = request(
        &controller,
        "POST",
        "os/hosts/lab-2/accounts/app/rotate",
        None,
    )?;
    assert_eq!(failed.status, 400, "{}", failed.text);

    // A verification login that cannot run (no sshd with a known key behind a local host).
    let verify = request(
        &controller,
        "POST",
        "os/hosts/lab-1/accounts/app/verify",
        None,
    )?;
    assert_eq!(verify.status, 400, "{}", verify.text);

    let last = scrape(&controller)?;
    let moved = |series: &str| value(&last, series) - value(&after, series);
    assert_eq!(moved("rotor_rotations_total{outcome=\"committed\"}"), 1.0);
    assert_eq!(moved("rotor_rotations_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(moved("rotor_rotations_total{outcome=\"out_of_sync\"}"), 0.0);
    assert_eq!(moved("rotor_rotation_duration_seconds_count"), 2.0);
    assert_eq!(
        value(&last, "rotor_rotation_duration_seconds_bucket{le=\"+Inf\"}"),
        value(&last, "rotor_rotation_duration_seconds_count")
    );
    assert!(value(&last, "rotor_rotation_duration_seconds_sum") > 0.0);
    assert_eq!(
        moved("rotor_verifications_total{kind=\"current\",result=\"not_run\"}"),
        1.0
    );
    assert_eq!(value(&last, "rotor_agents_enrolled{site=\"lab\"}"), 1.0);
    assert_eq!(value(&last, "rotor_agents_connected{site=\"lab\"}"), 1.0);
    assert_eq!(value(&last, "rotor_site_jobs_in_flight{site=\"lab\"}"), 0.0);
    assert_eq!(value(&last, "rotor_accounts{status=\"in_sync\"}"), 2.0);
    assert_eq!(value(&last, "rotor_accounts_out_of_sync"), 0.0);

    // Without format=prometheus: Vault's JSON, with the same figures.
    let answer = request(&controller, "GET", "sys/metrics", None)?;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let committed = answer.json["Counters"]
        .as_array()
        .and_then(|counters| {
            counters.iter().find(|counter| {
                counter["Name"] == "rotor_rotations_total"
                    && counter["Labels"]["outcome"] == "committed"
            })
        })
        .context("no committed rotations counter in the JSON")?;
    assert_eq!(committed["Count"], 1, "{}", answer.text);
    let connected = answer.json["Gauges"]
        .as_array()
        .and_then(|gauges| {
            gauges
                .iter()
                .find(|gauge| gauge["Name"] == "rotor_agents_connected")
        })
        .context("no connected agents gauge in the JSON")?;
    assert_eq!(connected["Value"], 1);
    assert!(answer.json["Timestamp"].is_string());
    let refused = request(&controller, "GET", "sys/metrics?format=xml", None)?;
    assert_eq!(refused.status, 400, "{}", refused.text);

    // The agent's own figures, reported over its link with its heartbeats.
    let jobs_series = format!(
        "rotor_agent_jobs_total{{agent=\"{}\",outcome=\"succeeded\"}}",
        agent.id
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let reported = loop {
        let samples = scrape(&controller)?;
        if samples.get(&jobs_series).is_some_and(|jobs| *jobs >= 1.0) {
            break samples;
        }
        if std::time::Instant::now() > deadline {
            bail!("no agent report with the rotation's job within 30 s: {samples:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let series = |name: &str| format!("{name}{{agent=\"{}\"}}", agent.id);
    let resident = value(&reported, &series("rotor_agent_resident_memory_bytes"));
    assert!(
        resident > 1_048_576.0 && resident < 512.0 * 1_048_576.0,
        "agent RSS {resident}"
    );
    assert!(value(&reported, &series("rotor_agent_peak_resident_memory_bytes")) >= resident);
    assert_eq!(
        value(&reported, &series("rotor_agent_links_established_total")),
        1.0
    );
    let read = request(&controller, "GET", &format!("agents/{}", agent.id), None)?;
    assert_eq!(read.status, 200, "{}", read.text);
    let metrics = &read.json["data"]["metrics"];
    assert!(
        metrics["resident_memory_bytes"]
            .as_u64()
            .is_some_and(|rss| rss > 1_048_576),
        "{}",
        read.text
    );
    // A report taken between a result and its acknowledgement may still count it.
    assert!(
        metrics["journal_unacknowledged"]
            .as_u64()
            .is_some_and(|n| n <= 1),
        "{}",
        read.text
    );
    Ok(())
}
