//! Scenario: an agent cut from the `core` network is seen as lost by the controller;
//! when the network heals, the agent reconnects on its own (no restart).
//! Needs the `rotor` and `rotor-agent` binaries.

use std::time::Duration;

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn partitioned_agent_reconnects_when_the_network_heals() -> Result<()> {
    if skip_requested("harness_rotor_partition") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let rotor = Rotor::start(&[&site])?;
    let agent = rotor.agent(&site)?;

    agent.disconnect_from(rotor.core())?;
    rotor.wait_agent_disconnected(agent.id(), Duration::from_secs(60))?;
    assert!(agent.is_running()?, "a partition must not kill the agent");

    agent.connect_to(rotor.core())?;
    rotor.wait_agent_connected(agent.id(), Duration::from_secs(90))?;
    Ok(())
}
