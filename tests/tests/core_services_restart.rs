//! The core services across a restart of a configured controller (store on disk): tokens,
//! their revocations, policies and audit devices (with their HMAC keys) survive; a lease
//! whose TTL ran out while the controller was down is revoked when it comes back.

mod core_common;
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use core_common::{create_token, curl, lease_exists, ok, otp_lease};
use serde_json::json;
use support::Controller;

#[test]
fn core_services_survive_a_restart_and_sweep_what_expired_meanwhile() -> Result<()> {
    let (dir, config, root) = Controller::init_config()?;
    let mut controller = Controller::start_config(dir, &config, &root)?;
    let log = controller.dir.path().join("audit.log");
    ok(
        &controller,
        "PUT",
        "sys/audit/file",
        &root,
        Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
    )?;
    let hash_of = |controller: &Controller, input: &str| -> Result<String> {
        let answer = ok(
            controller,
            "POST",
            "sys/audit-hash/file",
            &root,
            Some(json!({"input": input})),
        )?;
        Ok(answer["data"]["hash"]
            .as_str()
            .context("no hash")?
            .to_string())
    };
    let hash_before = hash_of(&controller, "a value")?;
    ok(
        &controller,
        "PUT",
        "sys/policies/acl/otp",
        &root,
        Some(json!({"policy": "path \"ssh/creds/otp\" { capabilities = [\"update\"] }"})),
    )?;
    ok(
        &controller,
        "POST",
        "ssh/roles/otp",
        &root,
        Some(
            json!({"key_type": "otp", "default_user": "app1", "cidr_list": "192.0.2.0/24", "ttl": "3s"}),
        ),
    )?;
    let (kept, _) = create_token(&controller, &root, json!({"policies": ["otp"]}))?;
    let (revoked, _) = create_token(&controller, &root, json!({"policies": ["otp"]}))?;
    ok(
        &controller,
        "POST",
        "auth/token/revoke",
        &root,
        Some(json!({"token": revoked})),
    )?;
    let (_, lease) = otp_lease(&controller, &kept)?;
    assert!(lease_exists(&controller, &lease)?);

    // Stop cleanly, stay down past the lease's TTL, come back on the same store.
    controller.process.signal("TERM")?;
    controller.process.wait_exit(Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs(4));
    let dir = std::mem::replace(&mut controller.dir, tempfile::tempdir()?);
    let controller = Controller::start_config(dir, &config, &root)?;

    let me = ok(&controller, "GET", "auth/token/lookup-self", &kept, None)?;
    assert_eq!(me["data"]["policies"], json!(["default", "otp"]));
    let (status, _) = curl(
        &controller,
        "GET",
        "auth/token/lookup-self",
        Some(&revoked),
        None,
    )?;
    assert_eq!(status, 403, "a revoked token came back");
    let policy = ok(&controller, "GET", "sys/policies/acl/otp", &root, None)?;
    assert!(
        policy["data"]["policy"]
            .as_str()
            .is_some_and(|text| text.contains("ssh/creds/otp"))
    );
    assert_eq!(
        hash_of(&controller, "a value")?,
        hash_before,
        "the audit device's HMAC key changed"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while lease_exists(&controller, &lease)? {
        assert!(
            Instant::now() < deadline,
            "a lease that expired during the downtime was not swept after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The audit device kept logging after the restart, request and response alike.
    let text = std::fs::read_to_string(&log)?;
    let after: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(after.iter().any(|line| line["type"] == "response"
        && line["request"]["path"] == "sys/policies/acl/otp"
        && line["request"]["operation"] == "read"));
    assert!(!text.contains(&kept) && !text.contains(&root));
    Ok(())
}
