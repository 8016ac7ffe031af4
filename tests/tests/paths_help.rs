//! Issue 15 ("Paths as data, complete"), end to end over HTTPS against `rotor server -dev`:
//! `GET /v1/PATH?help=1` answers Vault's help built from the path table (any valid token, no
//! policy needed; never without a token), `rotor path-help PATH` prints it as `vault
//! path-help` does, and `lazy_rotation`, once read but undeclared, is accepted on an account
//! without the "unrecognized parameters" warning.

mod core_common;
mod support;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use support::Controller;
use support::http::request;

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d";

/// `GET /v1/<path_and_query>` with `token` (or none); answers (status, parsed body).
fn get_as(
    controller: &Controller,
    path_and_query: &str,
    token: Option<&str>,
) -> Result<(u16, Value)> {
    core_common::curl(controller, "GET", path_and_query, token, None)
}

#[test]
fn help_from_the_tables_over_https_and_in_the_cli() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();

    // Vault's shape: bare JSON with the help text and an OpenAPI document.
    let (status, body) = get_as(&controller, "os/hosts/web-01?help=1", Some(&root))?;
    assert_eq!(status, 200, "{body}");
    let help = body["help"].as_str().context("no help text")?;
    assert!(help.contains("Request:        hosts/web-01\n"), "{help}");
    assert!(help.contains("Matching Route: hosts/{host}\n"), "{help}");
    assert!(help.contains("## PARAMETERS\n"), "{help}");
    assert!(help.contains("\n    ssh_host_key (string)\n"), "{help}");
    assert!(help.contains("\n    port (int)\n"), "{help}");
    assert!(help.contains("## DESCRIPTION\n"), "{help}");
    assert!(
        body["openapi"]["paths"]["/hosts/{host}"]["post"]["requestBody"].is_object(),
        "{body}"
    );

    // Root-protected paths say so in their OpenAPI document.
    let (status, body) = get_as(&controller, "sys/audit/file?help=1", Some(&root))?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["openapi"]["paths"]["/audit/{path}"]["x-vault-sudo"], true,
        "{body}"
    );

    // Help needs a valid token, even on an unauthenticated path, but no policy on the path.
    let (status, _) = get_as(&controller, "os/hosts/web-01?help=1", None)?;
    assert_eq!(status, 403);
    let (status, _) = get_as(&controller, "sys/health?help=1", Some("rtr.not-a-token"))?;
    assert_eq!(status, 403);
    let created = request(
        &controller,
        "POST",
        "auth/token/create",
        Some(&json!({"policies": ["default"]})),
    )?;
    assert_eq!(created.status, 200, "{}", created.text);
    let limited = created.json["auth"]["client_token"]
        .as_str()
        .context("no client token")?
        .to_string();
    let (status, _) = get_as(&controller, "os/hosts/web-01", Some(&limited))?;
    assert_eq!(status, 403, "the default policy does not read hosts");
    let (status, body) = get_as(&controller, "os/hosts/web-01?help=1", Some(&limited))?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_as(&controller, "os/no/such/path?help=1", Some(&root))?;
    assert_eq!(status, 404, "{body}");

    // The CLI prints the same text.
    let output = controller.cli(&["path-help", "os/hosts/x"])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Request:        hosts/x\n"), "{stdout}");
    assert!(
        stdout.contains("Matching Route: hosts/{host}\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\n    address (string)\n"), "{stdout}");
    assert!(stdout.contains("## DESCRIPTION"), "{stdout}");
    let output = controller.cli(&["path-help", "-format=json", "os/hosts/x/accounts/app"])?;
    assert!(output.status.success());
    let answer: Value = serde_json::from_slice(&output.stdout)?;
    assert!(
        answer["help"]
            .as_str()
            .is_some_and(|help| help.contains("\n    lazy_rotation (bool)\n")),
        "{answer}"
    );
    let output = controller.cli(&["path-help", "os/no/such/path"])?;
    assert_eq!(output.status.code(), Some(2), "the server refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported path"));

    // lazy_rotation is declared now: accepted without a warning, and kept.
    let host = request(
        &controller,
        "POST",
        "os/hosts/web",
        Some(&json!({"address": "192.0.2.10", "site": "dc1", "ssh_host_key": HOST_KEY})),
    )?;
    assert!(host.status == 200 || host.status == 204, "{}", host.text);
    let account = request(
        &controller,
        "POST",
        "os/hosts/web/accounts/app",
        Some(&json!({
            "password": "Initial-Secret-1",
            "verify_connection": false,
            "lazy_rotation": true,
        })),
    )?;
    assert_eq!(
        account.status, 204,
        "no warnings expected: {}",
        account.text
    );
    let read = request(&controller, "GET", "os/hosts/web/accounts/app", None)?;
    assert_eq!(read.json["data"]["lazy_rotation"], true, "{}", read.text);
    Ok(())
}
