//! Vault's core services end to end over HTTPS with curl and the `rotor` CLI, against
//! `rotor server -dev`: the reference's curl recipes for policies and tokens, token rules
//! (default and root policies, expiry and the sweeper, orphans, explicit maximum TTLs),
//! audit devices failing closed (the request answers 500 and performs nothing), the
//! audit-hash of a value equal to the HMAC in the log, and the CLI's login, token, policy
//! and lease commands.

mod core_common;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use core_common::{create_token, curl, first_error, lease_exists, ok, otp_lease};
use serde_json::{Value, json};
use support::{Controller, binary};

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5m6X3b1x9Qm9l5jF0yVQ0P0n7p7q8mY0cZ2b7e6a5d";

fn seed_account(controller: &Controller, account: &str, password: &str) -> Result<()> {
    let root = controller.token.as_str();
    let (status, _) = curl(controller, "GET", "os/hosts/web", Some(root), None)?;
    if status == 404 {
        ok(
            controller,
            "POST",
            "os/hosts/web",
            root,
            Some(json!({"address": "192.0.2.10", "site": "dc1", "ssh_host_key": HOST_KEY})),
        )?;
    }
    ok(
        controller,
        "POST",
        &format!("os/hosts/web/accounts/{account}"),
        root,
        Some(json!({"password": password, "verify_connection": false})),
    )?;
    Ok(())
}

fn audit_lines(path: &Path) -> Result<Vec<Value>> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(|line| serde_json::from_str(line).context("an audit line is not JSON"))
        .collect()
}

fn accessors(controller: &Controller) -> Result<Vec<String>> {
    let answer = ok(
        controller,
        "LIST",
        "auth/token/accessors",
        &controller.token,
        None,
    )?;
    Ok(answer["data"]["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|key| key.as_str().map(String::from))
        .collect())
}

/// The reference's curl recipes (guide 003): write the `apps` policy with PUT
/// sys/policy/apps, create a token with POST auth/token/create, read with it, be denied
/// where the policy denies, revoke it and be refused.
#[test]
fn reference_curl_recipes_for_policies_and_tokens() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    seed_account(&controller, "app", "App-pw-1a2b3c")?;
    seed_account(&controller, "mgmt-root", "Mgmt-pw-4d5e6f")?;

    let payload = json!({
        "policy": "path \"os/hosts/+/accounts/*\" {capabilities = [ \"read\" ]}\npath \"os/hosts/+/accounts/mgmt-*\" { capabilities = [\"deny\"] }"
    });
    let (status, _) = curl(
        &controller,
        "PUT",
        "sys/policy/apps",
        Some(&root),
        Some(&payload),
    )?;
    assert_eq!(status, 204);

    let (token, auth) = create_token(&controller, &root, json!({"policies": ["apps"]}))?;
    assert_eq!(auth["policies"], json!(["apps", "default"]));
    assert_eq!(auth["lease_duration"], 2_764_800, "768h, Vault's default");
    assert_eq!(auth["renewable"], true);
    assert!(auth["accessor"].as_str().is_some_and(|a| !a.is_empty()));

    let creds = ok(
        &controller,
        "GET",
        "os/hosts/web/accounts/app/creds",
        &token,
        None,
    )?;
    assert_eq!(creds["data"]["password"], "App-pw-1a2b3c");
    for denied in [
        "os/hosts/web/accounts/mgmt-root/creds",
        "os/hosts/web/accounts/mgmt-root",
        "sys/mounts",
    ] {
        let (status, body) = curl(&controller, "GET", denied, Some(&token), None)?;
        assert_eq!(
            (status, first_error(&body).as_str()),
            (403, "permission denied"),
            "{denied}"
        );
    }

    let (status, _) = curl(
        &controller,
        "POST",
        "auth/token/revoke",
        Some(&root),
        Some(&json!({"token": token})),
    )?;
    assert_eq!(status, 204);
    let (status, body) = curl(
        &controller,
        "GET",
        "os/hosts/web/accounts/app/creds",
        Some(&token),
        None,
    )?;
    assert_eq!(
        (status, first_error(&body).as_str()),
        (403, "permission denied")
    );
    let (status, body) = curl(
        &controller,
        "POST",
        "auth/token/lookup",
        Some(&root),
        Some(&json!({"token": token})),
    )?;
    assert_eq!((status, first_error(&body).as_str()), (403, "bad token"));
    Ok(())
}

