//! Scenario: containers on different site networks cannot reach each other, while two
//! hosts of one site can (the control that the check itself works).
//! Owns only this scenario; no Rotor processes.

use anyhow::Result;
use rotor_tests::prelude::*;

#[test]
fn two_sites_cannot_reach_each_other() -> Result<()> {
    if skip_requested("harness_site_isolation") {
        return Ok(());
    }
    let site_a = Site::new("a")?;
    let site_b = Site::new("b")?;
    let web_a = site_a.host("web-1").start()?;
    let db_a = site_a.host("db-1").start()?;
    let web_b = site_b.host("web-1").start()?;

    assert!(
        web_a.reaches(&db_a)?,
        "hosts of one site must reach each other"
    );
    assert!(!web_a.reaches(&web_b)?, "site a reached a host of site b");
    assert!(!web_b.reaches(&web_a)?, "site b reached a host of site a");
    assert!(!web_b.reaches(&db_a)?, "site b reached a host of site a");
    Ok(())
}
