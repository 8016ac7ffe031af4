//! Foundation, end to end: a configured controller (store on disk) is killed with -9 while
//! an agent runs; when it comes back on the same store, the agent reconnects by itself and
//! everything the controller knew is still there; the agent hears of the restart from a
//! QUIC stateless reset, not its heartbeat timeout.

mod support;

use std::time::Duration;

use support::{Agent, Controller};

#[test]
fn agent_reconnects_after_controller_kill_and_restart() -> anyhow::Result<()> {
    let (dir, config, token) = Controller::init_config()?;
    let config_path = config.clone();
    let mut controller = Controller::start_config(dir, &config_path, &token)?;
    let mut agent = Agent::enroll(&controller, "site-c")?;
    agent.start()?;
    controller.wait_connected(&agent.id, true, Duration::from_secs(20))?;
    let fingerprint_before = controller.enrollment("site-c")?["ca_fingerprint"].clone();

    controller.process.kill9()?;
    // Keep the directory: move it out of the dead controller into the new one.
    let dir = std::mem::replace(&mut controller.dir, tempfile::tempdir()?);
    let controller = Controller::start_config(dir, &config_path, &token)?;
    // Same root token, same CA, same agent registry.
    let data = controller.wait_connected(&agent.id, true, Duration::from_secs(60))?;
    assert_eq!(data["site"], "site-c");
    assert_eq!(
        controller.enrollment("site-c")?["ca_fingerprint"],
        fingerprint_before
    );
    let ping = controller.cli_json(&["write", "-f", &format!("agents/{}/ping", agent.id)])?;
    assert!(ping["data"]["latency_ms"].as_f64().is_some(), "{ping}");
    // The restarted server did not mint a new root token.
    assert!(!controller.process.stdout().contains("Root Token:"));
    // Issue 16: the agent learned of the restart from the new endpoint's stateless reset
    // (same reset key, kept in the store) at its next packet, not by waiting out its
    // heartbeat timeout. Judged by the reason it logged, not by a clock.
    let agent_log = agent.process()?.stderr();
    let lost: Vec<&str> = agent_log
        .lines()
        .filter(|line| line.contains("link to the controller lost"))
        .collect();
    assert!(
        lost.iter().any(|line| line.contains("reset by peer")),
        "the agent did not see a stateless reset from the restarted controller: {lost:?}"
    );
    assert!(
        !lost.iter().any(|line| line.contains("no heartbeat")),
        "the agent waited for its heartbeat timeout: {lost:?}"
    );
    Ok(())
}

#[test]
fn operator_init_refuses_to_run_twice() -> anyhow::Result<()> {
    let (_dir, config, _token) = Controller::init_config()?;
    let output = std::process::Command::new(support::binary("rotor")?)
        .args(["operator", "init", "-config"])
        .arg(&config)
        .output()?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already initialised"));
    Ok(())
}
