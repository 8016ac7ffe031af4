//! Issue 20, auth methods end to end over HTTPS with curl and the `rotor` CLI against
//! `rotor server -dev`: AppRole (role, role ID, a secret ID handed over wrapped, login, the
//! token reading an OS account's password and nothing more), userpass (argon2id password,
//! login from the CLI), and every bad input refused with Vault's message, audited (secret ID
//! and password only as HMACs) and granting nothing: a wrong, unknown, used-up or expired
//! secret ID, a login from outside the bound CIDRs, a wrong password, a wrapping token used
//! twice, repeated guessing (429). A token bound to a CIDR block works only from inside it;
//! the CLI hands a secret ID over with `-wrap-ttl` and `rotor unwrap`, which refuses it twice.
//!
//! Bound CIDRs are proved on loopback: the controller listens on 127.0.0.1 and curl binds
//! its source address to 127.0.0.2 (`--interface`), which a role bound to 127.0.0.1/32
//! refuses. Login counts show in `sys/metrics`.

mod core_common;
mod support;

use anyhow::{Context, Result, bail};
use core_common::{curl, curl_with, first_error, ok};
use serde_json::{Value, json};
use support::Controller;

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d";
const APP_PASSWORD: &str = "App-pw-3c1d9e7a44";
const MGMT_PASSWORD: &str = "Mgmt-pw-8b2f6a0c17";
const ALICE_PASSWORD: &str = "alice-Pa55-7e9d1c";

const APPS_POLICY: &str = r#"path "os/hosts/web/accounts/app/creds" { capabilities = ["read"] }"#;

fn seed(controller: &Controller) -> Result<()> {
    let root = controller.token.as_str();
    ok(
        controller,
        "POST",
        "os/hosts/web",
        root,
        Some(json!({"address": "192.0.2.10", "site": "dc1", "ssh_host_key": HOST_KEY})),
    )?;
    for (account, username, password) in [
        ("app", "app", APP_PASSWORD),
        ("mgmt-root", "mgmtroot", MGMT_PASSWORD),
    ] {
        ok(
            controller,
            "POST",
            &format!("os/hosts/web/accounts/{account}"),
            root,
            Some(json!({"username": username, "password": password, "verify_connection": false})),
        )?;
    }
    ok(
        controller,
        "PUT",
        "sys/policies/acl/apps",
        root,
        Some(json!({"policy": APPS_POLICY})),
    )?;
    Ok(())
}

