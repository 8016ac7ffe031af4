//! No secret in any log line: a full run (controller and agent in containers, logging at
//! debug) enrolls, rotates parent-managed and self-managed accounts on a real host, resets a
//! password, creates a token, issues and verifies an SSH OTP, and issues an SSH key pair;
//! then every secret value the test saw is searched for in the controller's and the
//! agent's logs.

use anyhow::{Context, Result};
use rotor_tests::prelude::*;
use serde_json::Value;

fn string(answer: &Value, pointer: &str) -> Result<String> {
    Ok(answer
        .pointer(pointer)
        .and_then(Value::as_str)
        .with_context(|| format!("no {pointer} in {answer}"))?
        .to_string())
}

#[test]
fn a_full_run_logs_no_secret() -> Result<()> {
    if skip_requested("a_full_run_logs_no_secret") {
        return Ok(());
    }
    let site = Site::new("logs")?;
    let host = site
        .host("logs-1")
        .with_parent("mgmt", "Mgmt-initial-Secret-1")
        .with_user("app1", "App1-initial-Secret-1")
        .with_user("app2", "App2-initial-Secret-1")
        .start()?;
    let rotor = Rotor::start(&[&site])?;
    let mut secrets: Vec<String> = vec![
        "Mgmt-initial-Secret-1".into(),
        "App1-initial-Secret-1".into(),
        "App2-initial-Secret-1".into(),
        rotor.controller().root_token().to_string(),
    ];

    rotor.cli(&[
        "write",
        "os/hosts/logs-1",
        &format!("address={}", host.address()?),
        &format!("site={}", site.name()),
        &format!("ssh_host_key={}", host.host_public_key("ed25519")?),
    ])?;
    let accounts = "os/hosts/logs-1/accounts";
    rotor.cli(&[
        "write",
        &format!("{accounts}/mgmt"),
        "username=mgmt",
        "password=Mgmt-initial-Secret-1",
    ])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/app1"),
        "username=app1",
        "password=App1-initial-Secret-1",
        "parent_ref=mgmt",
    ])?;
    rotor.cli(&[
        "write",
        &format!("{accounts}/app2"),
        "username=app2",
        "password=App2-initial-Secret-1",
    ])?;
    for account in ["app1", "app2", "app1", "mgmt"] {
        rotor.cli(&["write", "-f", &format!("{accounts}/{account}/rotate")])?;
        let creds = rotor.cli_json(&["read", &format!("{accounts}/{account}/creds")])?;
        secrets.push(string(&creds, "/data/password")?);
    }
    let app1 = secrets[secrets.len() - 2].clone();
    assert_password(&host, "app1", &app1);
    rotor.cli(&[
        "write",
        &format!("{accounts}/app2/reset"),
        "password=Reset-known-Secret-1",
    ])?;
    secrets.push("Reset-known-Secret-1".into());

    let token = rotor.cli_json(&["write", "auth/token/create", "policies=default"])?;
    secrets.push(string(&token, "/auth/client_token")?);
    let enrollment = rotor.cli_json(&["write", "agents/enroll", "site=unused"])?;
    secrets.push(string(&enrollment, "/data/token")?);

    rotor.cli(&[
        "write",
        "ssh/roles/otp",
        "key_type=otp",
        "default_user=app1",
        "cidr_list=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
    ])?;
    let creds = rotor.cli_json(&["write", "ssh/creds/otp", &format!("ip={}", host.address()?)])?;
    let otp = string(&creds, "/data/key")?;
    rotor.cli(&["write", "ssh/verify", &format!("otp={otp}")])?;
    secrets.push(otp);

    rotor.cli(&["write", "ssh/config/ca", "key_type=ed25519"])?;
    rotor.cli(&[
        "write",
        "ssh/roles/certs",
        "key_type=ca",
        "allow_user_certificates=true",
        "allowed_users=app1",
        "default_user=app1",
    ])?;
    let issued = rotor.cli_json(&["write", "ssh/issue/certs", "key_type=ed25519"])?;
    let private_key = string(&issued, "/data/private_key")?;
    // The key's body: every base64 line of it must stay out of the logs.
    secrets.extend(
        private_key
            .lines()
            .filter(|line| !line.starts_with("-----") && line.len() > 20)
            .map(String::from),
    );

    let controller_log = rotor.controller().logs()?;
    let agent_logs: Vec<String> = rotor
        .agents()
        .iter()
        .map(|agent| agent.logs())
        .collect::<Result<_>>()?;
    // The scan means something only if the logs cover what was done.
    for expected in [
        "password rotated",
        "issued an SSH OTP",
        "token created",
        "api request",
    ] {
        assert!(
            controller_log.contains(expected),
            "the controller's log has no '{expected}' line, so it proves nothing:\n{controller_log}"
        );
    }
    assert!(
        agent_logs.iter().any(|log| log.lines().count() >= 3),
        "the agents' logs are too thin to prove anything: {agent_logs:?}"
    );
    for (name, log) in std::iter::once(("controller", &controller_log))
        .chain(agent_logs.iter().map(|log| ("agent", log)))
    {
        // Issue 15: logs written anywhere but a terminal carry no colour codes.
        assert!(
            !log.contains('\u{1b}'),
            "the {name}'s log (not a terminal) has terminal escape codes"
        );
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a secret ({} chars, starting {:?}) is in the {name}'s log",
                secret.len(),
                &secret[..4.min(secret.len())]
            );
        }
    }
    Ok(())
}
