//! Scenario: the controller starts on `core`, an agent of site `a` enrolls with a
//! one-time token and connects across `core`; the agent reaches the site's host while
//! the controller cannot. Needs the `rotor` and `rotor-agent` binaries.

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn agent_enrolls_and_connects_across_core() -> Result<()> {
    if skip_requested("harness_rotor_enroll") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let host = site.host("web-1").start()?;
    let rotor = Rotor::start(&[&site])?;

    let agent = rotor.agent(&site)?;
    assert!(rotor.is_agent_connected(agent.id())?);
    let record = rotor.cli_json(&["read", &format!("agents/{}", agent.id())])?;
    assert_eq!(
        record
            .pointer("/data/connected")
            .and_then(|value| value.as_bool()),
        Some(true),
        "{record}"
    );

    let address = host.address()?;
    assert!(
        agent.container().can_reach(address, 22)?,
        "the agent of site a must reach its host"
    );
    assert!(
        !rotor.controller().container().can_reach(address, 22)?,
        "the controller must not reach a site host directly"
    );
    Ok(())
}
