//! Shared by the `core_services_*` scenarios: curl against a local controller (status and
//! parsed body), creating tokens, and looking leases up.
//!
//! Owns building requests only. Must not assert anything about Rotor's behaviour beyond
//! "this request succeeded" where a helper says so.
#![allow(dead_code)]

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::support::Controller;

/// Runs curl; answers (status, parsed body or Null).
pub fn curl(
    controller: &Controller,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    curl_with(controller, method, path, token, body, &[])
}

/// Like [`curl`], sending `path` exactly as written (`/./` and `//` kept), as an attacker's
/// client would.
pub fn curl_path_as_is(
    controller: &Controller,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Value)> {
    curl_with(controller, method, path, token, None, &["--path-as-is"])
}

pub fn curl_with(
    controller: &Controller,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    extra_args: &[&str],
) -> Result<(u16, Value)> {
    let mut command = Command::new("curl");
    command
        .args(extra_args)
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
        command.args(["--data-binary", &body.to_string()]);
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

pub fn first_error(body: &Value) -> String {
    body["errors"][0].as_str().unwrap_or("").to_string()
}

/// A request that must succeed (2xx); answers the body.
pub fn ok(
    controller: &Controller,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value> {
    let (status, answer) = curl(controller, method, path, Some(token), body.as_ref())?;
    if !(200..300).contains(&status) {
        bail!("{method} {path} answered {status}: {answer}");
    }
    Ok(answer)
}

/// Creates a token as `creator`; answers (token, auth block).
pub fn create_token(
    controller: &Controller,
    creator: &str,
    body: Value,
) -> Result<(String, Value)> {
    let answer = ok(controller, "POST", "auth/token/create", creator, Some(body))?;
    let auth = answer["auth"].clone();
    let token = auth["client_token"]
        .as_str()
        .context("no client_token")?
        .to_string();
    Ok((token, auth))
}

pub fn lease_exists(controller: &Controller, lease_id: &str) -> Result<bool> {
    let (status, body) = curl(
        controller,
        "PUT",
        "sys/leases/lookup",
        Some(&controller.token),
        Some(&json!({"lease_id": lease_id})),
    )?;
    match status {
        200 => Ok(true),
        400 if first_error(&body).contains("lease not found") => Ok(false),
        other => bail!("sys/leases/lookup answered {other}: {body}"),
    }
}

/// One OTP from `ssh/creds/otp` as `token`: (otp, lease id).
pub fn otp_lease(controller: &Controller, token: &str) -> Result<(String, String)> {
    let answer = ok(
        controller,
        "POST",
        "ssh/creds/otp",
        token,
        Some(json!({"ip": "192.0.2.7"})),
    )?;
    let key = answer["data"]["key"]
        .as_str()
        .context("no key")?
        .to_string();
    let lease = answer["lease_id"]
        .as_str()
        .context("no lease_id")?
        .to_string();
    assert!(lease.starts_with("ssh/creds/otp/"), "{lease}");
    Ok((key, lease))
}