/// The `default` and `root` policies behave as in Vault.
#[test]
fn default_and_root_policies() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    seed_account(&controller, "app", "App-pw-77")?;

    let (plain, auth) = create_token(&controller, &root, json!({"policies": ["default"]}))?;
    assert_eq!(auth["policies"], json!(["default"]));
    let me = ok(&controller, "GET", "auth/token/lookup-self", &plain, None)?;
    assert_eq!(me["data"]["policies"], json!(["default"]));
    let caps = ok(
        &controller,
        "POST",
        "sys/capabilities-self",
        &plain,
        Some(json!({"paths": ["os/hosts/web/accounts/app/creds", "auth/token/renew-self"]})),
    )?;
    assert_eq!(
        caps["data"]["os/hosts/web/accounts/app/creds"],
        json!(["deny"])
    );
    assert_eq!(caps["data"]["auth/token/renew-self"], json!(["update"]));
    for (method, path) in [
        ("GET", "os/hosts/web/accounts/app/creds"),
        ("POST", "auth/token/create"),
        ("GET", "sys/policies/acl/default"),
    ] {
        let (status, _) = curl(&controller, method, path, Some(&plain), None)?;
        assert_eq!(status, 403, "{method} {path} with only the default policy");
    }

    // Only root creates root tokens; root tokens never expire.
    let (status, body) = curl(
        &controller,
        "POST",
        "auth/token/create",
        Some(&plain),
        Some(&json!({"policies": ["root"]})),
    )?;
    assert_eq!(status, 403, "{body}");
    let (second_root, auth) = create_token(&controller, &root, json!({"policies": ["root"]}))?;
    assert_eq!(auth["policies"], json!(["root"]), "root is never mixed");
    assert_eq!(auth["lease_duration"], 0);
    ok(&controller, "GET", "sys/audit", &second_root, None)?;

    // The built-in policies cannot be changed away.
    let (status, body) = curl(
        &controller,
        "PUT",
        "sys/policies/acl/root",
        Some(&root),
        Some(&json!({"policy": "path \"*\" { capabilities = [\"read\"] }"})),
    )?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = curl(
        &controller,
        "DELETE",
        "sys/policies/acl/default",
        Some(&root),
        None,
    )?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

