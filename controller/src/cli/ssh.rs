//! `rotor ssh -role ROLE [-mount ssh] user@host [ssh options] [-- command]`, as `vault ssh -mode=otp`:
//! asks `ssh/creds/ROLE` for an OTP for the host's address and the user, then runs `ssh`
//! with it through `sshpass` when installed, else prints the OTP for the user to type.
//!
//! Owns resolving the target and handing the OTP to sshpass through its environment
//! (`SSHPASS`), never a command line. Must not decide anything about OTPs: the server does.

use std::net::{IpAddr, ToSocketAddrs};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use super::client::Client;
use super::flags::{self, FlagSpec};

pub(super) const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "role",
        aliases: &[],
        takes_value: true,
        help: "the otp role to ask (required)",
    },
    FlagSpec {
        name: "mount",
        aliases: &["mount-point"],
        takes_value: true,
        help: "where the ssh engine is mounted (default ssh)",
    },
    FlagSpec {
        name: "address",
        aliases: &[],
        takes_value: true,
        help: "server address (default $ROTOR_ADDR)",
    },
    FlagSpec {
        name: "strict-host-key-checking",
        aliases: &[],
        takes_value: true,
        help: "ssh's StrictHostKeyChecking: yes, no or ask (sshpass cannot answer ssh's \
               question about an unknown host key; no skips it)",
    },
    FlagSpec {
        name: "user-known-hosts-file",
        aliases: &[],
        takes_value: true,
        help: "ssh's UserKnownHostsFile (default ~/.ssh/known_hosts)",
    },
    FlagSpec {
        name: "no-exec",
        aliases: &[],
        takes_value: false,
        help: "print the OTP and the ssh command instead of running them",
    },
];

const SSH_HELP: &str =
    "Usage: rotor ssh -role ROLE [-mount ssh] [-strict-host-key-checking=yes|no|ask]
                 [-user-known-hosts-file FILE] [-no-exec] user@host [ssh options] [-- command]

Asks Rotor for a one-time password for user@host and runs ssh with it (through sshpass
when it is installed; otherwise the OTP is printed for you to type at the prompt).
";

/// Splits `user@host`; the user is required (the OTP is for one account).
fn split_target(target: &str) -> Result<(String, String)> {
    match target.rsplit_once('@') {
        Some((user, host)) if !user.is_empty() && !host.is_empty() => {
            Ok((user.to_string(), host.to_string()))
        }
        _ => bail!("'{target}' is not user@host: name the account the OTP is for"),
    }
}

/// The address the OTP is for: the host as given when it is an address, else its first
/// resolved address (the one ssh will most likely reach).
fn resolve(host: &str) -> Result<IpAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    (bare, 22)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .map(|address| address.ip())
        .next()
        .ok_or_else(|| anyhow!("{host} resolves to no address"))
}

/// The `-o` options Vault's flags stand for, checked before anything is asked of the server.
fn host_key_options(
    strict_host_key_checking: Option<&str>,
    user_known_hosts_file: Option<&str>,
) -> Result<Vec<String>> {
    let mut options = Vec::new();
    if let Some(value) = strict_host_key_checking {
        if !matches!(value, "yes" | "no" | "ask") {
            bail!(
                "-strict-host-key-checking: '{value}' is not yes, no or ask (no lets sshpass \
                 log in to a host whose key ssh does not know yet)"
            );
        }
        options.extend(["-o".to_string(), format!("StrictHostKeyChecking={value}")]);
    }
    if let Some(file) = user_known_hosts_file {
        if file.trim().is_empty() {
            bail!("-user-known-hosts-file: name a file (ssh's default is ~/.ssh/known_hosts)");
        }
        options.extend(["-o".to_string(), format!("UserKnownHostsFile={file}")]);
    }
    Ok(options)
}

