//! Foundation, end to end over HTTPS with curl: Vault's envelope and error shapes, both
//! token headers, LIST and `?list=true`, `sys/health` without a token, `sys/mounts`, and
//! clear errors for garbage JSON, unknown mount types, unknown paths and wrong methods.

mod support;

use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;
use support::Controller;

/// Runs curl; answers (status, parsed body or Null).
fn curl(
    controller: &Controller,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, Value)> {
    let mut command = Command::new("curl");
    command
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
            &controller.ca_file,
            "-X",
            method,
        ])
        .arg(format!("{}/v1/{path}", controller.address));
    if let Some(token) = token {
        command.args(["-H", &format!("X-Vault-Token: {token}")]);
    }
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let output = command
        .output()
        .context("running curl (is it installed?)")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').context("curl printed no status")?;
    let status: u16 = status.trim().parse().context("bad status")?;
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or(Value::String(body.into()))
    };
    Ok((status, value))
}

fn first_error(body: &Value) -> String {
    body["errors"][0].as_str().unwrap_or("").to_string()
}

#[test]
fn vault_shapes_and_clear_errors() -> Result<()> {
    let controller = Controller::start_dev()?;
    let token = controller.token.clone();

    let (status, body) = curl(&controller, "GET", "sys/health", None, None)?;
    assert_eq!(status, 200);
    assert_eq!(body["initialized"], true);
    assert_eq!(body["sealed"], false);

    let (status, body) = curl(&controller, "GET", "sys/mounts", None, None)?;
    assert_eq!(
        (status, first_error(&body).as_str()),
        (403, "permission denied")
    );
    let (status, _) = curl(
        &controller,
        "GET",
        "sys/mounts",
        Some("rtr.not-a-token"),
        None,
    )?;
    assert_eq!(status, 403);

    let (status, body) = curl(&controller, "GET", "sys/mounts", Some(&token), None)?;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["os/"]["type"], "os");
    assert_eq!(body["data"]["ssh/"]["type"], "ssh");
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(body.get(key).is_some(), "envelope lacks {key}: {body}");
    }

    // Authorization: Bearer works as well as X-Vault-Token.
    let output = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &controller.ca_file,
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .arg(format!("{}/v1/sys/mounts", controller.address))
        .output()?;
    let body: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(body["data"]["os/"]["type"], "os", "{body}");

    // Mount, list both ways, unmount.
    let (status, _) = curl(
        &controller,
        "POST",
        "sys/mounts/team-a/os",
        Some(&token),
        Some(r#"{"type":"os"}"#),
    )?;
    assert_eq!(status, 204);
    let (status, body) = curl(&controller, "GET", "sys/mounts", Some(&token), None)?;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["team-a/os/"]["type"], "os");
    let (status, _) = curl(
        &controller,
        "DELETE",
        "sys/mounts/team-a/os",
        Some(&token),
        None,
    )?;
    assert_eq!(status, 204);

    let (status, body) = curl(
        &controller,
        "POST",
        "sys/mounts/kv",
        Some(&token),
        Some(r#"{"type":"kv"}"#),
    )?;
    assert_eq!(status, 400);
    assert!(
        first_error(&body).contains("unknown secrets engine type 'kv'"),
        "{body}"
    );

    let (status, body) = curl(
        &controller,
        "POST",
        "sys/mounts/x",
        Some(&token),
        Some("{not json"),
    )?;
    assert_eq!(status, 400);
    assert!(
        first_error(&body).contains("failed to parse JSON"),
        "{body}"
    );

    let (status, body) = curl(
        &controller,
        "POST",
        "sys/mounts/x",
        Some(&token),
        Some("{}"),
    )?;
    assert_eq!(status, 400);
    assert!(
        first_error(&body).contains("missing required field 'type'"),
        "{body}"
    );

    let (status, body) = curl(&controller, "GET", "nothing/here", Some(&token), None)?;
    assert_eq!(status, 404);
    assert!(first_error(&body).contains("nothing/here"), "{body}");

    let (status, body) = curl(&controller, "DELETE", "sys/health", Some(&token), None)?;
    assert_eq!(status, 405);
    assert!(
        first_error(&body).contains("does not support delete"),
        "{body}"
    );

    let (status, _) = curl(&controller, "PATCH", "sys/mounts", Some(&token), None)?;
    assert_eq!(status, 405);

    // LIST and GET ?list=true agree.
    let (status, listed) = curl(&controller, "LIST", "agents", Some(&token), None)?;
    assert_eq!(status, 200, "{listed}");
    let (status, listed_get) = curl(&controller, "GET", "agents?list=true", Some(&token), None)?;
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["keys"], listed_get["data"]["keys"]);

    // The CLI prints the server's message and exits non-zero.
    let output = controller.cli(&["write", "sys/mounts/kv", "type=kv"])?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown secrets engine type"));
    let output = controller.cli(&["read", "-field=type", "sys/mounts/os"])?;
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "os");
    let output = controller.cli(&["read", "--format=table", "sys/mounts/os"])?;
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("Key"),
        "{output:?}"
    );
    Ok(())
}
