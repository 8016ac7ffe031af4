//! Password policies over HTTPS on a local dev controller (issue 7): write, read, list and
//! generate as Vault does; impossible policies refused with a 400 saying why; OS engine
//! configs, hosts and accounts may name only a policy that exists, and a policy in use cannot
//! be deleted.

mod support;

use anyhow::{Context, Result};
use serde_json::json;
use support::Controller;
use support::http::request;

const POLICY: &str = r#"length = 20

rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}

rule "charset" {
  charset = "0123456789"
  min-chars = 3
}

rule "charset" {
  charset = "!@#%"
  min-chars = 1
}
"#;

/// Does `password` obey [`POLICY`]?
fn obeys_policy(password: &str) -> bool {
    let count = |set: &str| password.chars().filter(|c| set.contains(*c)).count();
    let lower = count("abcdefghijklmnopqrstuvwxyz");
    let digits = count("0123456789");
    let symbols = count("!@#%");
    password.chars().count() == 20
        && lower + digits + symbols == 20
        && lower >= 2
        && digits >= 3
        && symbols >= 1
}

#[test]
fn policies_are_validated_generate_obeying_passwords_and_gate_the_os_engine() -> Result<()> {
    let controller = Controller::start_dev()?;

    let written = request(
        &controller,
        "POST",
        "sys/policies/password/web",
        Some(&json!({ "policy": POLICY })),
    )?;
    assert_eq!(written.status, 204, "{}", written.text);
    let read = request(&controller, "GET", "sys/policies/password/web", None)?;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json["data"]["policy"], POLICY);
    let listed = request(&controller, "LIST", "sys/policies/password", None)?;
    assert_eq!(
        listed.json["data"]["keys"],
        json!(["web"]),
        "{}",
        listed.text
    );

    let mut seen = std::collections::HashSet::new();
    for _ in 0..25 {
        let generated = request(
            &controller,
            "GET",
            "sys/policies/password/web/generate",
            None,
        )?;
        assert_eq!(generated.status, 200, "{}", generated.text);
        let password = generated.json["data"]["password"]
            .as_str()
            .context("generate answered no password")?
            .to_string();
        assert!(obeys_policy(&password), "{password} breaks the policy");
        seen.insert(password);
    }
    assert_eq!(seen.len(), 25, "generated passwords repeat");

    // One-line blocks, as Vault's older parser takes them.
    let one_line = "length = 6\nrule \"charset\" { charset = \"xyz\" min-chars = 6 }";
    let written = request(
        &controller,
        "POST",
        "sys/policies/password/one-line",
        Some(&json!({ "policy": one_line })),
    )?;
    assert_eq!(written.status, 204, "{}", written.text);
    let generated = request(
        &controller,
        "GET",
        "sys/policies/password/one-line/generate",
        None,
    )?;
    let password = generated.json["data"]["password"].as_str().unwrap_or("");
    assert!(
        password.len() == 6 && password.chars().all(|c| "xyz".contains(c)),
        "{}",
        generated.text
    );
    let deleted = request(
        &controller,
        "DELETE",
        "sys/policies/password/one-line",
        None,
    )?;
    assert_eq!(deleted.status, 204, "{}", deleted.text);

    // Impossible policies: a 400 that says why, and nothing stored.
    let too_many = "length = 4\nrule \"charset\" {\n  charset = \"ab\"\n  min-chars = 3\n}\nrule \"charset\" {\n  charset = \"12\"\n  min-chars = 2\n}\n";
    let refused = request(
        &controller,
        "POST",
        "sys/policies/password/tight",
        Some(&json!({ "policy": too_many })),
    )?;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.first_error(),
        "the rules' min-chars add up to 5, more than length = 4: no password can satisfy them"
    );
    for (policy, reason) in [
        (
            "length = 0\nrule \"charset\" {\n  charset = \"ab\"\n}\n",
            "'length' must be a whole number between 4 and 256, got 0",
        ),
        (
            "length = 12\nrule \"charset\" {\n  charset = \"\"\n}\n",
            "charset is empty",
        ),
        ("length = 12\n", "no rules"),
    ] {
        let refused = request(
            &controller,
            "POST",
            "sys/policies/password/bad",
            Some(&json!({ "policy": policy })),
        )?;
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert!(
            refused.first_error().contains(reason),
            "{} does not say {reason}",
            refused.first_error()
        );
    }
    let missing = request(
        &controller,
        "GET",
        "sys/policies/password/tight/generate",
        None,
    )?;
    assert_eq!(missing.status, 404, "{}", missing.text);

    // The OS engine names only policies that exist.
    let host = json!({
        "address": "192.0.2.10",
        "site": "dc1",
        "ssh_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d",
    });
    let mut with_unknown = host.clone();
    with_unknown["password_policy"] = json!("nope");
    let refused = request(&controller, "POST", "os/hosts/web-1", Some(&with_unknown))?;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused
            .first_error()
            .contains("field 'password_policy': no password policy named 'nope'"),
        "{}",
        refused.first_error()
    );
    let created = request(&controller, "POST", "os/hosts/web-1", Some(&host))?;
    assert_eq!(created.status, 204, "{}", created.text);

    let account = |policy: &str| {
        json!({
            "username": "app",
            "password": "App-initial-1",
            "verify_connection": false,
            "password_policy": policy,
        })
    };
    let refused = request(
        &controller,
        "POST",
        "os/hosts/web-1/accounts/app",
        Some(&account("nope")),
    )?;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused
            .first_error()
            .contains("no password policy named 'nope'"),
        "{}",
        refused.first_error()
    );
    let not_created = request(&controller, "GET", "os/hosts/web-1/accounts/app", None)?;
    assert_eq!(not_created.status, 404, "{}", not_created.text);

    let created = request(
        &controller,
        "POST",
        "os/hosts/web-1/accounts/app",
        Some(&account("web")),
    )?;
    assert_eq!(created.status, 204, "{}", created.text);
    let read = request(&controller, "GET", "os/hosts/web-1/accounts/app", None)?;
    assert_eq!(read.json["data"]["password_policy"], "web", "{}", read.text);

    let refused = request(
        &controller,
        "POST",
        "os/config",
        Some(&json!({ "password_policy": "nope" })),
    )?;
    assert_eq!(refused.status, 400, "{}", refused.text);

    // In use: the delete is refused and names the user; once unused it goes.
    let refused = request(&controller, "DELETE", "sys/policies/password/web", None)?;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.first_error().contains("in use by os/web-1/app"),
        "{}",
        refused.first_error()
    );
    let cleared = request(
        &controller,
        "POST",
        "os/hosts/web-1/accounts/app",
        Some(&json!({ "password_policy": "" })),
    )?;
    assert_eq!(cleared.status, 204, "{}", cleared.text);
    let deleted = request(&controller, "DELETE", "sys/policies/password/web", None)?;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let listed = request(&controller, "LIST", "sys/policies/password", None)?;
    let keys = listed.json["data"]["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(keys.is_empty(), "{}", listed.text);
    Ok(())
}
