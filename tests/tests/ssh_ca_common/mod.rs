//! Shared by the `ssh_ca_*` scenarios: writing JSON bodies through the `rotor` CLI (maps
//! such as `default_extensions` only travel as JSON), reading `ssh-keygen -L`, and, on
//! container hosts, installing files, restarting sshd and logging in with a key and its
//! certificate.
//!
//! Asserts nothing about Rotor itself; the scenarios do. Private keys reach containers only
//! on stdin, never on a command line.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use rotor_tests::Host;
use rotor_tests::process::ProgramOutput;
use serde_json::Value;

use crate::support::{Controller, binary};

/// Runs `rotor write -format=json PATH -` with `body` on stdin; answers the exit code,
/// stdout and stderr.
pub fn write_raw(
    controller: &Controller,
    path: &str,
    body: &Value,
) -> Result<(i32, String, String)> {
    let mut child = Command::new(binary("rotor")?)
        .args(["write", "-format=json", path, "-"])
        .env("ROTOR_ADDR", &controller.address)
        .env("ROTOR_CACERT", &controller.ca_file)
        .env("ROTOR_TOKEN", &controller.token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting rotor write")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(body.to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    ))
}

/// Writes `body` to `path`; answers the parsed answer (Null for a 204).
pub fn write_json(controller: &Controller, path: &str, body: &Value) -> Result<Value> {
    let (code, stdout, stderr) = write_raw(controller, path, body)?;
    if code != 0 {
        bail!("rotor write {path} failed ({code}): {stderr}");
    }
    if stdout.trim().starts_with("Success!") || stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout).with_context(|| format!("rotor write {path} printed: {stdout}"))
}

/// Writes `body` to `path` expecting the server to refuse it; answers the CLI's stderr.
pub fn write_refused(controller: &Controller, path: &str, body: &Value) -> Result<String> {
    let (code, stdout, stderr) = write_raw(controller, path, body)?;
    if code != 2 {
        bail!("rotor write {path} {body} exited {code}, expected 2 (refused): {stdout}{stderr}");
    }
    Ok(stderr)
}

/// A string field of an answer's `data`.
pub fn data_str(answer: &Value, field: &str) -> Result<String> {
    answer["data"][field]
        .as_str()
        .map(String::from)
        .with_context(|| format!("no data.{field} in {answer}"))
}

/// What `ssh-keygen -L` says about a certificate.
#[derive(Debug, Default)]
pub struct CertificateListing {
    pub type_line: String,
    pub signing_ca: String,
    pub key_id: String,
    pub serial: u64,
    pub valid_from: String,
    pub valid_to: String,
    pub principals: Vec<String>,
    pub critical_options: Vec<String>,
    pub extensions: Vec<String>,
}

/// Parses `ssh-keygen -L -f CERT` output.
pub fn parse_listing(text: &str) -> Result<CertificateListing> {
    let mut listing = CertificateListing::default();
    let mut section: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some((name, value)) = trimmed.split_once(':') {
            let value = value.trim();
            let known = match name {
                "Type" => {
                    listing.type_line = value.to_string();
                    true
                }
                "Signing CA" => {
                    listing.signing_ca = value.to_string();
                    true
                }
                "Key ID" => {
                    listing.key_id = value.trim_matches('"').to_string();
                    true
                }
                "Serial" => {
                    listing.serial = value.parse().context("Serial is not a number")?;
                    true
                }
                "Valid" => {
                    let rest = value.strip_prefix("from ").context("Valid: from … to …")?;
                    let (from, to) = rest.split_once(" to ").context("Valid: from … to …")?;
                    listing.valid_from = from.to_string();
                    listing.valid_to = to.to_string();
                    true
                }
                "Principals" | "Critical Options" | "Extensions" => {
                    section = Some(match name {
                        "Principals" => "principals",
                        "Critical Options" => "critical",
                        _ => "extensions",
                    });
                    continue;
                }
                _ => false,
            };
            if known {
                section = None;
                continue;
            }
        }
        if trimmed.is_empty() || trimmed == "(none)" {
            continue;
        }
        match section {
            Some("principals") => listing.principals.push(trimmed.to_string()),
            Some("critical") => listing.critical_options.push(trimmed.to_string()),
            Some("extensions") => listing.extensions.push(trimmed.to_string()),
            _ => {}
        }
    }
    Ok(listing)
}

/// Writes `content` to `path` on `host` with `mode`, through stdin.
pub fn put_file(host: &Host, path: &str, mode: &str, content: &[u8]) -> Result<()> {
    let output = host.container().exec_with_stdin(
        &format!("umask 077 && cat > '{path}' && chmod {mode} '{path}'"),
        content,
    )?;
    if !output.success() {
        bail!(
            "writing {path} on {} failed ({}): {}",
            host.role(),
            output.describe_exit(),
            output.stderr.trim()
        );
    }
    Ok(())
}

/// Restarts sshd so it rereads its configuration.
pub fn restart_sshd(host: &Host) -> Result<()> {
    host.exec("sshd -t")
        .context("sshd -t refused the configuration")?;
    host.stop_sshd()?;
    host.start_sshd()
}

/// Runs `ssh` on `client` as `user` to `destination` with the identity `key` and the
/// certificate `certificate`, never a password. `options` are extra `-o` settings; they
/// come first, so they win over the defaults here (ssh keeps the first value it reads).
/// Without a `StrictHostKeyChecking` option the host key is not checked at all.
pub fn ssh_with_certificate(
    client: &Host,
    key: &str,
    certificate: &str,
    user: &str,
    destination: &str,
    options: &[&str],
    command: &str,
) -> Result<ProgramOutput> {
    let mut argv: Vec<String> = vec![
        "timeout".into(),
        "60".into(),
        "ssh".into(),
        "-i".into(),
        key.into(),
    ];
    let mut settings: Vec<String> = options.iter().map(|option| option.to_string()).collect();
    settings.extend(
        [
            format!("CertificateFile={certificate}"),
            "IdentitiesOnly=yes".into(),
            "BatchMode=yes".into(),
            "PasswordAuthentication=no".into(),
            "KbdInteractiveAuthentication=no".into(),
            "PreferredAuthentications=publickey".into(),
            "ConnectTimeout=5".into(),
            "LogLevel=ERROR".into(),
        ]
        .into_iter()
        .filter(|setting| {
            let name = setting.split('=').next().unwrap_or_default();
            !options
                .iter()
                .any(|option| option.starts_with(&format!("{name}=")))
        }),
    );
    if !options
        .iter()
        .any(|option| option.starts_with("StrictHostKeyChecking"))
    {
        settings.push("StrictHostKeyChecking=no".into());
        settings.push("UserKnownHostsFile=/dev/null".into());
    }
    for setting in settings {
        argv.push("-o".into());
        argv.push(setting);
    }
    argv.push(format!("{user}@{destination}"));
    argv.push(command.into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    client
        .container()
        .exec_program(&argv, &[], None, std::time::Duration::from_secs(90))
}

/// `date -d TEXT +%s` on `host`: the local times `ssh-keygen -L` prints, as Unix seconds.
pub fn unix_time_on(host: &Host, text: &str) -> Result<u64> {
    let output = host.exec(&format!("date -d '{text}' +%s"))?;
    output
        .trim()
        .parse()
        .with_context(|| format!("date printed {output}"))
}
