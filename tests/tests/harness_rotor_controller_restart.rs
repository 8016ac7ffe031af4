//! Scenario: the controller killed with SIGKILL comes back on the same `/data` (its
//! store, seal key and CA), and the agent reconnects to it without re-enrolling.
//! Needs the `rotor` and `rotor-agent` binaries.

use std::time::Duration;

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn agent_reconnects_to_a_restarted_controller() -> Result<()> {
    if skip_requested("harness_rotor_controller_restart") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let rotor = Rotor::start(&[&site])?;
    let agent = rotor.agent(&site)?;

    rotor.kill_controller()?;
    assert!(
        !rotor.controller().server_is_running()?,
        "rotor server survived SIGKILL"
    );

    rotor.restart_controller()?;
    rotor.wait_agent_connected(agent.id(), Duration::from_secs(90))?;
    assert!(agent.is_running()?);
    Ok(())
}
