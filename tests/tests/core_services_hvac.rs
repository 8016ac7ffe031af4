//! Vault's core services driven by hvac, the Python Vault client, against `rotor server -dev`:
//! policies, tokens (children, accessors, use limits, renewal, revocation), capabilities,
//! auth methods (issue 20: AppRole with a wrapped secret ID unwrapped once, its token reading
//! an OS account's creds and its OTP lease revoked with it; userpass; `sys.wrap`/`unwrap`),
//! and a file audit device whose log is then scanned here for every secret the scenario
//! handled (none may appear in clear) and for request/response pairing.
//!
//! The client is `tests/py/hvac_core_services.py`, run with the interpreter in
//! `ROTOR_HVAC_PYTHON` (scripts/test.sh installs hvac into `$ROTOR_CACHE/venv` and exports
//! it), else `python3`. A missing hvac fails this test; only `ROTOR_E2E=skip` skips it then
//! (loudly). With hvac present the test runs whatever ROTOR_E2E says: it needs no containers.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use support::Controller;

const APP_PASSWORD: &str = "App-pw-7f3c9e1b52";
const MGMT_PASSWORD: &str = "Mgmt-pw-0d8a4c6e19";
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d";

fn python() -> String {
    std::env::var("ROTOR_HVAC_PYTHON")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Fails (never skips) when the interpreter cannot import hvac.
fn require_hvac(python: &str) -> Result<()> {
    let output = Command::new(python)
        .args(["-c", "import hvac"])
        .output()
        .with_context(|| format!("running {python}: install Python 3 or set ROTOR_HVAC_PYTHON"))?;
    if !output.status.success() {
        bail!(
            "hvac is not importable by {python}: {}\nrun scripts/test.sh (it installs hvac into $ROTOR_CACHE/venv and exports ROTOR_HVAC_PYTHON), or pip install hvac; ROTOR_E2E=skip skips this test",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py/hvac_core_services.py")
}

fn rotor_ok(controller: &Controller, args: &[&str]) -> Result<()> {
    let output = controller.cli(args)?;
    if !output.status.success() {
        bail!(
            "rotor {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The host `web` with the accounts `app` and `mgmt-root` (no agent: not verified).
fn seed(controller: &Controller) -> Result<()> {
    let key = format!("ssh_host_key={HOST_KEY}");
    rotor_ok(
        controller,
        &[
            "write",
            "os/hosts/web",
            "address=192.0.2.10",
            "site=dc1",
            &key,
        ],
    )?;
    let app = format!("password={APP_PASSWORD}");
    rotor_ok(
        controller,
        &[
            "write",
            "os/hosts/web/accounts/app",
            &app,
            "verify_connection=false",
        ],
    )?;
    let mgmt = format!("password={MGMT_PASSWORD}");
    rotor_ok(
        controller,
        &[
            "write",
            "os/hosts/web/accounts/mgmt-root",
            "username=mgmtroot",
            &mgmt,
            "verify_connection=false",
        ],
    )
}

/// Every request id has exactly one request line and one response line.
fn assert_paired(lines: &[Value]) {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for line in lines {
        let id = line["request"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!id.is_empty(), "audit line without a request id: {line}");
        let entry = counts.entry(id).or_default();
        match line["type"].as_str() {
            Some("request") => entry.0 += 1,
            Some("response") => entry.1 += 1,
            other => panic!("audit line of type {other:?}: {line}"),
        }
    }
    assert!(!counts.is_empty(), "the audit log is empty");
    for (id, (requests, responses)) in &counts {
        assert_eq!(
            (*requests, *responses),
            (1, 1),
            "request {id}: {requests} request lines, {responses} response lines"
        );
    }
}

#[test]
fn hvac_drives_policies_tokens_and_audit() -> Result<()> {
    let python = python();
    if let Err(missing) = require_hvac(&python) {
        // Without hvac this test fails; ROTOR_E2E=skip is the one way to skip it, loudly.
        if rotor_tests::skip::skip_requested("hvac_drives_policies_tokens_and_audit") {
            eprintln!("(hvac is unavailable: {missing:#})");
            return Ok(());
        }
        return Err(missing);
    }
    let controller = Controller::start_dev()?;
    seed(&controller)?;
    let audit_file = controller.dir.path().join("audit.log");
    let secrets_file = controller.dir.path().join("secrets.txt");

    let output = Command::new(&python)
        .arg(script())
        .env("ROTOR_ADDR", &controller.address)
        .env("ROTOR_CACERT", &controller.ca_file)
        .env("ROTOR_ROOT_TOKEN", &controller.token)
        .env("ROTOR_AUDIT_FILE", &audit_file)
        .env("ROTOR_SECRETS_OUT", &secrets_file)
        .env("ROTOR_APP_PASSWORD", APP_PASSWORD)
        .env("ROTOR_MGMT_PASSWORD", MGMT_PASSWORD)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .with_context(|| format!("running {python}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("ALL CHECKS PASSED"),
        "the hvac scenario failed:\n{stdout}\n{stderr}"
    );

    let text = std::fs::read_to_string(&audit_file)
        .with_context(|| format!("reading {}", audit_file.display()))?;
    let created = std::fs::read_to_string(&secrets_file)?;
    let mut secrets: Vec<&str> = created.lines().filter(|line| !line.is_empty()).collect();
    assert!(
        secrets.len() >= 4,
        "the scenario reported its tokens: {secrets:?}"
    );
    secrets.extend([APP_PASSWORD, MGMT_PASSWORD, controller.token.as_str()]);
    for secret in &secrets {
        assert!(
            !text.contains(secret),
            "the audit log holds a secret in clear ({} characters)",
            secret.len()
        );
    }
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("an audit line is not JSON")?;
    assert_paired(&lines);
    // The denials are recorded too: a request the ACL refused has its error response line.
    assert!(
        lines.iter().any(|line| line["type"] == "response"
            && line["error"] == "permission denied"
            && line["request"]["path"] == "os/hosts/web/accounts/mgmt-root/creds"),
        "no denied response for the mgmt-root creds in the audit log"
    );
    Ok(())
}
