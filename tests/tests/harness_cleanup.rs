//! Scenario: when a test panics, the harness still removes what it created (the
//! host container, the site's probe and network), and every resource carries the
//! labels the stale-resource sweep relies on. Owns only this scenario.

use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Result, anyhow};
use rotor_tests::docker::docker;
use rotor_tests::naming::{LABEL, PID_LABEL_KEY};
use rotor_tests::prelude::*;

#[test]
fn a_panicking_test_leaves_no_containers_or_networks() -> Result<()> {
    if skip_requested("harness_cleanup") {
        return Ok(());
    }
    let mut created: Option<(String, String, String)> = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
        let site = Site::new("a")?;
        let host = site.host("web-1").with_user("app1", "app1-pw").start()?;
        host.login("app1", "app1-pw")?; // also starts the site's probe
        let container = host.container().name().to_string();
        let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &container])?;
        assert!(labels.contains(&LABEL.replace('=', "\":\"")), "{labels}");
        assert!(
            labels.contains(&format!("\"{PID_LABEL_KEY}\":\"{}\"", std::process::id())),
            "{labels}"
        );
        created = Some((
            container,
            format!("{}-probe", site.network().name()),
            site.network().name().to_string(),
        ));
        panic!("deliberate panic with a host, a probe and a network alive");
    }));
    assert!(outcome.is_err(), "the closure was meant to panic");
    let (host, probe, network) =
        created.ok_or_else(|| anyhow!("the host was never started; nothing was checked"))?;

    let containers = docker(&["ps", "-a", "--format", "{{.Names}}"])?;
    assert!(
        !containers.lines().any(|name| name == host),
        "{host} survived the panic"
    );
    assert!(
        !containers.lines().any(|name| name == probe),
        "{probe} survived the panic"
    );
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"])?;
    assert!(
        !networks.lines().any(|name| name == network),
        "{network} survived the panic"
    );
    Ok(())
}