fn cli_ok(controller: &Controller, args: &[&str]) -> Result<String> {
    let output = controller.cli(args)?;
    if !output.status.success() {
        bail!(
            "rotor {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// POST from the source address `from` (curl `--interface`), without a token.
fn post_from(
    controller: &Controller,
    from: &str,
    path: &str,
    body: &Value,
) -> Result<(u16, Value)> {
    curl_with(
        controller,
        "POST",
        path,
        None,
        Some(body),
        &["--interface", from],
    )
}

fn expect_refusal(answer: (u16, Value), status: u16, message: &str) -> Result<()> {
    let (got, body) = answer;
    if got != status || first_error(&body) != message || !body["auth"].is_null() {
        bail!("expected {status} '{message}', got {got}: {body}");
    }
    Ok(())
}

fn secret_id(controller: &Controller, role: &str, body: Value) -> Result<String> {
    let answer = ok(
        controller,
        "POST",
        &format!("auth/approle/role/{role}/secret-id"),
        &controller.token,
        Some(body),
    )?;
    Ok(answer["data"]["secret_id"]
        .as_str()
        .context("no secret_id")?
        .to_string())
}

#[test]
fn approle_and_userpass_log_in_and_refuse_everything_else() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    seed(&controller)?;
    let audit_log = controller.dir.path().join("audit.log");
    ok(
        &controller,
        "PUT",
        "sys/audit/file",
        &root,
        Some(json!({"type": "file", "options": {"file_path": audit_log.display().to_string()}})),
    )?;

    // Enable both methods with the CLI, as vault spells it.
    let enabled = cli_ok(&controller, &["auth", "enable", "approle"])?;
    assert!(
        enabled.contains("Success! Enabled approle auth method at: approle/"),
        "{enabled}"
    );
    cli_ok(&controller, &["auth", "enable", "userpass"])?;
    let listed = cli_ok(&controller, &["auth", "list"])?;
    for path in ["approle/", "token/", "userpass/"] {
        assert!(listed.contains(path), "{path} missing from:\n{listed}");
    }

    // A role bound to the controller's own loopback address.
    ok(
        &controller,
        "POST",
        "auth/approle/role/web",
        &root,
        Some(
            json!({"token_policies": ["apps"], "token_ttl": "1h", "secret_id_bound_cidrs": ["127.0.0.1/32"]}),
        ),
    )?;
    let role_id = ok(
        &controller,
        "GET",
        "auth/approle/role/web/role-id",
        &root,
        None,
    )?["data"]["role_id"]
        .as_str()
        .context("role_id")?
        .to_string();

    // The secret ID travels wrapped: the answer carries only a wrapping token.
    let (status, wrapped) = curl_with(
        &controller,
        "POST",
        "auth/approle/role/web/secret-id",
        Some(&root),
        Some(&json!({})),
        &["-H", "X-Vault-Wrap-TTL: 120s"],
    )?;
    assert_eq!(status, 200, "{wrapped}");
    assert!(wrapped["data"].is_null(), "{wrapped}");
    assert_eq!(wrapped["wrap_info"]["ttl"], 120);
    assert_eq!(
        wrapped["wrap_info"]["creation_path"],
        "auth/approle/role/web/secret-id"
    );
    let wrapping_token = wrapped["wrap_info"]["token"]
        .as_str()
        .context("wrapping token")?
        .to_string();
    let lookup = ok(
        &controller,
        "POST",
        "sys/wrapping/lookup",
        &root,
        Some(json!({"token": wrapping_token})),
    )?;
    assert_eq!(lookup["data"]["creation_ttl"], 120);
    // Unwrapped once, with the wrapping token as the request's token (no API token at all).
    let unwrapped = ok(
        &controller,
        "POST",
        "sys/wrapping/unwrap",
        &wrapping_token,
        None,
    )?;
    let secret = unwrapped["data"]["secret_id"]
        .as_str()
        .context("unwrapped secret_id")?
        .to_string();
    // A second unwrap is refused: somebody else already has it.
    let again = curl(
        &controller,
        "POST",
        "sys/wrapping/unwrap",
        Some(&root),
        Some(&json!({"token": wrapping_token})),
    )?;
    expect_refusal(again, 400, "wrapping token is not valid or does not exist")?;

    // From outside the role's CIDRs: refused, nothing spent.
    let login_body = json!({"role_id": role_id, "secret_id": secret});
    let outside = post_from(&controller, "127.0.0.2", "auth/approle/login", &login_body)?;
    expect_refusal(
        outside,
        400,
        "source address \"127.0.0.2\" unauthorized through CIDR restrictions on the secret ID",
    )?;
    // Wrong and unknown: the same answer.
    expect_refusal(
        post_from(
            &controller,
            "127.0.0.1",
            "auth/approle/login",
            &json!({"role_id": role_id, "secret_id": "00000000-0000-0000-0000-000000000000"}),
        )?,
        400,
        "invalid role or secret ID",
    )?;
    expect_refusal(
        post_from(
            &controller,
            "127.0.0.1",
            "auth/approle/login",
            &json!({"role_id": "no-such-role", "secret_id": secret}),
        )?,
        400,
        "invalid role or secret ID",
    )?;
    // The right pair from the right address: a token that reads the app's password only.
    let (status, login) = post_from(&controller, "127.0.0.1", "auth/approle/login", &login_body)?;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["auth"]["policies"], json!(["apps", "default"]));
    assert_eq!(login["auth"]["lease_duration"], 3600);
    let app_token = login["auth"]["client_token"]
        .as_str()
        .context("token")?
        .to_string();
    let creds = ok(
        &controller,
        "GET",
        "os/hosts/web/accounts/app/creds",
        &app_token,
        None,
    )?;
    assert_eq!(creds["data"]["password"], APP_PASSWORD);
    let (status, _) = curl(
        &controller,
        "GET",
        "os/hosts/web/accounts/mgmt-root/creds",
        Some(&app_token),
        None,
    )?;
    assert_eq!(status, 403);

    // Used up and expired secret IDs.
    ok(
        &controller,
        "POST",
        "auth/approle/role/once",
        &root,
        Some(json!({"token_policies": "apps", "secret_id_num_uses": 1})),
    )?;
    let once_role = ok(
        &controller,
        "GET",
        "auth/approle/role/once/role-id",
        &root,
        None,
    )?["data"]["role_id"]
        .as_str()
        .context("role_id")?
        .to_string();
    let single = secret_id(&controller, "once", json!({}))?;
    let body = json!({"role_id": once_role, "secret_id": single});
    assert_eq!(
        post_from(&controller, "127.0.0.1", "auth/approle/login", &body)?.0,
        200
    );
    expect_refusal(
        post_from(&controller, "127.0.0.1", "auth/approle/login", &body)?,
        400,
        "invalid role or secret ID",
    )?;
    let short = secret_id(&controller, "once", json!({"ttl": "1s"}))?;
    // Past its one-second life (a slower machine only makes it older).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    expect_refusal(
        post_from(
            &controller,
            "127.0.0.1",
            "auth/approle/login",
            &json!({"role_id": once_role, "secret_id": short}),
        )?,
        400,
        "invalid role or secret ID",
    )?;

    // userpass: a user whose token reads the app's password; the CLI logs in with it.
    ok(
        &controller,
        "POST",
        "auth/userpass/users/alice",
        &root,
        Some(json!({"password": ALICE_PASSWORD, "token_policies": "apps"})),
    )?;
    expect_refusal(
        post_from(
            &controller,
            "127.0.0.1",
            "auth/userpass/login/alice",
            &json!({"password": "wrong"}),
        )?,
        400,
        "invalid username or password",
    )?;
    expect_refusal(
        post_from(
            &controller,
            "127.0.0.1",
            "auth/userpass/login/mallory",
            &json!({"password": ALICE_PASSWORD}),
        )?,
        400,
        "invalid username or password",
    )?;
    let password_pair = format!("password={ALICE_PASSWORD}");
    let cli_login = controller.cli(&[
        "login",
        "-method=userpass",
        "-no-store",
        "-format=json",
        "username=alice",
        &password_pair,
    ])?;
    assert!(
        cli_login.status.success(),
        "{}",
        String::from_utf8_lossy(&cli_login.stderr)
    );
    let answer: Value = serde_json::from_slice(&cli_login.stdout).context("login JSON")?;
    let alice_token = answer["auth"]["client_token"]
        .as_str()
        .context("alice token")?
        .to_string();
    assert_eq!(answer["auth"]["policies"], json!(["apps", "default"]));
    // Without password=, the password is read (a line of stdin here; hidden on a terminal).
    let mut prompted = std::process::Command::new(support::binary("rotor")?)
        .args([
            "login",
            "-method=userpass",
            "-no-store",
            "-field=token",
            "username=alice",
        ])
        .env("ROTOR_ADDR", &controller.address)
        .env("ROTOR_CACERT", &controller.ca_file)
        .env_remove("ROTOR_TOKEN")
        .env_remove("VAULT_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = prompted.stdin.take().context("stdin")?;
        writeln!(stdin, "{ALICE_PASSWORD}")?;
    }
    let prompted = prompted.wait_with_output()?;
    assert!(
        prompted.status.success(),
        "{}",
        String::from_utf8_lossy(&prompted.stderr)
    );
    assert!(
        String::from_utf8_lossy(&prompted.stdout)
            .trim()
            .starts_with("rtr.")
    );
    let creds = ok(
        &controller,
        "GET",
        "os/hosts/web/accounts/app/creds",
        &alice_token,
        None,
    )?;
    assert_eq!(creds["data"]["password"], APP_PASSWORD);
    let (status, _) = curl(
        &controller,
        "GET",
        "os/hosts/web/accounts/mgmt-root/creds",
        Some(&alice_token),
        None,
    )?;
    assert_eq!(status, 403);

    // A token bound to 127.0.0.1/32 (token_bound_cidrs) works only from there.
    ok(
        &controller,
        "POST",
        "auth/userpass/users/bob",
        &root,
        Some(
            json!({"password": ALICE_PASSWORD, "token_policies": "apps", "token_bound_cidrs": "127.0.0.1/32"}),
        ),
    )?;
    let (status, bob) = post_from(
        &controller,
        "127.0.0.1",
        "auth/userpass/login/bob",
        &json!({"password": ALICE_PASSWORD}),
    )?;
    assert_eq!(status, 200, "{bob}");
    let bob_token = bob["auth"]["client_token"]
        .as_str()
        .context("bob token")?
        .to_string();
    let (status, _) = curl_with(
        &controller,
        "GET",
        "os/hosts/web/accounts/app/creds",
        Some(&bob_token),
        None,
        &["--interface", "127.0.0.2"],
    )?;
    assert_eq!(status, 403, "a bound token used from outside its CIDRs");
    let (status, _) = curl_with(
        &controller,
        "GET",
        "os/hosts/web/accounts/app/creds",
        Some(&bob_token),
        None,
        &["--interface", "127.0.0.1"],
    )?;
    assert_eq!(status, 200, "a bound token used from inside its CIDRs");

    // The CLI's -wrap-ttl and unwrap: a secret ID handed over as a wrapping token.
    let wrapping = cli_ok(
        &controller,
        &[
            "write",
            "-wrap-ttl=60s",
            "-field=wrapping_token",
            "-force",
            "auth/approle/role/once/secret-id",
        ],
    )?;
    let wrapping = wrapping.trim().to_string();
    assert!(wrapping.starts_with("rtr."), "{wrapping}");
    let handed = cli_ok(&controller, &["unwrap", "-field=secret_id", &wrapping])?;
    let handed = handed.trim().to_string();
    assert_eq!(handed.len(), 36, "a secret ID: {handed}");
    let twice = controller.cli(&["unwrap", &wrapping])?;
    assert_eq!(twice.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&twice.stderr)
            .contains("wrapping token is not valid or does not exist"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );

    // Guessing from one address is slowed down; alice from her own address is not.
    for _ in 0..5 {
        let (status, _) = post_from(
            &controller,
            "127.0.0.3",
            "auth/userpass/login/alice",
            &json!({"password": "guess"}),
        )?;
        assert_eq!(status, 400);
    }
    let (status, body) = post_from(
        &controller,
        "127.0.0.3",
        "auth/userpass/login/alice",
        &json!({"password": ALICE_PASSWORD}),
    )?;
    assert_eq!(status, 429, "{body}");
    assert!(first_error(&body).contains("retry in"), "{body}");
    assert_eq!(
        post_from(
            &controller,
            "127.0.0.1",
            "auth/userpass/login/alice",
            &json!({"password": ALICE_PASSWORD})
        )?
        .0,
        200
    );

    // Metrics count logins by method and outcome.
    let (_, metrics) = curl_with(
        &controller,
        "GET",
        "sys/metrics?format=prometheus",
        Some(&root),
        None,
        &[],
    )?;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "rotor_auth_logins_total{method=\"approle\",outcome=\"success\"} 2",
        "rotor_auth_logins_total{method=\"approle\",outcome=\"refused\"} 1",
        "rotor_auth_logins_total{method=\"userpass\",outcome=\"rate_limited\"} 1",
        "rotor_wrapping_token_reuse_total 2",
    ] {
        assert!(metrics.contains(line), "no '{line}' in:\n{metrics}");
    }

    // The audit log has every refusal, and no secret ID, password or token in clear.
    let text = std::fs::read_to_string(&audit_log).context("audit log")?;
    for secret in [
        secret.as_str(),
        single.as_str(),
        short.as_str(),
        ALICE_PASSWORD,
        wrapping_token.as_str(),
        app_token.as_str(),
        alice_token.as_str(),
        handed.as_str(),
        wrapping.as_str(),
        APP_PASSWORD,
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds a secret in clear ({} characters)",
            secret.len()
        );
    }
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let refused = |path: &str, error: &str| {
        lines.iter().any(|line| {
            line["type"] == "response" && line["request"]["path"] == path && line["error"] == error
        })
    };
    assert!(refused(
        "sys/wrapping/unwrap",
        "wrapping token is not valid or does not exist"
    ));
    assert!(refused("auth/approle/login", "invalid role or secret ID"));
    assert!(refused(
        "auth/userpass/login/alice",
        "invalid username or password"
    ));
    assert!(
        lines
            .iter()
            .any(|line| line["request"]["path"] == "auth/approle/login"
                && line["request"]["remote_address"] == "127.0.0.2"),
        "the refused address is in the audit log"
    );
    assert!(
        lines.iter().any(
            |line| line["request"]["path"] == "auth/approle/role/web/secret-id"
                && line["response"]["wrap_info"]["token"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("hmac-sha256:"))
        ),
        "the wrapped answer's token is audited as an HMAC"
    );

    // Disabling a method deletes its roles: the role ID logs in no more (an anonymous caller
    // gets 403 for a path that does not exist, as for any other).
    cli_ok(&controller, &["auth", "disable", "approle"])?;
    let (status, _) = post_from(&controller, "127.0.0.1", "auth/approle/login", &login_body)?;
    assert_eq!(status, 403);
    let (status, _) = curl(
        &controller,
        "GET",
        "auth/approle/role/web",
        Some(&root),
        None,
    )?;
    assert_eq!(status, 404);
    Ok(())
}
