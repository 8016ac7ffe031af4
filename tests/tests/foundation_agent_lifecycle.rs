//! Foundation, end to end with the real binaries on loopback: a dev server, an agent that
//! enrolls, connects, answers a ping over QUIC, is revoked, and is refused from then on.

mod support;

use std::time::Duration;

use support::{Agent, Controller};

#[test]
fn enroll_connect_ping_revoke_and_refuse() -> anyhow::Result<()> {
    let controller = Controller::start_dev()?;
    let mut agent = Agent::enroll(&controller, "site-a")?;
    agent.start()?;
    let status = controller.wait_connected(&agent.id, true, Duration::from_secs(20))?;
    assert_eq!(status["site"], "site-a");
    assert_eq!(status["revoked"], false);
    assert!(
        status["remote_address"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0.1:"),
        "{status}"
    );
    assert!(
        status["certificate_expiry"]
            .as_str()
            .is_some_and(|s| s.starts_with("20")),
        "{status}"
    );
    assert!(status["last_seen"].as_str().is_some(), "{status}");

    let listed = controller.cli_json(&["list", "agents"])?;
    assert!(
        listed
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k == &agent.id)),
        "{listed}"
    );

    let ping = controller.cli_json(&["write", "-f", &format!("agents/{}/ping", agent.id)])?;
    let latency = ping["data"]["latency_ms"].as_f64().unwrap_or(-1.0);
    assert!(latency > 0.0 && latency < 2000.0, "ping answered {ping}");

    let deleted = controller.cli(&["delete", &format!("agents/{}", agent.id)])?;
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    controller.wait_connected(&agent.id, false, Duration::from_secs(5))?;
    let revoked = controller.cli_json(&["read", &format!("agents/{}", agent.id)])?;
    assert_eq!(revoked["data"]["revoked"], true);

    // The agent learns it is refused for good and stops with exit code 3.
    let code = agent.process()?.wait_exit(Duration::from_secs(40))?;
    assert_eq!(
        code,
        Some(3),
        "agent stderr:\n{}",
        agent.process()?.stderr()
    );
    assert!(
        agent.process()?.stderr().contains("revoked"),
        "{}",
        agent.process()?.stderr()
    );

    // Restarted, it is refused again; it never shows as connected.
    agent.start()?;
    let code = agent.process()?.wait_exit(Duration::from_secs(20))?;
    assert_eq!(code, Some(3));
    let again = controller.cli_json(&["read", &format!("agents/{}", agent.id)])?;
    assert_eq!(again["data"]["connected"], false);
    assert!(
        controller.process.stderr().contains("agent refused"),
        "controller log:\n{}",
        controller.process.stderr()
    );

    // Pinging a revoked, disconnected agent is a clear error, not a hang.
    let ping = controller.cli(&["write", "-f", &format!("agents/{}/ping", agent.id)])?;
    assert_eq!(ping.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&ping.stderr).contains("not connected"));
    Ok(())
}

#[test]
fn enrollment_tokens_work_once_expire_and_pin_the_ca() -> anyhow::Result<()> {
    let controller = Controller::start_dev()?;
    let data = controller.enrollment("site-b")?;
    let token = data["token"].as_str().unwrap_or_default().to_string();
    let fingerprint = data["ca_fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{data}");
    assert_eq!(data["controller_addr"], controller.agent_address.as_str());

    // A wrong fingerprint aborts before anything is sent, and names both.
    let dir = tempfile::tempdir()?;
    let wrong = format!("SHA256:{}", "ab".repeat(32));
    let output = Agent::enroll_command(&controller.agent_address, &token, &wrong, dir.path())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&wrong) && stderr.contains(&fingerprint),
        "{stderr}"
    );
    assert!(!dir.path().join("agent.key").exists());

    // The token was not spent by the aborted attempt: it works once ...
    let output =
        Agent::enroll_command(&controller.agent_address, &token, &fingerprint, dir.path())?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key_mode = std::fs::metadata(dir.path().join("agent.key"))?;
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );

    // ... and never again.
    let other = tempfile::tempdir()?;
    let output = Agent::enroll_command(
        &controller.agent_address,
        &token,
        &fingerprint,
        other.path(),
    )?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("already been used"), "{stderr}");

    // An expired token is refused with its own message.
    let expired = controller.cli_json(&["write", "agents/enroll", "site=site-b", "ttl=1s"])?;
    std::thread::sleep(Duration::from_millis(2100));
    let output = Agent::enroll_command(
        &controller.agent_address,
        expired["data"]["token"].as_str().unwrap_or_default(),
        &fingerprint,
        other.path(),
    )?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("expired"), "{stderr}");

    // Bad enrollment requests at the API are 400s naming the field.
    let output = controller.cli(&["write", "agents/enroll", "site=Bad Site"])?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("'site'"));
    let output = controller.cli(&["write", "agents/enroll", "site=a", "ttl=forever"])?;
    assert!(String::from_utf8_lossy(&output.stderr).contains("field 'ttl'"));
    Ok(())
}

#[test]
fn a_certificate_from_another_ca_is_refused() -> anyhow::Result<()> {
    // An agent enrolled with controller A is pointed at controller B, trusting B's CA: B
    // must refuse its certificate during the handshake and never list it as connected.
    let a = Controller::start_dev()?;
    let b = Controller::start_dev()?;
    let mut agent = Agent::enroll(&a, "site-x")?;
    let b_ca = std::fs::read_to_string(&b.ca_file)?;
    std::fs::write(agent.dir.path().join("ca.pem"), b_ca)?;
    let state_path = agent.dir.path().join("agent.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path)?)?;
    state["controllers"] = serde_json::json!([b.agent_address]);
    std::fs::write(&state_path, serde_json::to_string(&state)?)?;
    agent.start()?;
    let log = b_refusal(&b)?;
    assert!(
        log.contains("TLS handshake"),
        "controller B did not log the refused handshake:\n{log}"
    );
    let agents = b.cli_json(&["list", "agents"])?;
    assert!(
        agents["data"]["keys"]
            .as_array()
            .is_none_or(|keys| !keys.iter().any(|key| key == agent.id.as_str())),
        "B lists A's agent: {agents}"
    );
    // The agent itself says why it cannot connect and keeps trying (no false success).
    let stderr_or_out = {
        let agent_process = agent.process()?;
        std::thread::sleep(Duration::from_secs(1));
        format!("{}{}", agent_process.stdout(), agent_process.stderr())
    };
    assert!(
        !stderr_or_out.contains("connected to the controller"),
        "the agent claims a connection: {stderr_or_out}"
    );
    Ok(())
}

/// Waits up to 15 s for controller `b` to log a refused agent handshake; answers its log.
fn b_refusal(b: &Controller) -> anyhow::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let log = format!("{}{}", b.process.stdout(), b.process.stderr());
        if log.contains("TLS handshake") || std::time::Instant::now() > deadline {
            return Ok(log);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
