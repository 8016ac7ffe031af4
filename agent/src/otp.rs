//! `rotor-agent otp-verify`: the helper sshd's PAM stack runs (`pam_exec.so expose_authtok`)
//! to check a one-time password with the controller.
//!
//! Owns reading what PAM hands over (the OTP on stdin without NUL or newline, `PAM_USER`,
//! `PAM_RHOST`, `SSH_CONNECTION`), refusing locally what must never reach the controller
//! (anything not shaped like an OTP, so the account's own password never leaves the host;
//! sshd's decoy password for invalid users; invalid names; locked or expired accounts), and
//! one bounded round trip per controller address over the agent's own mutual-TLS identity.
//! Fails closed: any error, timeout or refusal is exit 1. The OTP never appears in a log,
//! an argument or an error. Must not run jobs.

use std::path::Path;
use std::time::{Duration, Instant};

use rotor_common::names::validate_username;
use rotor_common::pki::CONTROLLER_SERVER_NAME;
use rotor_common::secret::Password;
use rotor_common::wire::{self, AgentMessage, ControllerMessage, OtpVerifyRequest};
use tokio::io::AsyncReadExt;

use crate::identity::Identity;

/// sshd's stand-in password for invalid users (and for root under prohibit-password).
const SSHD_DECOY: &[u8] = b"\x08\n\r\x7fINCORRECT";
/// The whole helper, PAM's wait included, stays under this (sshd gives it no timeout).
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_OTP_BYTES: usize = 1024;

/// What the helper concluded, for its exit code and one log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused(String),
}

/// Strips what PAM may append (a NUL, a newline) from the token.
pub fn clean_token(raw: &[u8]) -> &[u8] {
    let mut token = raw;
    while let Some((last, rest)) = token.split_last() {
        if matches!(last, b'\0' | b'\n' | b'\r') {
            token = rest;
        } else {
            break;
        }
    }
    token
}

/// Why the account cannot log in with any password, from its /etc/shadow line, if so.
pub fn shadow_refusal(shadow: &str, user: &str, today_days: i64) -> Option<String> {
    let Some(line) = shadow
        .lines()
        .find(|line| line.split(':').next() == Some(user))
    else {
        return Some(format!("account {user} does not exist on this host"));
    };
    let fields: Vec<&str> = line.split(':').collect();
    let hash = fields.get(1).copied().unwrap_or("");
    if hash.starts_with('!') {
        return Some(format!("account {user} is locked"));
    }
    if let Some(expire) = fields.get(7).and_then(|field| field.parse::<i64>().ok())
        && expire <= today_days
    {
        return Some(format!("account {user} has expired"));
    }
    None
}

