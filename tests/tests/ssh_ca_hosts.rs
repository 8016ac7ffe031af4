//! Scenario: the ssh engine's certificates as real OpenSSH sees them. A dev controller runs
//! as a local process; a target host's sshd trusts its CA (`TrustedUserCAKeys`) and
//! presents a host certificate it signed (`HostCertificate`); a client host on the same
//! site runs `ssh` and `ssh-keygen`.
//!
//! Proves: a user certificate for `app1` logs in as app1 and not as root; an expired one
//! is refused; `ssh/issue` output logs in as returned; the host certificate is accepted
//! through `@cert-authority` with StrictHostKeyChecking=yes (no trust on first use), and a
//! client without it refuses the host; `ssh-keygen -L` shows what the request asked for.
//! The user key is made on the client and never leaves it; the issued private key reaches
//! the client only on stdin.

mod ssh_ca_common;
mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rotor_tests::prelude::*;
use serde_json::json;
use ssh_ca_common::{
    data_str, parse_listing, put_file, restart_sshd, ssh_with_certificate, unix_time_on,
    write_json, write_refused,
};
use support::Controller;

const HOST_NAME: &str = "web-1.rotor.test";

fn now_unix() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// `GET /v1/ssh/public_key` with no token, as a host's provisioning would fetch it.
fn unauthenticated_public_key(controller: &Controller) -> Result<String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--cacert", &controller.ca_file])
        .arg(format!("{}/v1/ssh/public_key", controller.address))
        .output()
        .context("running curl")?;
    if !output.status.success() {
        bail!(
            "curl ssh/public_key failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

#[test]
fn ca_certificates_are_honoured_by_real_sshd_and_ssh() -> Result<()> {
    if skip_requested("ssh_ca_hosts") {
        return Ok(());
    }
    let controller = Controller::start_dev()?;
    let ca = write_json(
        &controller,
        "ssh/config/ca",
        &json!({"key_type": "ed25519"}),
    )?;
    let ca_public = data_str(&ca, "public_key")?;
    assert!(ca_public.starts_with("ssh-ed25519 AAAA"), "{ca_public}");
    assert_eq!(unauthenticated_public_key(&controller)?, ca_public);

    write_json(
        &controller,
        "ssh/roles/users",
        &json!({
            "key_type": "ca",
            "allow_user_certificates": true,
            "allowed_users": "app1",
            "default_user": "app1",
            "allowed_extensions": "permit-pty,permit-port-forwarding",
            "default_extensions": {"permit-pty": ""},
            "allowed_critical_options": "source-address",
            "allow_user_key_ids": true,
            "ttl": "1h",
            "max_ttl": "4h",
        }),
    )?;
    write_json(
        &controller,
        "ssh/roles/hosts",
        &json!({
            "key_type": "ca",
            "allow_host_certificates": true,
            "allowed_domains": "rotor.test",
            "allow_subdomains": true,
            "ttl": "24h",
        }),
    )?;

    let site = Site::new("a")?;
    let server = site.host("web-1").with_user("app1", "app1-pw").start()?;
    let client = site.host("client").start()?;
    let server_address = server.address()?.to_string();
    let client_address = client.address()?.to_string();

    // The server: trusts the CA for users, presents a host certificate from it.
    let host_signed = write_json(
        &controller,
        "ssh/sign/hosts",
        &json!({
            "public_key": server.host_public_key("ed25519")?,
            "cert_type": "host",
            "valid_principals": HOST_NAME,
        }),
    )?;
    let host_certificate = data_str(&host_signed, "signed_key")?;
    put_file(
        &server,
        "/etc/ssh/ssh_host_ed25519_key-cert.pub",
        "644",
        host_certificate.as_bytes(),
    )?;
    put_file(
        &server,
        "/etc/ssh/rotor_user_ca.pub",
        "644",
        ca_public.as_bytes(),
    )?;
    put_file(
        &server,
        "/etc/ssh/sshd_config.d/10-rotor-ca.conf",
        "644",
        b"TrustedUserCAKeys /etc/ssh/rotor_user_ca.pub\nHostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n",
    )?;
    restart_sshd(&server)?;

    // The client: its own key pair, made there; a name for the server.
    client.exec(&format!(
        "echo '{server_address} {HOST_NAME}' >> /etc/hosts"
    ))?;
    client.exec("ssh-keygen -q -t ed25519 -N '' -C app1-key -f /root/app1_key")?;
    let user_public = client.exec("cat /root/app1_key.pub")?.trim().to_string();

    // The role's rules hold on the real server too.
    let refusal = write_refused(
        &controller,
        "ssh/sign/users",
        &json!({"public_key": user_public, "valid_principals": "root"}),
    )?;
    assert!(
        refusal.contains("principal not allowed: 'root' is not in role 'users''s allowed_users"),
        "{refusal}"
    );
    let refusal = write_refused(
        &controller,
        "ssh/sign/users",
        &json!({"public_key": user_public, "cert_type": "host", "valid_principals": HOST_NAME}),
    )?;
    assert!(
        refusal.contains("host certificate not allowed"),
        "{refusal}"
    );

    let requested_at = now_unix()?;
    let signed = write_json(
        &controller,
        "ssh/sign/users",
        &json!({
            "public_key": user_public,
            "valid_principals": "app1",
            "key_id": "ticket-42",
            "ttl": "2h",
            "extensions": {"permit-pty": "", "permit-port-forwarding": ""},
            "critical_options": {"source-address": format!("{client_address}/32")},
        }),
    )?;
    let answered_at = now_unix()?;
    let serial_hex = data_str(&signed, "serial_number")?;
    put_file(
        &client,
        "/root/app1_key-cert.pub",
        "644",
        data_str(&signed, "signed_key")?.as_bytes(),
    )?;
    let login = |key: &str, certificate: &str, user: &str| {
        ssh_with_certificate(
            &client,
            key,
            certificate,
            user,
            &server_address,
            &[],
            "id -un",
        )
    };

    // Logs in as app1, is refused as root, and sshd says why.
    let output = login("/root/app1_key", "/root/app1_key-cert.pub", "app1")?;
    assert!(output.success(), "app1 login: {}", output.diagnostics());
    assert_eq!(output.stdout.trim(), "app1");
    let output = login("/root/app1_key", "/root/app1_key-cert.pub", "root")?;
    assert!(!output.success(), "root logged in: {}", output.stdout);
    assert!(
        output.stderr.contains("Permission denied"),
        "{}",
        output.diagnostics()
    );
    let log = server.auth_log()?;
    assert!(
        log.contains(&format!(
            "Accepted publickey for app1 from {client_address}"
        )) && log.contains("ID ticket-42"),
        "sshd log:\n{log}"
    );
    assert!(
        log.contains("Certificate invalid: name is not a listed principal")
            && log.contains("Failed publickey for root"),
        "sshd log:\n{log}"
    );

    // An expired certificate for the same key is refused.
    let expired = write_json(
        &controller,
        "ssh/sign/users",
        &json!({"public_key": user_public, "valid_principals": "app1", "ttl": "1s"}),
    )?;
    put_file(
        &client,
        "/root/expired-cert.pub",
        "644",
        data_str(&expired, "signed_key")?.as_bytes(),
    )?;
    std::thread::sleep(Duration::from_secs(3));
    let output = login("/root/app1_key", "/root/expired-cert.pub", "app1")?;
    assert!(
        !output.success(),
        "an expired certificate logged in: {}",
        output.stdout
    );
    assert!(
        output.stderr.contains("Permission denied"),
        "{}",
        output.diagnostics()
    );
    let log = server.auth_log()?;
    assert!(
        log.contains("Certificate invalid: expired"),
        "sshd log:\n{log}"
    );

    // ssh/issue: the key pair and certificate log in exactly as returned.
    let issued = write_json(
        &controller,
        "ssh/issue/users",
        &json!({"valid_principals": "app1"}),
    )?;
    assert_eq!(data_str(&issued, "private_key_type")?, "rsa");
    put_file(
        &client,
        "/root/issued_key",
        "600",
        data_str(&issued, "private_key")?.as_bytes(),
    )?;
    put_file(
        &client,
        "/root/issued_key-cert.pub",
        "644",
        data_str(&issued, "signed_key")?.as_bytes(),
    )?;
    let output = login("/root/issued_key", "/root/issued_key-cert.pub", "app1")?;
    assert!(output.success(), "issued login: {}", output.diagnostics());
    assert_eq!(output.stdout.trim(), "app1");
    let log = server.auth_log()?;
    assert!(
        log.contains("Accepted publickey for app1") && log.contains("RSA-CERT"),
        "sshd log:\n{log}"
    );

    // The host certificate: accepted through @cert-authority with strict checking.
    put_file(
        &client,
        "/root/ca_known_hosts",
        "644",
        format!("@cert-authority *.rotor.test {ca_public}").as_bytes(),
    )?;
    put_file(&client, "/root/empty_known_hosts", "644", b"")?;
    let output = ssh_with_certificate(
        &client,
        "/root/app1_key",
        "/root/app1_key-cert.pub",
        "app1",
        HOST_NAME,
        &[
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/root/ca_known_hosts",
            "GlobalKnownHostsFile=/dev/null",
            "LogLevel=DEBUG1",
        ],
        "id -un",
    )?;
    assert!(output.success(), "strict login: {}", output.diagnostics());
    assert_eq!(output.stdout.trim(), "app1");
    for shown in [
        "host key algorithm: ssh-ed25519-cert-v01@openssh.com",
        "Host 'web-1.rotor.test' is known and matches the ED25519-CERT host certificate.",
        "Found CA key in /root/ca_known_hosts:1",
    ] {
        assert!(
            output.stderr.contains(shown),
            "no `{shown}` in:\n{}",
            output.stderr
        );
    }
    assert!(
        client.exec("cat /root/ca_known_hosts")?.lines().count() == 1,
        "ssh added a host key to known_hosts"
    );
    let output = ssh_with_certificate(
        &client,
        "/root/app1_key",
        "/root/app1_key-cert.pub",
        "app1",
        HOST_NAME,
        &[
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/root/empty_known_hosts",
            "GlobalKnownHostsFile=/dev/null",
        ],
        "id -un",
    )?;
    assert!(!output.success(), "an unknown host was accepted");
    assert!(
        output.stderr.contains("Host key verification failed"),
        "{}",
        output.diagnostics()
    );

    // ssh-keygen -L shows what the request asked for.
    put_file(&client, "/root/ca.pub", "644", ca_public.as_bytes())?;
    let ca_fingerprint = client
        .exec("ssh-keygen -lf /root/ca.pub")?
        .split_whitespace()
        .nth(1)
        .context("ssh-keygen -lf printed no fingerprint")?
        .to_string();
    let listing = parse_listing(&client.exec("ssh-keygen -L -f /root/app1_key-cert.pub")?)?;
    assert!(
        listing.type_line.ends_with("user certificate"),
        "{listing:?}"
    );
    assert!(
        listing.signing_ca.contains(&ca_fingerprint),
        "{listing:?} not signed by {ca_fingerprint}"
    );
    assert_eq!(
        listing.serial,
        u64::from_str_radix(&serial_hex, 16).context("serial_number is hex")?
    );
    assert_eq!(listing.key_id, "ticket-42");
    assert_eq!(listing.principals, ["app1"]);
    let valid_from = unix_time_on(&client, &listing.valid_from)?;
    let valid_to = unix_time_on(&client, &listing.valid_to)?;
    // Backdated by the role's not_before_duration (30s), valid for the asked 2h.
    assert!(
        (requested_at - 30..=answered_at - 30).contains(&valid_from),
        "{listing:?}: valid from {valid_from}, asked at {requested_at}, answered at {answered_at}"
    );
    assert_eq!(valid_to - valid_from, 2 * 3600 + 30, "{listing:?}");
    assert_eq!(
        listing.critical_options,
        [format!("source-address {client_address}/32")]
    );
    assert_eq!(listing.extensions, ["permit-port-forwarding", "permit-pty"]);

    let listing =
        parse_listing(&server.exec("ssh-keygen -L -f /etc/ssh/ssh_host_ed25519_key-cert.pub")?)?;
    assert!(
        listing.type_line.ends_with("host certificate"),
        "{listing:?}"
    );
    assert_eq!(listing.principals, [HOST_NAME]);
    assert!(
        listing.critical_options.is_empty() && listing.extensions.is_empty(),
        "{listing:?}"
    );
    let valid_from = unix_time_on(&server, &listing.valid_from)?;
    let valid_to = unix_time_on(&server, &listing.valid_to)?;
    assert_eq!(
        valid_to - valid_from,
        24 * 3600 + 30,
        "the role's ttl: {listing:?}"
    );
    Ok(())
}
