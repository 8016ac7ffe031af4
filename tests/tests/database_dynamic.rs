//! The database engine end to end (issue 17): a real PostgreSQL on a site's network that only
//! the site's agent reaches, dynamic credentials proved by `psql` logins from that network.
//!
//! Proves: the controller cannot reach the database, yet the connection is verified through
//! the agent; creds log in and read what the role grants and nothing else; `VALID UNTIL` is
//! the lease's expiry and renew moves it; revoking the lease terminates an open session and
//! drops the role (the login is refused); revoke-prefix and revoking the owning token drop
//! their roles; with the database unreachable a revocation stays `revocation_pending` with
//! its error (counted in sys/metrics) and is retried until the role is gone once it is back;
//! bad input is a 400 naming the field; a creation statement with a syntax error is a 400
//! when the role is written (rehearsed and rolled back), and on a connection without
//! verify_connection a clear error at creds time that leaves neither a role nor a lease; at
//! the end no role exists that Rotor has no lease for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rotor_tests::postgres::{DATABASE, Login, Postgres};
use rotor_tests::prelude::*;
use serde_json::Value;

const ROOT_PASSWORD: &str = "Root-pw-4711";

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// `database/creds/ROLE` as `token` (root when None): (username, password, lease id).
fn creds(rotor: &Rotor, role: &str, token: Option<&str>) -> Result<(String, String, String)> {
    let answer: Value = match token {
        None => rotor.cli_json(&["read", &format!("database/creds/{role}")])?,
        Some(token) => {
            let output = rotor.controller().shell_output(&format!(
                "ROTOR_TOKEN={token} rotor read -format=json database/creds/{role}"
            ))?;
            if !output.success() {
                bail!("creds as a child token failed: {}", output.diagnostics());
            }
            serde_json::from_str(&output.stdout).context("creds JSON")?
        }
    };
    let field = |name: &str| -> Result<String> {
        answer["data"][name]
            .as_str()
            .map(String::from)
            .with_context(|| format!("creds without {name}: {answer}"))
    };
    let lease = answer["lease_id"]
        .as_str()
        .with_context(|| format!("creds without lease_id: {answer}"))?;
    assert!(
        lease.starts_with(&format!("database/creds/{role}/")),
        "{answer}"
    );
    assert_eq!(answer["renewable"], true, "{answer}");
    Ok((field("username")?, field("password")?, lease.to_string()))
}

/// `rotor ARGS` that must fail; answers its stderr.
fn refused(rotor: &Rotor, args: &[&str]) -> Result<String> {
    let output = rotor.controller().cli_output(args)?;
    if output.success() {
        bail!("`rotor {}` succeeded: {}", args.join(" "), output.stdout);
    }
    Ok(output.stderr)
}

