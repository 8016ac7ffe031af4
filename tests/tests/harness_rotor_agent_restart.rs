//! Scenario: an agent killed with SIGKILL is seen as lost by the controller, and after
//! a restart it reconnects with the identity it enrolled with.
//! Needs the `rotor` and `rotor-agent` binaries.

use std::time::Duration;

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn killed_agent_reconnects_after_restart() -> Result<()> {
    if skip_requested("harness_rotor_agent_restart") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let rotor = Rotor::start(&[&site])?;
    let agent = rotor.agent(&site)?;

    agent.kill()?;
    assert!(!agent.is_running()?, "rotor-agent survived SIGKILL");
    // Heartbeats stop: the controller must declare the agent lost.
    rotor.wait_agent_disconnected(agent.id(), Duration::from_secs(60))?;

    agent.restart()?;
    rotor.wait_agent_connected(agent.id(), Duration::from_secs(60))?;
    assert!(agent.is_running()?);
    Ok(())
}
