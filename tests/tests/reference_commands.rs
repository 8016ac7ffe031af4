//! Issue 15, "The reference's commands, verbatim": the OS secrets engine document's commands
//! (reference 000), run through a shell exactly as the document prints them, with `rotor` for
//! `vault` and a real host's address and pinned key for `box.example.com`. Each answer is
//! checked against what the document shows, and every password the host should have is proved
//! by an SSH login from the site's network.
//!
//! One command is not the document's: it never creates `my-user`, the account its rotation,
//! versioning, recovery and offboarding examples use, so the scenario creates it (marked
//! below). The host is written without `site`, as printed: it lands in the only site with an
//! agent. Last, beyond the document: a host defaulted into a site without agents fails its
//! first contact at once, naming the site and the enrollment that fixes it.

use anyhow::{Context, Result, bail};
use rotor_tests::prelude::*;

/// Runs one command as the reference prints it (`$ vault ...`, line continuations and quotes
/// included) with `rotor` in place of `vault`; answers stdout, or fails with what it printed.
fn run_as_printed(rotor: &Rotor, printed: &str) -> Result<String> {
    let command = printed
        .trim()
        .strip_prefix("$ vault ")
        .with_context(|| format!("not a `$ vault` command: {printed}"))?;
    let output = rotor
        .controller()
        .shell_output(&format!("rotor {command}"))?;
    if !output.success() {
        bail!(
            "`rotor {command}` failed ({}): {}",
            output.describe_exit(),
            output.diagnostics()
        );
    }
    Ok(output.stdout)
}

/// The value of `key` in Vault's `Key  Value` table.
fn table_value(table: &str, key: &str) -> Option<String> {
    table.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?;
        rest.starts_with(char::is_whitespace)
            .then(|| rest.trim().to_string())
    })
}

fn expect_value(table: &str, key: &str) -> Result<String> {
    table_value(table, key).with_context(|| format!("no `{key}` row in:\n{table}"))
}

/// The current password and version of `my-user`, as the reference's creds command shows them.
fn creds(rotor: &Rotor) -> Result<(String, String)> {
    let table = run_as_printed(rotor, "$ vault read os/hosts/my-box/accounts/my-user/creds")?;
    Ok((
        expect_value(&table, "password")?,
        expect_value(&table, "version")?,
    ))
}

