//! Scenario: `slow_link` either delays a host's packets (a login takes longer, but
//! works) or, on a kernel without netem, fails with an error that says so.
//! Owns only this scenario; no Rotor processes.

use std::time::Instant;

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn slow_link_delays_traffic_or_says_netem_is_missing() -> Result<()> {
    if skip_requested("harness_slow_link") {
        return Ok(());
    }
    let site = Site::new("a")?;
    let host = site.host("web-1").with_user("app1", "app1-pw").start()?;
    assert_password(&host, "app1", "app1-pw");

    match host.slow_link(300) {
        Ok(()) => {
            let started = Instant::now();
            assert_password(&host, "app1", "app1-pw");
            let slowed = started.elapsed();
            // An SSH login needs several round trips; each now costs 300 ms or more.
            assert!(
                slowed.as_millis() >= 900,
                "login took only {slowed:?} over a 300 ms link"
            );
            host.clear_slow_link()?;
        }
        Err(error) => {
            let message = format!("{error:#}");
            assert!(
                message.contains("netem") && message.contains("web-1"),
                "slow_link failed without saying netem is missing: {message}"
            );
            eprintln!("note: {message}");
        }
    }
    assert_password(&host, "app1", "app1-pw");
    Ok(())
}
