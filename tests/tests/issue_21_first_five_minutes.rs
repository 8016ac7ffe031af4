//! Issue 21, "A newcomer sees a password rotated in one command": the CLI's first-five-minutes
//! mistakes, each answered with its fix. Runs the real binaries against `rotor server -dev`:
//! a wrong or missing CA, `http://`, an address without a scheme, a refused token, no
//! `ROTOR_ADDR`, an agent enrolling at the API port, `rotor delete agents/ID` saying it
//! revoked, `-h` answered, and the dev server removing its temp directory on SIGTERM.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use support::{Agent, Controller, binary};

/// Runs `rotor` against `controller` with its usual environment, then `overrides` (`None`
/// removes a variable), and a HOME of its own so no `~/.rotor-token` is read.
fn rotor(
    controller: &Controller,
    overrides: &[(&str, Option<&str>)],
    args: &[&str],
) -> Result<Output> {
    let home = tempfile::tempdir()?;
    let mut command = Command::new(binary("rotor")?);
    command
        .args(args)
        .env("HOME", home.path())
        .env("ROTOR_ADDR", &controller.address)
        .env("ROTOR_CACERT", &controller.ca_file)
        .env("ROTOR_TOKEN", &controller.token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_CACERT");
    for (name, value) in overrides {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.output().context("running rotor")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn an_untrusted_certificate_names_rotor_cacert() -> Result<()> {
    let controller = Controller::start_dev()?;
    let other = Controller::start_dev()?;

    let output = rotor(
        &controller,
        &[("ROTOR_CACERT", None)],
        &["read", "sys/health"],
    )?;
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("the server's certificate")
            && text
                .contains("is not trusted: set ROTOR_CACERT to its CA (the dev server printed it)"),
        "{text}"
    );

    // Another server's CA: the message says the file in use is the wrong one.
    let output = rotor(
        &controller,
        &[("ROTOR_CACERT", Some(&other.ca_file))],
        &["read", "sys/health"],
    )?;
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("ROTOR_CACERT ({})", other.ca_file))
            && text.contains("set ROTOR_CACERT to its CA"),
        "{text}"
    );
    Ok(())
}

#[test]
fn plain_http_and_a_missing_scheme_say_to_use_https() -> Result<()> {
    let controller = Controller::start_dev()?;
    let host_port = controller
        .address
        .strip_prefix("https://")
        .context("the dev server's address is https")?;

    let http = format!("http://{host_port}");
    let output = rotor(
        &controller,
        &[("ROTOR_ADDR", Some(&http))],
        &["read", "sys/health"],
    )?;
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("speaks HTTPS, not HTTP")
            && text.contains(&format!("use https://{host_port}")),
        "{text}"
    );

    let output = rotor(
        &controller,
        &[("ROTOR_ADDR", Some(host_port))],
        &["read", "sys/health"],
    )?;
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("ROTOR_ADDR is '{host_port}'"))
            && text.contains("needs https://host:port")
            && !text.contains("relative URL"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_refused_token_gets_the_same_hint_whether_or_not_it_exists() -> Result<()> {
    let controller = Controller::start_dev()?;
    // A token the server knows, whose policies do not reach os/.
    let output = rotor(
        &controller,
        &[],
        &["token", "create", "-policy=default", "-field=token"],
    )?;
    assert!(output.status.success(), "{}", stderr(&output));
    let limited = stdout(&output).trim().to_string();

    let hint = |token: &str| -> Result<String> {
        let output = rotor(
            &controller,
            &[("ROTOR_TOKEN", Some(token))],
            &["list", "os/hosts"],
        )?;
        assert_eq!(output.status.code(), Some(2));
        let text = stderr(&output);
        assert!(
            text.contains("Code: 403") && text.contains("permission denied"),
            "{text}"
        );
        let hint = text
            .lines()
            .find(|line| line.contains("rotor login"))
            .with_context(|| format!("no hint in: {text}"))?
            .to_string();
        assert!(hint.contains("set ROTOR_TOKEN"), "{hint}");
        Ok(hint)
    };
    assert_eq!(hint("rtr.no-such-token")?, hint(&limited)?);

    let output = rotor(&controller, &[("ROTOR_TOKEN", None)], &["list", "os/hosts"])?;
    let text = stderr(&output);
    assert!(
        text.contains("No token was sent: set ROTOR_TOKEN, or run `rotor login`."),
        "{text}"
    );
    Ok(())
}

#[test]
fn without_rotor_addr_a_note_says_which_address_is_used() -> Result<()> {
    let controller = Controller::start_dev()?;
    let output = rotor(
        &controller,
        &[("ROTOR_ADDR", None), ("VAULT_ADDR", None)],
        &["read", "sys/health"],
    )?;
    let text = stderr(&output);
    assert_eq!(
        text.matches("note: ROTOR_ADDR is not set; using https://127.0.0.1:8200")
            .count(),
        1,
        "{text}"
    );

    let output = rotor(&controller, &[], &["read", "sys/health"])?;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("note:"), "{}", stderr(&output));
    Ok(())
}

#[test]
fn an_agent_enrolling_at_the_api_port_is_told_to_use_the_agent_port() -> Result<()> {
    let controller = Controller::start_dev()?;
    let enrollment = controller.enrollment("default")?;
    let api_port = controller
        .address
        .strip_prefix("https://")
        .context("the dev server's address is https")?;
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let output = Agent::enroll_command(
        api_port,
        enrollment["token"].as_str().context("no token")?,
        enrollment["ca_fingerprint"]
            .as_str()
            .context("no fingerprint")?,
        dir.path(),
    )?;
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("HTTPS API port") && text.contains("agents: host:port"),
        "{text}"
    );
    // It used to wait the whole 20 s enrollment timeout.
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    Ok(())
}

#[test]
fn deleting_an_agent_says_it_was_revoked() -> Result<()> {
    let controller = Controller::start_dev()?;
    let agent = Agent::enroll(&controller, "default")?;
    let path = format!("agents/{}", agent.id);

    let output = rotor(&controller, &[], &["delete", &path])?;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("Success! Revoked agent {}:", agent.id))
            && !text.contains("Data deleted"),
        "{text}"
    );
    let record = controller.cli_json(&["read", &path])?;
    assert!(record["data"]["revoked_at"].is_string(), "{record}");
    Ok(())
}

#[test]
fn server_help_is_answered_from_its_flag_table() -> Result<()> {
    for asked in ["-h", "-help", "--help"] {
        let output = Command::new(binary("rotor")?)
            .args(["server", asked])
            .output()?;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.starts_with("Usage: rotor server") && text.contains("-dev-listen-address"),
            "{text}"
        );
    }
    Ok(())
}

#[test]
fn the_dev_server_removes_its_temp_directory_on_sigterm() -> Result<()> {
    let mut controller = Controller::start_dev()?;
    let dev_dir = std::path::Path::new(&controller.ca_file)
        .parent()
        .context("the CA file has a directory")?
        .to_path_buf();
    assert!(dev_dir.is_dir(), "{}", dev_dir.display());
    assert!(
        dev_dir
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("rotor-dev-")),
        "{}",
        dev_dir.display()
    );

    controller.process.signal("TERM")?;
    let code = controller.process.wait_exit(Duration::from_secs(15))?;
    assert_eq!(code, Some(0), "{}", controller.process.stderr());
    assert!(!dev_dir.exists(), "{} is still there", dev_dir.display());
    Ok(())
}