#[test]
fn the_os_reference_commands_work_as_printed() -> Result<()> {
    if skip_requested("the_os_reference_commands_work_as_printed") {
        return Ok(());
    }
    let site = Site::new("ref")?;
    let host = site
        .host("my-box")
        .with_parent("super-user", "super-secret")
        .with_user("user-1", "bigsecret")
        .with_user("my-user", "My-user-initial-1")
        .start()?;
    let rotor = Rotor::start(&[&site])?;
    let address = host.address()?.to_string();
    let host_key = host.host_public_key("ed25519")?;

    // Setup: the plugin is built in; os/ exists from initialisation, so it is unmounted first
    // to see the document's command mount it (and enabling it again changes nothing).
    let registered = run_as_printed(
        &rotor,
        r#"$ vault plugin register -download -version="0.1.0-rc1+ent" secret vault-plugin-secrets-os"#,
    )?;
    assert_eq!(
        registered.trim(),
        "Success! Registered plugin: vault-plugin-secrets-os"
    );
    let disabled = run_as_printed(&rotor, "$ vault secrets disable os")?;
    assert_eq!(
        disabled.trim(),
        "Success! Disabled the secrets engine (if it existed) at: os/"
    );
    let listed = run_as_printed(&rotor, "$ vault secrets list")?;
    assert!(!listed.contains("\nos/ "), "os/ still mounted:\n{listed}");
    for _ in 0..2 {
        let enabled = run_as_printed(
            &rotor,
            "$ vault secrets enable -path=os vault-plugin-secrets-os",
        )?;
        assert_eq!(
            enabled.trim(),
            "Success! Enabled the vault-plugin-secrets-os secrets engine at: os/"
        );
    }
    let enabled = run_as_printed(&rotor, "$ vault secrets enable ssh")?;
    assert_eq!(
        enabled.trim(),
        "Success! Enabled the ssh secrets engine at: ssh/"
    );
    let listed = run_as_printed(&rotor, "$ vault secrets list")?;
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|header| header.starts_with("Path")
                && header.contains("Type")
                && header.contains("Accessor")
                && header.contains("Description")),
        "{listed}"
    );
    let os_row = lines
        .iter()
        .find(|line| line.starts_with("os/ "))
        .with_context(|| format!("no os/ row:\n{listed}"))?;
    assert_eq!(os_row.split_whitespace().nth(1), Some("os"), "{listed}");

    // Audit devices, as Vault's CLI spells them: every request below is recorded.
    let enabled = run_as_printed(
        &rotor,
        "$ vault audit enable file file_path=/var/log/rotor_audit.log",
    )?;
    assert_eq!(
        enabled.trim(),
        "Success! Enabled the file audit device at: file/"
    );
    let enabled = run_as_printed(
        &rotor,
        "$ vault audit enable -path=discarded file file_path=discard",
    )?;
    assert_eq!(
        enabled.trim(),
        "Success! Enabled the file audit device at: discarded/"
    );
    let devices = run_as_printed(&rotor, "$ vault audit list")?;
    assert!(
        devices.lines().any(|line| line.starts_with("file/ ")),
        "{devices}"
    );
    assert!(
        devices.lines().any(|line| line.starts_with("discarded/ ")),
        "{devices}"
    );

    // Hosts: no site, as printed (the address and pinned key are the real host's).
    let written = run_as_printed(
        &rotor,
        &format!(
            "$ vault write os/hosts/my-box \\\n    address=\"{address}\" \\\n    port=22 \\\n    ssh_host_key=\"{host_key}\""
        ),
    )?;
    assert_eq!(written.trim(), "Success! Data written to: os/hosts/my-box");
    let read = rotor.cli(&["read", "os/hosts/my-box"])?;
    assert_eq!(expect_value(&read, "site")?, site.name(), "{read}");

    // Accounts: the parent, its child, then the self-managed setup of the same account (the
    // same password again: nothing changes).
    run_as_printed(
        &rotor,
        "$ vault write os/hosts/my-box/accounts/mgmt-user \\\n    username=\"super-user\" \\\n    password=\"super-secret\"",
    )?;
    run_as_printed(
        &rotor,
        "$ vault write os/hosts/my-box/accounts/app-user \\\n    username=\"user-1\" \\\n    password=\"bigsecret\" \\\n    parent_ref=\"mgmt-user\"",
    )?;
    run_as_printed(
        &rotor,
        "$ vault write os/hosts/my-box/accounts/app-user \\\n    username=\"user-1\" \\\n    password=\"bigsecret\"",
    )?;
    // Not in the document, which uses my-user without creating it: a child of mgmt-user.
    rotor.cli(&[
        "write",
        "os/hosts/my-box/accounts/my-user",
        "username=my-user",
        "password=My-user-initial-1",
        "parent_ref=mgmt-user",
    ])?;

    // Rotation through the parent's sudo chpasswd, proved by logging in.
    let rotated = run_as_printed(
        &rotor,
        "$ vault write -f os/hosts/my-box/accounts/my-user/rotate",
    )?;
    assert_eq!(expect_value(&rotated, "version")?, "2", "{rotated}");
    let (rotated_password, version) = creds(&rotor)?;
    assert_eq!(version, "2");
    assert_password(&host, "my-user", &rotated_password);
    assert_not_password(&host, "my-user", "My-user-initial-1");

    // Versions, as the document shows them.
    let versions = run_as_printed(
        &rotor,
        "$ vault write -f os/hosts/my-box/accounts/my-user/versions",
    )?;
    assert_eq!(
        expect_value(&versions, "current_version")?,
        "2",
        "{versions}"
    );
    assert_eq!(
        expect_value(&versions, "oldest_version")?,
        "1",
        "{versions}"
    );
    assert_eq!(expect_value(&versions, "ttl")?, "<nil>", "{versions}");
    expect_value(&versions, "created_time")?;
    let map = expect_value(&versions, "versions")?;
    assert!(
        map.starts_with("map[1:map[created_time:")
            && map.contains(" 2:map[created_time:")
            && map.ends_with("expired_time:0001-01-01T00:00:00Z]]"),
        "{versions}"
    );

    // Recovery changes what Rotor knows, never the host.
    let reset = run_as_printed(
        &rotor,
        r#"$ vault write -f os/hosts/my-box/accounts/my-user/reset password="new-password""#,
    )?;
    assert_eq!(expect_value(&reset, "version")?, "3", "{reset}");
    assert_eq!(
        creds(&rotor)?,
        ("new-password".to_string(), "3".to_string())
    );
    assert_password(&host, "my-user", &rotated_password);
    let restored = run_as_printed(
        &rotor,
        "$ vault write -f os/hosts/my-box/accounts/my-user/versions/1/restore",
    )?;
    assert_eq!(expect_value(&restored, "version")?, "4", "{restored}");
    assert_eq!(
        creds(&rotor)?,
        ("My-user-initial-1".to_string(), "4".to_string())
    );
    assert_password(&host, "my-user", &rotated_password);

    // Offboarding: stop automated rotation, read the credential, delete.
    let written = run_as_printed(
        &rotor,
        "$ vault write os/hosts/my-box/accounts/my-user disable_automated_rotation=true",
    )?;
    assert_eq!(
        written.trim(),
        "Success! Data written to: os/hosts/my-box/accounts/my-user"
    );
    let account = rotor.cli(&["read", "os/hosts/my-box/accounts/my-user"])?;
    assert_eq!(
        expect_value(&account, "disable_automated_rotation")?,
        "true"
    );
    let creds_table = run_as_printed(
        &rotor,
        "$ vault read os/hosts/my-box/accounts/my-user/creds",
    )?;
    for key in [
        "created_time",
        "last_vault_rotation",
        "next_vault_rotation",
        "password",
        "ttl",
        "username",
        "version",
    ] {
        expect_value(&creds_table, key)?;
    }
    assert_eq!(expect_value(&creds_table, "next_vault_rotation")?, "<nil>");
    assert_eq!(expect_value(&creds_table, "username")?, "my-user");
    let deleted = run_as_printed(&rotor, "$ vault delete os/hosts/my-box/accounts/my-user")?;
    assert_eq!(
        deleted.trim(),
        "Success! Data deleted (if it existed) at: os/hosts/my-box/accounts/my-user"
    );
    // "Repeat these steps for each managed account": the child before its parent.
    for account in ["app-user", "mgmt-user"] {
        run_as_printed(
            &rotor,
            &format!("$ vault delete os/hosts/my-box/accounts/{account}"),
        )?;
    }
    let deleted = run_as_printed(&rotor, "$ vault delete os/hosts/my-box")?;
    assert_eq!(
        deleted.trim(),
        "Success! Data deleted (if it existed) at: os/hosts/my-box"
    );
    let gone = rotor
        .controller()
        .cli_output(&["read", "os/hosts/my-box"])?;
    assert!(!gone.success(), "host still readable: {}", gone.stdout);

    // Every command went through the audit device, with no password in clear.
    let log = rotor
        .controller()
        .container()
        .exec("cat /var/log/rotor_audit.log")?;
    for path in ["os/hosts/my-box", "os/hosts/my-box/accounts/my-user/reset"] {
        assert!(
            log.contains(&format!("\"path\":\"{path}\"")),
            "no audit line for {path}"
        );
    }
    for secret in [
        "super-secret",
        "bigsecret",
        "new-password",
        rotated_password.as_str(),
    ] {
        assert!(
            !log.contains(secret),
            "a password is in the audit log in clear"
        );
    }
    // Beyond the document: a host whose site has no agent is saved, and its first contact
    // says which site lacks one and how to enroll it, at once.
    rotor.cli(&["write", "os/config", "default_site=elsewhere"])?;
    let written = rotor.cli(&[
        "write",
        "os/hosts/other-box",
        &format!("address={address}"),
        &format!("ssh_host_key={host_key}"),
    ])?;
    assert!(
        written.starts_with("Success! Data written to: os/hosts/other-box"),
        "{written}"
    );
    let started = std::time::Instant::now();
    let refused = rotor.controller().cli_output(&[
        "write",
        "os/hosts/other-box/accounts/mgmt-user",
        "username=super-user",
        "password=super-secret",
    ])?;
    assert!(!refused.success(), "{}", refused.stdout);
    for part in [
        "host other-box is in site 'elsewhere', which has no enrolled agent",
        "rotor write agents/enroll site=elsewhere",
    ] {
        assert!(
            refused.stderr.contains(part),
            "'{part}' in: {}",
            refused.stderr
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    let disabled = run_as_printed(&rotor, "$ vault audit disable discarded")?;
    assert_eq!(
        disabled.trim(),
        "Success! Disabled audit device (if it was enabled) at: discarded/"
    );
    Ok(())
}