fn sshpass_available() -> bool {
    Command::new("sshpass")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `rotor ssh ...`.
pub fn run(args: &[String]) -> Result<()> {
    if matches!(
        args.first().map(String::as_str),
        Some("-h" | "-help" | "--help")
    ) {
        print!("{SSH_HELP}");
        return Ok(());
    }
    let parsed = flags::parse(FLAGS, args).map_err(|e| anyhow!("{e}\n\n{SSH_HELP}"))?;
    let role = parsed
        .value("role")
        .filter(|role| !role.trim().is_empty())
        .ok_or_else(|| anyhow!("-role is required\n\n{SSH_HELP}"))?;
    let mount = parsed.value("mount").unwrap_or("ssh").trim_matches('/');
    let Some((target, ssh_args)) = parsed.positional.split_first() else {
        bail!("name the target as user@host\n\n{SSH_HELP}");
    };
    // Before `--`: options for ssh; after it: the remote command.
    let (options, command) = match ssh_args.iter().position(|arg| arg == "--") {
        Some(at) => (&ssh_args[..at], &ssh_args[at + 1..]),
        None => (ssh_args, &ssh_args[ssh_args.len()..]),
    };
    let (user, host) = split_target(target)?;
    let host_key_options = host_key_options(
        parsed.value("strict-host-key-checking"),
        parsed.value("user-known-hosts-file"),
    )?;
    let ip = resolve(&host)?;

    let client = Client::from_env(parsed.value("address"))?;
    let mut body = Map::new();
    body.insert("ip".into(), Value::String(ip.to_string()));
    body.insert("username".into(), Value::String(user.clone()));
    let answer = client.call("POST", &format!("{mount}/creds/{role}"), Some(&body))?;
    let data = answer.get("data").cloned().unwrap_or(Value::Null);
    let otp = data
        .get("key")
        .and_then(Value::as_str)
        .context("the server answered no OTP (is the role an otp role?)")?
        .to_string();
    let port = data.get("port").and_then(Value::as_u64).unwrap_or(22);

    let mut ssh_argv: Vec<String> = vec![
        "ssh".into(),
        "-p".into(),
        port.to_string(),
        "-o".into(),
        "PubkeyAuthentication=no".into(),
        "-o".into(),
        "PreferredAuthentications=keyboard-interactive,password".into(),
    ];
    ssh_argv.extend(host_key_options);
    ssh_argv.extend(options.iter().cloned());
    ssh_argv.push(format!("{user}@{host}"));
    ssh_argv.extend(command.iter().cloned());

    if parsed.is_set("no-exec") || !sshpass_available() {
        // Vault's lines, which the reference prints.
        println!("OTP for the session is `{otp}`");
        if !parsed.is_set("no-exec") {
            println!("[Note: Install `sshpass` to automate typing in OTP]");
        }
        if parsed.is_set("no-exec") {
            println!("{}", ssh_argv.join(" "));
            return Ok(());
        }
        let status = Command::new(&ssh_argv[0])
            .args(&ssh_argv[1..])
            .status()
            .context("running ssh (is OpenSSH's client installed?)")?;
        return exit_like(status);
    }
    let status = Command::new("sshpass")
        .arg("-e")
        .args(&ssh_argv)
        .env("SSHPASS", &otp)
        .status()
        .context("running sshpass")?;
    exit_like(status)
}

fn exit_like(status: std::process::ExitStatus) -> Result<()> {
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => bail!("ssh ended by a signal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_need_a_user() {
        assert_eq!(
            split_target("app1@10.0.0.5").expect("ok"),
            ("app1".into(), "10.0.0.5".into())
        );
        assert!(split_target("10.0.0.5").is_err());
        assert!(split_target("@host").is_err());
        assert_eq!(resolve("[::1]").expect("v6").to_string(), "::1");
        assert_eq!(resolve("10.1.2.3").expect("v4").to_string(), "10.1.2.3");
    }

    #[test]
    fn vaults_host_key_flags_become_ssh_options() {
        let args: Vec<String> = [
            "-role",
            "otp_key_role",
            "-strict-host-key-checking=no",
            "-user-known-hosts-file",
            "/tmp/known",
            "username@10.0.0.5",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        let parsed = flags::parse(FLAGS, &args).expect("the reference's flags");
        assert_eq!(parsed.positional, ["username@10.0.0.5"]);
        let options = host_key_options(
            parsed.value("strict-host-key-checking"),
            parsed.value("user-known-hosts-file"),
        )
        .expect("options");
        assert_eq!(
            options,
            [
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/tmp/known"
            ]
        );
        assert!(host_key_options(None, None).expect("none").is_empty());
        let refused = host_key_options(Some("maybe"), None).expect_err("not a choice");
        assert!(
            refused
                .to_string()
                .contains("-strict-host-key-checking: 'maybe'")
        );
        assert!(host_key_options(None, Some(" ")).is_err());
    }
}