/// This host's addresses: the one the client reached first (SSH_CONNECTION's third field),
/// then every interface address except loopback.
pub fn host_addresses(ssh_connection: Option<&str>) -> Vec<String> {
    let mut addresses = Vec::new();
    if let Some(server) = ssh_connection.and_then(|value| value.split_whitespace().nth(2)) {
        addresses.push(server.to_string());
    }
    if let Ok(interfaces) = nix::ifaddrs::getifaddrs() {
        for interface in interfaces {
            let Some(address) = interface.address else {
                continue;
            };
            let ip = if let Some(v4) = address.as_sockaddr_in() {
                std::net::IpAddr::V4(v4.ip())
            } else if let Some(v6) = address.as_sockaddr_in6() {
                std::net::IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            if ip.is_loopback() {
                continue;
            }
            let text = ip.to_string();
            if !addresses.contains(&text) {
                addresses.push(text);
            }
        }
    }
    addresses
}

async fn ask_controller(
    identity: &Identity,
    controller: &str,
    request: &OtpVerifyRequest,
    budget: Duration,
) -> Result<(bool, String), String> {
    let client_config = rotor_common::tls::quic_client_config(
        &identity.ca_pem,
        &identity.cert_pem,
        &identity.key,
        Duration::from_secs(10),
        Duration::from_secs(3),
    )
    .map_err(|error| error.to_string())?;
    let exchange = async {
        let address = crate::link::resolve_controller(controller).await?;
        let bind: std::net::SocketAddr = if address.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .map_err(|_| "bad bind address".to_string())?;
        let endpoint = quinn::Endpoint::client(bind).map_err(|e| format!("UDP socket: {e}"))?;
        let connection = endpoint
            .connect_with(client_config, address, CONTROLLER_SERVER_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
        wire::write_frame(&mut send, &AgentMessage::OtpVerify(request.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let answer = wire::read_frame::<_, ControllerMessage>(&mut recv)
            .await
            .map_err(|e| format!("reading the verdict: {e}"))?;
        connection.close(quinn::VarInt::from_u32(0), b"done");
        match answer {
            Some(ControllerMessage::OtpVerdict { valid, reason }) => Ok((valid, reason)),
            Some(ControllerMessage::Refused { reason }) => Ok((false, reason)),
            _ => Err("no verdict from the controller".to_string()),
        }
    };
    tokio::time::timeout(budget, exchange)
        .await
        .map_err(|_| format!("no answer within {}ms", budget.as_millis()))?
}

/// Asks each controller in turn until one gives a verdict; none answering is a refusal.
async fn ask_controllers(
    identity: &Identity,
    request: &OtpVerifyRequest,
    deadline: Instant,
) -> Verdict {
    let mut failures = Vec::new();
    for controller in &identity.state.controllers {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match ask_controller(identity, controller, request, left).await {
            Ok((true, _)) => return Verdict::Accepted,
            Ok((false, reason)) => {
                return Verdict::Refused(format!("controller {controller}: {reason}"));
            }
            Err(detail) => failures.push(format!("{controller}: {detail}")),
        }
    }
    Verdict::Refused(format!("no controller answered ({})", failures.join("; ")))
}

fn today_days() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| (elapsed.as_secs() / 86_400) as i64)
        .unwrap_or(0)
}

/// The whole helper: stdin, environment and /etc/shadow in, a verdict out.
pub async fn verify(dir: &Path, shadow_path: &Path) -> Verdict {
    let deadline = Instant::now() + TOTAL_TIMEOUT;
    let user = std::env::var("PAM_USER").unwrap_or_default();
    if let Err(invalid) = validate_username(&user) {
        return Verdict::Refused(format!("PAM_USER: {invalid}"));
    }
    let mut raw = Vec::with_capacity(64);
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::stdin()
            .take(MAX_OTP_BYTES as u64 + 1)
            .read_to_end(&mut raw),
    )
    .await;
    if !matches!(read, Ok(Ok(_))) || raw.len() > MAX_OTP_BYTES {
        return Verdict::Refused("no usable token on stdin".into());
    }
    let token = clean_token(&raw);
    if token == SSHD_DECOY || clean_token(SSHD_DECOY) == token {
        return Verdict::Refused(format!(
            "sshd's decoy password for {user} (invalid user or forbidden login)"
        ));
    }
    let Ok(otp_text) = String::from_utf8(token.to_vec()) else {
        return Verdict::Refused("token is not text".into());
    };
    if otp_text.is_empty() {
        return Verdict::Refused("empty token".into());
    }
    if !rotor_common::otp::otp_shaped(&otp_text) {
        // Most likely the account's own password, for pam_unix next in the stack: it is
        // not an OTP, and it must not travel to the controller.
        return Verdict::Refused("not shaped like an OTP (left to the next PAM module)".into());
    }
    match std::fs::read_to_string(shadow_path) {
        Ok(shadow) => {
            if let Some(reason) = shadow_refusal(&shadow, &user, today_days()) {
                return Verdict::Refused(reason);
            }
        }
        Err(error) => {
            return Verdict::Refused(format!("cannot read {}: {error}", shadow_path.display()));
        }
    }
    let identity = match Identity::load(dir) {
        Ok(identity) => identity,
        Err(error) => return Verdict::Refused(error.to_string()),
    };
    let request = OtpVerifyRequest {
        protocol_version: wire::PROTOCOL_VERSION,
        otp: Password::new(otp_text),
        username: user,
        host_addresses: host_addresses(std::env::var("SSH_CONNECTION").ok().as_deref()),
        client_addr: std::env::var("PAM_RHOST")
            .ok()
            .filter(|value| !value.is_empty()),
    };
    ask_controllers(&identity, &request, deadline).await
}

/// `--check`: is the identity usable and a controller reachable, and what does the PAM stack
/// do with a failed OTP? Answers the report and whether everything needed works.
pub async fn check(dir: &Path, pam_sshd: &Path) -> (String, bool) {
    let mut report = String::new();
    let mut usable = true;
    match Identity::load(dir) {
        Err(error) => {
            report.push_str(&format!("identity: {error}\n"));
            usable = false;
        }
        Ok(identity) => {
            report.push_str(&format!(
                "identity: agent {} of site {}\n",
                identity.state.agent_id, identity.state.site
            ));
            let probe = OtpVerifyRequest {
                protocol_version: wire::PROTOCOL_VERSION,
                otp: Password::new("rotor-otp-verify-check"),
                username: "nobody".into(),
                host_addresses: host_addresses(None),
                client_addr: None,
            };
            for controller in &identity.state.controllers {
                match ask_controller(&identity, controller, &probe, Duration::from_secs(3)).await {
                    Ok((_, reason))
                        if reason.contains("revoked") || reason.contains("not enrolled") =>
                    {
                        report.push_str(&format!(
                            "controller {controller}: refuses this agent: {reason}\n"
                        ));
                        usable = false;
                    }
                    Ok(_) => report.push_str(&format!(
                        "controller {controller}: reachable, identity accepted\n"
                    )),
                    Err(detail) => {
                        report
                            .push_str(&format!("controller {controller}: UNREACHABLE: {detail}\n"));
                        usable = false;
                    }
                }
            }
        }
    }
    match std::fs::read_to_string(pam_sshd) {
        Err(error) => report.push_str(&format!(
            "pam: cannot read {}: {error}\n",
            pam_sshd.display()
        )),
        Ok(stack) => {
            let line = stack.lines().map(str::trim).find(|line| {
                !line.starts_with('#')
                    && line.contains("pam_exec.so")
                    && line.contains("otp-verify")
            });
            match line.and_then(|line| line.split_whitespace().nth(1)) {
                None => {
                    report.push_str(&format!("pam: {} has no pam_exec line running otp-verify: OTPs are not checked\n", pam_sshd.display()));
                    usable = false;
                }
                Some("sufficient") => report.push_str(
                    "pam: WARNING: the helper is 'sufficient': a failed OTP falls through to the account's own password\n",
                ),
                Some(control) => report.push_str(&format!("pam: the helper is '{control}': an OTP is required\n")),
            }
        }
    }
    (report, usable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_lose_nul_and_newlines_but_keep_their_text() {
        assert_eq!(clean_token(b"abc\0"), b"abc");
        assert_eq!(clean_token(b"abc\n"), b"abc");
        assert_eq!(clean_token(b"abc\r\n\0"), b"abc");
        assert_eq!(clean_token(b"abc"), b"abc");
        assert_eq!(clean_token(SSHD_DECOY), b"\x08\n\r\x7fINCORRECT");
    }

    #[test]
    fn locked_expired_and_unknown_accounts_are_refused() {
        let shadow = "app1:$y$j9T$abc:19000:0:99999:7:::\nlocked:!$y$j9T$abc:19000:0:99999:7:::\nold:$y$x:19000:0:99999:7::19500:\n";
        assert_eq!(shadow_refusal(shadow, "app1", 20000), None);
        assert!(shadow_refusal(shadow, "locked", 20000).is_some_and(|r| r.contains("locked")));
        assert!(shadow_refusal(shadow, "old", 20000).is_some_and(|r| r.contains("expired")));
        assert_eq!(shadow_refusal(shadow, "old", 19000), None);
        assert!(
            shadow_refusal(shadow, "ghost", 20000).is_some_and(|r| r.contains("does not exist"))
        );
    }

    #[test]
    fn the_server_address_the_client_reached_comes_first() {
        let addresses = host_addresses(Some("10.1.2.3 50000 10.9.8.7 22"));
        assert_eq!(addresses.first().map(String::as_str), Some("10.9.8.7"));
    }
}
