//! Plain HTTPS requests to a local controller with curl, for scenarios that check status
//! codes and raw bodies (the CLI hides both).
//!
//! Owns building the curl command and splitting status from body. Must not assert anything.

use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use super::Controller;

/// An answer: its status, its body as text, and the body parsed as JSON (Null when empty or
/// not JSON).
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

impl Answer {
    /// The first of Vault's `errors`, or "".
    pub fn first_error(&self) -> String {
        self.json["errors"][0].as_str().unwrap_or("").to_string()
    }
}

/// `method /v1/path` with the controller's root token and an optional JSON body.
pub fn request(
    controller: &Controller,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer> {
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
            "-H",
            &format!("X-Vault-Token: {}", controller.token),
        ])
        .arg(format!("{}/v1/{path}", controller.address));
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
        ]);
    }
    let output = command
        .output()
        .context("running curl (is it installed?)")?;
    let all = String::from_utf8_lossy(&output.stdout).to_string();
    let (text, status) = all.rsplit_once('\n').context("curl printed no status")?;
    let status = status.trim().parse().context("curl printed a bad status")?;
    let json = serde_json::from_str(text).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        text: text.to_string(),
        json,
    })
}