/// The `rotor_leases_revocation_pending` lines of `sys/metrics` (Prometheus text).
fn pending_revocations_metric(rotor: &Rotor) -> Result<String> {
    let output = rotor.controller().shell_output(
        "curl -sS --cacert \"$ROTOR_CACERT\" -H \"X-Vault-Token: $ROTOR_TOKEN\" \"$ROTOR_ADDR/v1/sys/metrics?format=prometheus\"",
    )?;
    if !output.success() {
        bail!("reading sys/metrics failed: {}", output.diagnostics());
    }
    Ok(output
        .stdout
        .lines()
        .filter(|line| line.starts_with("rotor_leases_revocation_pending"))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn assert_refused(postgres: &Postgres, user: &str, password: &str, why: &str) -> Result<()> {
    match postgres.login(user, password, "SELECT 1")? {
        Login::Refused(_) => Ok(()),
        other => bail!("{why}: the login as {user} was not refused: {other:?}"),
    }
}

#[test]
fn dynamic_postgres_credentials_through_the_sites_agent() -> Result<()> {
    if skip_requested("dynamic_postgres_credentials_through_the_sites_agent") {
        return Ok(());
    }
    let site = Site::new("db")?;
    let postgres = Postgres::start(&site, "pg", ROOT_PASSWORD)?;
    postgres.admin_sql(
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2); \
         CREATE TABLE payroll (salary int); INSERT INTO payroll VALUES (1);",
        DATABASE,
    )?;
    let rotor = Rotor::start(&[&site])?;

    // The controller cannot reach the database; the site's agent can.
    let address = postgres.server().address_on(site.network())?;
    let probe = rotor.controller().shell_output(&format!(
        "timeout 2 bash -c 'exec 3<>/dev/tcp/{address}/5432'"
    ))?;
    assert!(
        !probe.success(),
        "the controller reached the database at {address}"
    );

    rotor.cli(&["write", "sys/mounts/database", "type=database"])?;
    let url = format!(
        "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{}:5432/{DATABASE}?sslmode=disable",
        postgres.host()
    );
    // A wrong root password is refused by the check through the agent, naming the database.
    let error = refused(
        &rotor,
        &[
            "write",
            "database/config/pg",
            "plugin_name=postgresql-database-plugin",
            &url,
            "username=postgres",
            "password=wrong-password",
            "allowed_roles=readonly",
        ],
    )?;
    assert!(
        error.contains("password authentication failed") && error.contains("not saved"),
        "{error}"
    );
    rotor.cli(&[
        "write",
        "database/config/pg",
        "plugin_name=postgresql-database-plugin",
        &url,
        "username=postgres",
        &format!("password={ROOT_PASSWORD}"),
        "allowed_roles=readonly,broken",
    ])?;
    let config = rotor.cli_json(&["read", "database/config/pg"])?;
    assert!(!config.to_string().contains(ROOT_PASSWORD), "{config}");
    assert_eq!(config["data"]["site"], site.name(), "{config}");

    // Bad input: 400s naming the field.
    let create = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON orders TO \"{{name}}\";";
    let creation = format!("creation_statements={create}");
    for (args, expected) in [
        (
            vec![
                "write",
                "database/roles/readonly",
                "db_name=nope",
                creation.as_str(),
            ],
            "field 'db_name'",
        ),
        (
            vec![
                "write",
                "database/roles/other",
                "db_name=pg",
                creation.as_str(),
            ],
            "'allowed_roles'",
        ),
        (
            vec![
                "write",
                "database/roles/readonly",
                "db_name=pg",
                "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN",
            ],
            "{{password}} is missing",
        ),
        (
            vec![
                "write",
                "database/roles/readonly",
                "db_name=pg",
                creation.as_str(),
                "default_ttl=48h",
                "max_ttl=24h",
            ],
            "field 'default_ttl'",
        ),
    ] {
        let error = refused(&rotor, &args)?;
        assert!(error.contains(expected), "{args:?}: {error}");
        assert!(
            error.contains("400") || error.contains("Code: 400"),
            "{error}"
        );
    }

    rotor.cli(&[
        "write",
        "database/roles/readonly",
        "db_name=pg",
        &creation,
        "default_ttl=1h",
        "max_ttl=24h",
    ])?;

    // Credentials read what the role grants, and nothing else.
    let (user, password, lease) = creds(&rotor, "readonly", None)?;
    assert!(
        user.len() <= 63 && user.starts_with("v-root-readonly-"),
        "{user}"
    );
    match postgres.login(&user, &password, "SELECT count(*) FROM orders")? {
        Login::Ok(count) => assert_eq!(count, "2"),
        other => bail!("the new credentials did not read orders: {other:?}"),
    }
    match postgres.login(&user, &password, "SELECT * FROM payroll")? {
        Login::QueryFailed(error) => assert!(error.contains("permission denied"), "{error}"),
        other => bail!("the role read a table it was not granted: {other:?}"),
    }
    assert_refused(&postgres, &user, "not-the-password", "a wrong password")?;

    // VALID UNTIL is the lease's expiry; renew moves it.
    let valid_until = postgres
        .valid_until_unix(&user)?
        .context("no VALID UNTIL")?;
    let expected = now_unix() + 3600;
    assert!(
        (valid_until - expected).abs() < 120,
        "VALID UNTIL {valid_until}, expected about {expected}"
    );
    let renewed = rotor.cli_json(&[
        "write",
        "sys/leases/renew",
        &format!("lease_id={lease}"),
        "increment=2h",
    ])?;
    assert_eq!(renewed["lease_duration"].as_i64(), Some(7200), "{renewed}");
    let valid_until = postgres
        .valid_until_unix(&user)?
        .context("no VALID UNTIL")?;
    let expected = now_unix() + 7200;
    assert!(
        (valid_until - expected).abs() < 120,
        "after renew: VALID UNTIL {valid_until}, expected about {expected}"
    );

    // Revocation ends an open session and drops the role.
    postgres.open_session(&user, &password, "rotor_e2e_open")?;
    rotor.cli(&["lease", "revoke", &lease])?;
    assert!(
        !postgres.role_exists(&user)?,
        "role {user} still exists after revoke"
    );
    assert_eq!(postgres.sessions_tagged("rotor_e2e_open")?, 0);
    wait_until("the open session to end", Duration::from_secs(10), || {
        Ok(postgres.session_log("rotor_e2e_open")?.contains("exit "))
    })?;
    let log = postgres.session_log("rotor_e2e_open")?;
    assert!(
        log.contains("terminat"),
        "the session did not end by termination: {log}"
    );
    assert_refused(&postgres, &user, &password, "after revoke")?;
    let lookup = refused(
        &rotor,
        &["write", "sys/leases/lookup", &format!("lease_id={lease}")],
    )?;
    assert!(lookup.contains("lease not found"), "{lookup}");

    // revoke-prefix drops every role of the role's leases.
    let first = creds(&rotor, "readonly", None)?;
    let second = creds(&rotor, "readonly", None)?;
    assert_ne!(first.0, second.0);
    rotor.cli(&["lease", "revoke", "-prefix", "database/creds/readonly"])?;
    for (user, password, _) in [&first, &second] {
        assert!(
            !postgres.role_exists(user)?,
            "{user} survived revoke-prefix"
        );
        assert_refused(&postgres, user, password, "after revoke-prefix")?;
    }

    // Revoking the token that asked for credentials drops its role.
    let token = rotor
        .cli(&["token", "create", "-policy=root", "-field=token"])?
        .trim()
        .to_string();
    let (token_user, token_password, _) = creds(&rotor, "readonly", Some(&token))?;
    assert!(
        postgres
            .login(&token_user, &token_password, "SELECT 1")?
            .output()
            .is_some()
    );
    rotor.cli(&["token", "revoke", &token])?;
    wait_until(
        "the token's role to be dropped",
        Duration::from_secs(30),
        || Ok(!postgres.role_exists(&token_user)?),
    )?;
    assert_refused(
        &postgres,
        &token_user,
        &token_password,
        "after its token was revoked",
    )?;

    // The database unreachable: revocation fails, the lease stays visible as
    // revocation_pending with its error, VALID UNTIL still bounds the role, and the sweeper
    // retries until the role is gone once the database is back.
    let (outage_user, outage_password, outage_lease) = creds(&rotor, "readonly", None)?;
    let block = "iptables -I INPUT -p tcp --dport 5432 -j REJECT --reject-with tcp-reset";
    postgres.server().exec(block)?;
    let error = refused(&rotor, &["lease", "revoke", &outage_lease])?;
    assert!(
        error.contains(&outage_user) && error.contains("retries"),
        "{error}"
    );
    let lookup = rotor.cli_json(&[
        "write",
        "sys/leases/lookup",
        &format!("lease_id={outage_lease}"),
    ])?;
    assert_eq!(lookup["data"]["revocation_pending"], true, "{lookup}");
    let last_error = lookup["data"]["last_revocation_error"]
        .as_str()
        .unwrap_or("");
    assert!(
        last_error.contains("database pg") && last_error.contains(&outage_user),
        "{lookup}"
    );
    assert!(postgres.role_exists(&outage_user)?);
    assert!(
        postgres.valid_until_unix(&outage_user)?.is_some(),
        "no VALID UNTIL backstop"
    );
    assert!(
        pending_revocations_metric(&rotor)?.contains("rotor_leases_revocation_pending 1"),
        "sys/metrics does not count the pending revocation"
    );
    postgres
        .server()
        .exec(&block.replace("-I INPUT", "-D INPUT"))?;
    wait_until(
        "the sweeper to drop the role once the database is back",
        Duration::from_secs(90),
        || Ok(!postgres.role_exists(&outage_user)?),
    )?;
    assert_refused(
        &postgres,
        &outage_user,
        &outage_password,
        "after the retried revocation",
    )?;
    assert!(pending_revocations_metric(&rotor)?.contains("rotor_leases_revocation_pending 0"));
    wait_until("the lease to be forgotten", Duration::from_secs(10), || {
        Ok(!rotor
            .controller()
            .cli_output(&[
                "write",
                "sys/leases/lookup",
                &format!("lease_id={outage_lease}"),
            ])?
            .success())
    })?;

    // A creation statement with a syntax error: refused when the role is written (the agent
    // rehearses the statements in a transaction it rolls back) ...
    let broken = "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'; GRANT SELECT ON orders TOO \"{{name}}\";";
    let error = refused(
        &rotor,
        &["write", "database/roles/broken", "db_name=pg", broken],
    )?;
    assert!(
        error.contains("Code: 400")
            && error.contains("field 'creation_statements'")
            && error.contains("syntax error")
            && error.contains("TOO"),
        "{error}"
    );
    assert_eq!(
        postgres.roles_starting_with("rotor-rehearsal")?,
        Vec::<String>::new()
    );
    // ... and, on a connection without verify_connection, a clear error at creds time that
    // leaves neither a role nor a lease.
    rotor.cli(&[
        "write",
        "database/config/unchecked",
        "plugin_name=postgresql-database-plugin",
        &url,
        "username=postgres",
        &format!("password={ROOT_PASSWORD}"),
        "allowed_roles=broken",
        "verify_connection=false",
    ])?;
    rotor.cli(&[
        "write",
        "database/roles/broken",
        "db_name=unchecked",
        broken,
    ])?;
    let error = refused(&rotor, &["read", "database/creds/broken"])?;
    assert!(
        error.contains("syntax error")
            && error.contains("TOO")
            && error.contains("nothing was changed"),
        "{error}"
    );
    assert!(!error.contains(ROOT_PASSWORD));
    let leases = rotor.controller().cli_output(&[
        "list",
        "-format=json",
        "sys/leases/lookup/database/creds/broken",
    ])?;
    assert!(
        !leases.success() || leases.stdout.trim() == "[]" || leases.stdout.trim().is_empty(),
        "a lease was left behind: {}",
        leases.stdout
    );

    // No role Rotor made exists without a lease.
    assert_eq!(postgres.roles_starting_with("v-")?, Vec::<String>::new());
    Ok(())
}