/// Children die with their parent unless revoked with revoke-orphan; limited-use tokens
/// stop after their uses; an expired token is refused at once and swept (its accessor
/// disappears); renewals stop at the explicit maximum TTL.
#[test]
fn token_lifecycle_rules() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    ok(
        &controller,
        "PUT",
        "sys/policies/acl/creator",
        &root,
        Some(json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"})),
    )?;

    // Tree revocation.
    let (parent, _) = create_token(&controller, &root, json!({"policies": ["creator"]}))?;
    let (child, _) = create_token(&controller, &parent, json!({"policies": ["creator"]}))?;
    let (grandchild, _) = create_token(&controller, &child, json!({"policies": ["default"]}))?;
    ok(&controller, "POST", "auth/token/revoke-self", &parent, None)?;
    for gone in [&parent, &child, &grandchild] {
        let (status, _) = curl(
            &controller,
            "GET",
            "auth/token/lookup-self",
            Some(gone),
            None,
        )?;
        assert_eq!(status, 403);
    }

    // revoke-orphan keeps the children, now orphans.
    let (parent, _) = create_token(&controller, &root, json!({"policies": ["creator"]}))?;
    let (child, auth) = create_token(&controller, &parent, json!({"policies": ["default"]}))?;
    assert_eq!(auth["orphan"], false);
    ok(
        &controller,
        "POST",
        "auth/token/revoke-orphan",
        &root,
        Some(json!({"token": parent})),
    )?;
    let (status, _) = curl(
        &controller,
        "GET",
        "auth/token/lookup-self",
        Some(&parent),
        None,
    )?;
    assert_eq!(status, 403);
    let me = ok(&controller, "GET", "auth/token/lookup-self", &child, None)?;
    assert_eq!(me["data"]["orphan"], true);

    // num_uses.
    let (limited, auth) = create_token(
        &controller,
        &root,
        json!({"policies": ["default"], "num_uses": 2}),
    )?;
    assert_eq!(auth["num_uses"], 2);
    let first = ok(&controller, "GET", "auth/token/lookup-self", &limited, None)?;
    assert_eq!(first["data"]["num_uses"], 1, "the lookup itself used one");
    ok(&controller, "GET", "auth/token/lookup-self", &limited, None)?;
    let (status, _) = curl(
        &controller,
        "GET",
        "auth/token/lookup-self",
        Some(&limited),
        None,
    )?;
    assert_eq!(status, 403, "a third use of a two-use token");

    // Explicit maximum TTL caps the TTL and renewals.
    let (capped, auth) = create_token(
        &controller,
        &root,
        json!({"policies": ["default"], "ttl": "1h", "explicit_max_ttl": "90s"}),
    )?;
    assert_eq!(auth["lease_duration"], 90);
    let renewed = ok(
        &controller,
        "POST",
        "auth/token/renew-self",
        &capped,
        Some(json!({"increment": "1h"})),
    )?;
    let left = renewed["auth"]["lease_duration"].as_u64().context("ttl")?;
    assert!(left <= 90, "renewal passed the explicit max: {left}");
    let (fixed, _) = create_token(
        &controller,
        &root,
        json!({"policies": ["default"], "ttl": "1h", "renewable": false}),
    )?;
    let (status, body) = curl(
        &controller,
        "POST",
        "auth/token/renew-self",
        Some(&fixed),
        None,
    )?;
    assert_eq!(status, 400, "{body}");
    assert!(first_error(&body).contains("not renewable"), "{body}");

    // Expiry: refused at once, swept within the sweeper's period.
    let (short, auth) = create_token(
        &controller,
        &root,
        json!({"policies": ["default"], "ttl": "1s"}),
    )?;
    let accessor = auth["accessor"].as_str().context("accessor")?.to_string();
    assert!(accessors(&controller)?.contains(&accessor));
    std::thread::sleep(Duration::from_millis(2100));
    let (status, _) = curl(
        &controller,
        "GET",
        "auth/token/lookup-self",
        Some(&short),
        None,
    )?;
    assert_eq!(status, 403, "an expired token is refused");
    let deadline = Instant::now() + Duration::from_secs(15);
    while accessors(&controller)?.contains(&accessor) {
        assert!(
            Instant::now() < deadline,
            "the expired token was not swept within 15s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (status, body) = curl(
        &controller,
        "POST",
        "auth/token/lookup-accessor",
        Some(&root),
        Some(&json!({"accessor": accessor})),
    )?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

/// With a file device enabled, making its file unwritable (its directory replaced by a
/// regular file: open fails with ENOTDIR, even for root) turns every audited request into a
/// 500 that performs nothing; a second, working device keeps requests going.
#[test]
fn audit_fails_closed_and_performs_nothing() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    let logs = controller.dir.path().join("logs");
    std::fs::create_dir(&logs)?;
    let log = logs.join("audit.log");
    ok(
        &controller,
        "PUT",
        "sys/audit/file",
        &root,
        Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
    )?;
    ok(&controller, "GET", "sys/mounts", &root, None)?;
    let mode = std::fs::metadata(&log)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the audit file is private");
    let before = accessors(&controller)?;
    let lines_before = audit_lines(&log)?.len();

    // Break the device: the directory moves away and a regular file takes its name.
    let moved = controller.dir.path().join("logs.moved");
    std::fs::rename(&logs, &moved)?;
    std::fs::write(&logs, b"not a directory")?;
    // The device compares its path with the open file at most every 100 ms (a line written
    // before it notices lands in the moved file, still recorded); give it that long.
    std::thread::sleep(std::time::Duration::from_millis(250));

    let attempts: [(&str, &str, Option<Value>); 4] = [
        (
            "PUT",
            "sys/policies/acl/ghost",
            Some(json!({"policy": "path \"os/*\" { capabilities = [\"read\"] }"})),
        ),
        (
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"]})),
        ),
        (
            "POST",
            "os/hosts/ghost",
            Some(json!({"address": "192.0.2.99", "site": "dc1", "ssh_host_key": HOST_KEY})),
        ),
        ("GET", "sys/mounts", None),
    ];
    for (method, path, body) in &attempts {
        let (status, answer) = curl(&controller, method, path, Some(&root), body.as_ref())?;
        assert_eq!(status, 500, "{method} {path}: {answer}");
        let error = first_error(&answer);
        assert!(
            error.contains("audit") && error.contains("not performed"),
            "{method} {path}: {error}"
        );
    }
    // Health checks are not audited (as in Vault) and keep answering.
    let (status, _) = curl(&controller, "GET", "sys/health", None, None)?;
    assert_eq!(status, 200);

    // Repair it and look: nothing was performed, nothing was logged.
    std::fs::remove_file(&logs)?;
    std::fs::rename(&moved, &logs)?;
    let (status, _) = curl(
        &controller,
        "GET",
        "sys/policies/acl/ghost",
        Some(&root),
        None,
    )?;
    assert_eq!(status, 404, "the policy write was performed");
    let (status, _) = curl(&controller, "GET", "os/hosts/ghost", Some(&root), None)?;
    assert_eq!(status, 404, "the host write was performed");
    assert_eq!(accessors(&controller)?, before, "a token was created");
    // The refused writes left no line; only the reads made after the repair are there.
    let lines = audit_lines(&log)?;
    for line in &lines[lines_before..] {
        let path = line["request"]["path"].as_str().unwrap_or_default();
        let operation = line["request"]["operation"].as_str().unwrap_or_default();
        assert!(
            operation == "read" || operation == "list",
            "a refused request reached the log: {operation} {path}"
        );
    }
    assert!(
        lines.len() > lines_before,
        "the reads after the repair were not logged"
    );

    // Two devices: one broken, one working — requests go on and the working one has them.
    let second = controller.dir.path().join("second.log");
    ok(
        &controller,
        "PUT",
        "sys/audit/second",
        &root,
        Some(json!({"type": "file", "options": {"file_path": second.display().to_string()}})),
    )?;
    std::fs::rename(&logs, &moved)?;
    std::fs::write(&logs, b"not a directory")?;
    // The device compares its path with the open file at most every 100 ms (a line written
    // before it notices lands in the moved file, still recorded); give it that long.
    std::thread::sleep(std::time::Duration::from_millis(250));
    ok(
        &controller,
        "PUT",
        "sys/policies/acl/real",
        &root,
        Some(json!({"policy": "path \"os/*\" { capabilities = [\"read\"] }"})),
    )?;
    let recorded = audit_lines(&second)?;
    let request = recorded
        .iter()
        .find(|line| {
            line["type"] == "request" && line["request"]["path"] == "sys/policies/acl/real"
        })
        .context("the working device lacks the request")?;
    let id = &request["request"]["id"];
    assert!(
        recorded
            .iter()
            .any(|line| line["type"] == "response" && &line["request"]["id"] == id),
        "the working device lacks the response"
    );
    Ok(())
}

/// `sys/audit-hash` answers exactly the HMAC the device wrote for a password and a token.
#[test]
fn audit_hash_equals_the_logged_hmac() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    let log = controller.dir.path().join("audit.log");
    ok(
        &controller,
        "PUT",
        "sys/audit/file",
        &root,
        Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
    )?;
    let password = "Hash-me-5b7e01";
    seed_account(&controller, "app", password)?;
    ok(
        &controller,
        "GET",
        "os/hosts/web/accounts/app/creds",
        &root,
        None,
    )?;
    let hash = |input: &str| -> Result<String> {
        let answer = ok(
            &controller,
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
    let password_hash = hash(password)?;
    let token_hash = hash(&root)?;
    assert!(password_hash.starts_with("hmac-sha256:"), "{password_hash}");

    let lines = audit_lines(&log)?;
    let response = lines
        .iter()
        .find(|line| {
            line["type"] == "response"
                && line["request"]["path"] == "os/hosts/web/accounts/app/creds"
        })
        .context("no response line for the creds read")?;
    assert_eq!(
        response["response"]["data"]["password"],
        password_hash.as_str()
    );
    assert_eq!(response["request"]["client_token"], token_hash.as_str());
    assert_eq!(response["auth"]["client_token"], token_hash.as_str());
    let write = lines
        .iter()
        .find(|line| {
            line["type"] == "request" && line["request"]["path"] == "os/hosts/web/accounts/app"
        })
        .context("no request line for the account write")?;
    assert_eq!(write["request"]["data"]["password"], password_hash.as_str());
    let text = std::fs::read_to_string(&log)?;
    assert!(!text.contains(password) && !text.contains(&root));
    Ok(())
}

/// Runs the CLI with `home` as HOME and no token in the environment (so it uses the file
/// `rotor login` wrote), feeding `stdin`.
fn cli_at_home(
    controller: &Controller,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Output> {
    let mut command = Command::new(binary("rotor")?);
    command
        .args(args)
        .env("HOME", home)
        .env("ROTOR_ADDR", &controller.address)
        .env("ROTOR_CACERT", &controller.ca_file)
        .env_remove("ROTOR_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ADDR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("running rotor")?;
    if let Some(mut pipe) = child.stdin.take() {
        use std::io::Write;
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes())?;
        }
    }
    child.wait_with_output().context("waiting for rotor")
}

fn stdout_of(output: &Output, what: &str) -> Result<String> {
    if !output.status.success() {
        bail!(
            "{what} failed ({:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// `rotor login`, `rotor policy ...`, `rotor token ...` and `rotor lease ...`.
#[test]
fn cli_login_policy_token_and_lease_commands() -> Result<()> {
    let controller = Controller::start_dev()?;
    let home = tempfile::tempdir()?;
    let run = |args: &[&str]| cli_at_home(&controller, home.path(), args, None);

    // Without a token nothing is allowed; a wrong token is not stored.
    let output = run(&["policy", "list"])?;
    assert_eq!(output.status.code(), Some(2));
    let output = run(&["login", "rtr.not-a-real-token"])?;
    assert_eq!(output.status.code(), Some(2));
    let token_file = home.path().join(".rotor-token");
    assert!(!token_file.exists(), "a refused token was stored");

    let output = cli_at_home(
        &controller,
        home.path(),
        &["login", "-no-store", "-"],
        Some(&format!("{}\n", controller.token)),
    )?;
    let text = stdout_of(&output, "rotor login -no-store - (token on stdin)")?;
    assert!(text.contains("not stored"), "{text}");
    assert!(!token_file.exists(), "-no-store stored the token");
    let text = stdout_of(&run(&["login", &controller.token])?, "rotor login")?;
    assert!(text.contains("Success!"), "{text}");
    assert_eq!(std::fs::read_to_string(&token_file)?, controller.token);
    let mode = std::fs::metadata(&token_file)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let policy_file = home.path().join("apps.hcl");
    std::fs::write(
        &policy_file,
        "path \"os/*\" { capabilities = [\"read\", \"list\"] }\npath \"os/hosts/+/accounts/mgmt-*\" { capabilities = [\"deny\"] }\n",
    )?;
    let path_text = policy_file.display().to_string();
    let text = stdout_of(
        &run(&["policy", "write", "apps", &path_text])?,
        "policy write",
    )?;
    assert_eq!(text.trim(), "Success! Uploaded policy: apps");
    let output = cli_at_home(
        &controller,
        home.path(),
        &["policy", "write", "ops", "-"],
        Some("path \"sys/leases/*\" { capabilities = [\"update\"] }\n"),
    )?;
    stdout_of(&output, "policy write from stdin")?;
    let output = cli_at_home(
        &controller,
        home.path(),
        &["policy", "write", "broken", "-"],
        Some("path \"os/*\" { capabilities = [\"fly\"] }\n"),
    )?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("fly"));
    let listed = stdout_of(&run(&["policy", "list"])?, "policy list")?;
    let names: Vec<&str> = listed.lines().collect();
    for name in ["apps", "default", "ops", "root"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    let read = stdout_of(&run(&["policy", "read", "apps"])?, "policy read")?;
    assert!(read.contains("os/hosts/+/accounts/mgmt-*"), "{read}");

    let token = stdout_of(
        &run(&[
            "token",
            "create",
            "-policy=apps",
            "-policy",
            "ops",
            "-ttl=1h",
            "-metadata",
            "team=payments",
            "-field=token",
        ])?,
        "token create",
    )?
    .trim()
    .to_string();
    assert!(!token.is_empty());
    let looked = stdout_of(
        &run(&["token", "lookup", "-format=json", &token])?,
        "token lookup",
    )?;
    let looked: Value = serde_json::from_str(&looked)?;
    assert_eq!(
        looked["data"]["policies"],
        json!(["apps", "default", "ops"])
    );
    assert_eq!(looked["data"]["meta"]["team"], "payments");
    let ttl = looked["data"]["ttl"].as_u64().context("ttl")?;
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    let accessor = looked["data"]["accessor"]
        .as_str()
        .context("accessor")?
        .to_string();
    let by_accessor = stdout_of(
        &run(&["token", "lookup", "-format=json", "-accessor", &accessor])?,
        "token lookup -accessor",
    )?;
    let by_accessor: Value = serde_json::from_str(&by_accessor)?;
    assert_eq!(
        by_accessor["data"]["id"], "",
        "an accessor lookup shows no token"
    );

    let renewed = stdout_of(
        &run(&[
            "token",
            "renew",
            "-increment=2h",
            "-field=token_duration",
            &token,
        ])?,
        "token renew",
    )?;
    assert_eq!(renewed.trim(), "7200");

    // The created token, used through ROTOR_TOKEN, gets what its policies allow.
    let own = Command::new(binary("rotor")?)
        .args(["token", "lookup", "-format=json"])
        .env("HOME", home.path())
        .env("ROTOR_ADDR", &controller.address)
        .env("ROTOR_CACERT", &controller.ca_file)
        .env("ROTOR_TOKEN", &token)
        .output()?;
    let own: Value = serde_json::from_str(&stdout_of(&own, "token lookup (self)")?)?;
    assert_eq!(own["data"]["accessor"], accessor.as_str());

    let text = stdout_of(&run(&["token", "revoke", &token])?, "token revoke")?;
    assert!(text.contains("Success!"), "{text}");
    assert_eq!(run(&["token", "lookup", &token])?.status.code(), Some(2));

    // Revocation by accessor, and of the token in use (-self).
    let create = |run: &dyn Fn(&[&str]) -> Result<Output>| -> Result<(String, String)> {
        let created = stdout_of(
            &run(&["token", "create", "-policy=apps", "-format=json"])?,
            "token create -format=json",
        )?;
        let created: Value = serde_json::from_str(&created)?;
        Ok((
            created["auth"]["client_token"]
                .as_str()
                .context("client_token")?
                .to_string(),
            created["auth"]["accessor"]
                .as_str()
                .context("accessor")?
                .to_string(),
        ))
    };
    let (by_accessor_token, by_accessor) = create(&run)?;
    stdout_of(
        &run(&["token", "revoke", "-accessor", &by_accessor])?,
        "token revoke -accessor",
    )?;
    assert_eq!(
        run(&["token", "lookup", &by_accessor_token])?.status.code(),
        Some(2)
    );
    let (itself, _) = create(&run)?;
    let revoke_self = Command::new(binary("rotor")?)
        .args(["token", "revoke", "-self"])
        .env("HOME", home.path())
        .env("ROTOR_ADDR", &controller.address)
        .env("ROTOR_CACERT", &controller.ca_file)
        .env("ROTOR_TOKEN", &itself)
        .output()?;
    stdout_of(&revoke_self, "token revoke -self")?;
    assert_eq!(run(&["token", "lookup", &itself])?.status.code(), Some(2));
    assert_eq!(
        run(&["token", "revoke", "-self", &itself])?.status.code(),
        Some(1),
        "-self with an argument is a usage error"
    );

    // Leases: prefix revocation of an empty prefix succeeds; an unknown lease is refused.
    let text = stdout_of(
        &run(&["lease", "revoke", "-prefix", "os/"])?,
        "lease revoke",
    )?;
    assert!(text.contains("revocation operations queued"), "{text}");
    let output = run(&["lease", "lookup", "os/nothing/here"])?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lease not found"));
    let output = run(&["lease", "revoke", "-force", "os/"])?;
    assert_eq!(
        output.status.code(),
        Some(1),
        "-force without -prefix is refused"
    );

    let text = stdout_of(&run(&["policy", "delete", "ops"])?, "policy delete")?;
    assert_eq!(text.trim(), "Success! Deleted policy: ops");
    assert_eq!(run(&["policy", "read", "ops"])?.status.code(), Some(2));
    Ok(())
}

/// Leases are tied to the token that got the secret: revoking the token (or its parent)
/// revokes its leases and nobody else's. The CLI looks leases up, refuses to renew a
/// non-renewable one, and revokes by id and by prefix. The OTPs never reach the audit log.
#[test]
fn revoking_a_token_revokes_its_leases() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    let log = controller.dir.path().join("audit.log");
    ok(
        &controller,
        "PUT",
        "sys/audit/file",
        &root,
        Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
    )?;
    ok(
        &controller,
        "POST",
        "ssh/roles/otp",
        &root,
        Some(json!({"key_type": "otp", "default_user": "app1", "cidr_list": "192.0.2.0/24"})),
    )?;
    ok(
        &controller,
        "PUT",
        "sys/policies/acl/otp",
        &root,
        Some(
            json!({"policy": "path \"ssh/creds/otp\" { capabilities = [\"update\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }"}),
        ),
    )?;
    let (holder, _) = create_token(&controller, &root, json!({"policies": ["otp"]}))?;
    let (child, _) = create_token(&controller, &holder, json!({"policies": ["otp"]}))?;
    let (bystander, _) = create_token(&controller, &root, json!({"policies": ["otp"]}))?;
    let mut otps = Vec::new();
    let (otp, own_lease) = otp_lease(&controller, &holder)?;
    otps.push(otp);
    let (otp, child_lease) = otp_lease(&controller, &child)?;
    otps.push(otp);
    let (otp, other_lease) = otp_lease(&controller, &bystander)?;
    otps.push(otp);
    let (otp, root_lease) = otp_lease(&controller, &root)?;
    otps.push(otp);
    for lease in [&own_lease, &child_lease, &other_lease, &root_lease] {
        assert!(lease_exists(&controller, lease)?, "{lease} after issue");
    }
    let listed = ok(
        &controller,
        "LIST",
        "sys/leases/lookup/ssh/creds/otp",
        &root,
        None,
    )?;
    assert_eq!(
        listed["data"]["keys"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );

    ok(
        &controller,
        "POST",
        "auth/token/revoke",
        &root,
        Some(json!({"token": holder})),
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while lease_exists(&controller, &own_lease)? || lease_exists(&controller, &child_lease)? {
        assert!(
            Instant::now() < deadline,
            "the revoked tokens' leases still exist after 10s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        lease_exists(&controller, &other_lease)?,
        "another token's lease was revoked"
    );
    assert!(
        lease_exists(&controller, &root_lease)?,
        "root's lease was revoked"
    );

    // The CLI on the remaining leases.
    let cli = |args: &[&str]| -> Result<Output> { controller.cli(args) };
    let looked = stdout_of(
        &cli(&["lease", "lookup", "-format=json", &other_lease])?,
        "lease lookup",
    )?;
    let looked: Value = serde_json::from_str(&looked)?;
    assert_eq!(looked["data"]["id"], other_lease.as_str(), "{looked}");
    let output = cli(&["lease", "renew", &other_lease])?;
    assert_eq!(
        output.status.code(),
        Some(2),
        "an OTP lease is not renewable"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not renewable"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_of(&cli(&["lease", "revoke", &other_lease])?, "lease revoke")?;
    assert!(!lease_exists(&controller, &other_lease)?);
    stdout_of(
        &cli(&["lease", "revoke", "-prefix", "ssh/creds/otp"])?,
        "lease revoke -prefix",
    )?;
    assert!(!lease_exists(&controller, &root_lease)?);

    let text = std::fs::read_to_string(&log)?;
    for secret in otps.iter().chain([&holder, &child, &bystander, &root]) {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in clear in the audit log"
        );
    }
    Ok(())
}

/// Root-protected paths need `sudo` on top of the operation's capability, as in Vault.
#[test]
fn root_protected_paths_need_sudo() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    let log = controller.dir.path().join("audit.log");
    let body = json!({"type": "file", "options": {"file_path": log.display().to_string()}});
    for (name, capabilities) in [
        (
            "nosudo",
            r#"["create", "read", "update", "delete", "list"]"#,
        ),
        (
            "withsudo",
            r#"["create", "read", "update", "delete", "list", "sudo"]"#,
        ),
    ] {
        let policy = format!(
            "path \"sys/audit*\" {{ capabilities = {capabilities} }}\npath \"sys/leases/*\" {{ capabilities = {capabilities} }}\npath \"auth/token/*\" {{ capabilities = {capabilities} }}"
        );
        ok(
            &controller,
            "PUT",
            &format!("sys/policies/acl/{name}"),
            &root,
            Some(json!({ "policy": policy })),
        )?;
    }
    let (without, _) = create_token(&controller, &root, json!({"policies": ["nosudo"]}))?;
    let (with, _) = create_token(&controller, &root, json!({"policies": ["withsudo"]}))?;
    let checks: [(&str, &str, Option<&Value>); 4] = [
        ("PUT", "sys/audit/file", Some(&body)),
        ("GET", "sys/audit", None),
        ("LIST", "sys/leases/lookup/ssh", None),
        ("LIST", "auth/token/accessors", None),
    ];
    for (method, path, body) in checks {
        let (status, answer) = curl(&controller, method, path, Some(&without), body)?;
        assert_eq!(status, 403, "{method} {path} without sudo: {answer}");
        let (status, answer) = curl(&controller, method, path, Some(&with), body)?;
        assert!(
            (200..300).contains(&status),
            "{method} {path} with sudo answered {status}: {answer}"
        );
    }
    Ok(())
}

/// A token that expires is swept with its children and leases: the OTP it got is revoked
/// without anyone asking, well before the OTP's own TTL, and its 1-hour child dies with it.
#[test]
fn an_expired_tokens_leases_are_swept_with_it() -> Result<()> {
    let controller = Controller::start_dev()?;
    let root = controller.token.clone();
    ok(
        &controller,
        "POST",
        "ssh/roles/otp",
        &root,
        Some(
            json!({"key_type": "otp", "default_user": "app1", "cidr_list": "192.0.2.0/24", "ttl": "10m"}),
        ),
    )?;
    ok(
        &controller,
        "PUT",
        "sys/policies/acl/otp",
        &root,
        Some(
            json!({"policy": "path \"ssh/creds/otp\" { capabilities = [\"update\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }"}),
        ),
    )?;
    let (short, _) = create_token(
        &controller,
        &root,
        json!({"policies": ["otp"], "ttl": "2s"}),
    )?;
    // Its child outlives it on paper (1h) but dies with it.
    let (child, _) = create_token(
        &controller,
        &short,
        json!({"policies": ["otp"], "ttl": "1h"}),
    )?;
    let (_, lease) = otp_lease(&controller, &short)?;
    let (_, kept) = otp_lease(&controller, &root)?;
    assert!(lease_exists(&controller, &lease)?);
    let deadline = Instant::now() + Duration::from_secs(20);
    while lease_exists(&controller, &lease)? {
        assert!(
            Instant::now() < deadline,
            "the expired token's lease still exists after 20s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        lease_exists(&controller, &kept)?,
        "root's lease was swept too"
    );
    let (status, _) = curl(
        &controller,
        "GET",
        "auth/token/lookup-self",
        Some(&child),
        None,
    )?;
    assert_eq!(status, 403, "the child of an expired token still works");
    Ok(())
}
