//! SSH logins to a host, made from its site's probe container with `sshpass -e ssh`
//! (password in the SSHPASS environment variable, never on a command line), and the
//! error that says why one failed: the password was refused, or the host could not be
//! reached (refused, timed out, no route).
//! Does not decide what a test expects; see `assertions`.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::host::Host;
use crate::naming::validate_user;
use crate::process::ProgramOutput;

/// Printed (to stderr) by the remote shell before the command: proof the login worked,
/// so the command's own exit status is never mistaken for sshpass's or ssh's.
const LOGGED_IN_MARKER: &str = "rotor-tests-logged-in";
/// ssh gives up connecting (and on the banner exchange) after this.
const CONNECT_TIMEOUT_SECS: u32 = 5;
/// Bound on the whole ssh run inside the probe.
const SSH_TIMEOUT_SECS: u32 = 60;

/// Why a login failed. Variants before `SessionFailed` mean the host was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    /// sshd asked for the password again: it is not this user's password (or the
    /// account does not exist or is locked).
    WrongPassword,
    /// sshd refused without trying the password (e.g. password methods disabled).
    AuthenticationRefused(String),
    /// Logged in, but the session or command failed.
    SessionFailed {
        exit_code: Option<i32>,
        stderr: String,
    },
    /// Nothing listens on port 22 (sshd stopped).
    ConnectionRefused,
    /// No answer in time: host paused, partitioned or very slow.
    TimedOut,
    /// The address is not on the network any more.
    NoRoute,
    /// The host has no address on its site network.
    NoAddress(String),
    /// The connection was cut before authentication finished.
    ConnectionClosed(String),
    /// The harness could not run ssh, or ssh failed in a way not classified above.
    Other(String),
}

impl LoginFailure {
    /// True when sshd was reached and refused this password.
    pub fn is_wrong_password(&self) -> bool {
        matches!(self, LoginFailure::WrongPassword)
    }

    /// True when the host's sshd could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            LoginFailure::ConnectionRefused
                | LoginFailure::TimedOut
                | LoginFailure::NoRoute
                | LoginFailure::NoAddress(_)
                | LoginFailure::ConnectionClosed(_)
        )
    }
}

impl fmt::Display for LoginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginFailure::WrongPassword => {
                write!(f, "wrong password: sshd refused the password for this user")
            }
            LoginFailure::AuthenticationRefused(detail) => {
                write!(
                    f,
                    "authentication refused before any password was tried: {detail}"
                )
            }
            LoginFailure::SessionFailed { exit_code, stderr } => write!(
                f,
                "logged in, but the session failed (exit {}): {stderr}",
                exit_code.map_or("by signal".to_string(), |code| code.to_string())
            ),
            LoginFailure::ConnectionRefused => {
                write!(
                    f,
                    "unreachable: connection refused (sshd not listening on port 22)"
                )
            }
            LoginFailure::TimedOut => write!(
                f,
                "unreachable: timed out (host paused, partitioned or not answering)"
            ),
            LoginFailure::NoRoute => write!(f, "unreachable: no route to host"),
            LoginFailure::NoAddress(detail) => write!(f, "unreachable: {detail}"),
            LoginFailure::ConnectionClosed(detail) => {
                write!(
                    f,
                    "unreachable: connection closed before authentication: {detail}"
                )
            }
            LoginFailure::Other(detail) => write!(f, "could not try the login: {detail}"),
        }
    }
}

/// A failed login, naming host, site, user, address and the cause. Never holds the
/// password. Boxed inside, so `Result<_, LoginError>` stays small.
#[derive(Debug, Clone)]
pub struct LoginError {
    details: Box<LoginErrorDetails>,
}

#[derive(Debug, Clone)]
struct LoginErrorDetails {
    host: String,
    site: String,
    user: String,
    address: Option<IpAddr>,
    failure: LoginFailure,
}

impl LoginError {
    fn new(host: &Host, user: &str, address: Option<IpAddr>, failure: LoginFailure) -> Self {
        LoginError {
            details: Box::new(LoginErrorDetails {
                host: host.name().to_string(),
                site: host.site().name().to_string(),
                user: user.to_string(),
                address,
                failure,
            }),
        }
    }

    pub(crate) fn session_failed(host: &Host, user: &str, output: &ProgramOutput) -> Self {
        let failure = LoginFailure::SessionFailed {
            exit_code: output.exit_code,
            stderr: output.stderr.trim().to_string(),
        };
        LoginError::new(host, user, host.address_for_login().ok(), failure)
    }

    /// Why the login failed.
    pub fn failure(&self) -> &LoginFailure {
        &self.details.failure
    }

    /// The host's name as the test gave it.
    pub fn host(&self) -> &str {
        &self.details.host
    }

    /// The site of the host.
    pub fn site(&self) -> &str {
        &self.details.site
    }

    /// The account the login was for.
    pub fn user(&self) -> &str {
        &self.details.user
    }

    /// The address tried, if the host had one.
    pub fn address(&self) -> Option<IpAddr> {
        self.details.address
    }
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let details = &self.details;
        let address = details
            .address
            .map_or("no address".to_string(), |address| format!("{address}:22"));
        write!(
            f,
            "login as `{}` to host {} of site {} ({address}) failed: {}",
            details.user, details.host, details.site, details.failure
        )
    }
}

impl std::error::Error for LoginError {}

/// Logs in to `host` as `user` from the site's probe and runs `command` with `stdin`.
/// Ok (the command's output, whatever its exit status) once logged in.
pub(crate) fn run_over_ssh(
    host: &Host,
    user: &str,
    password: &str,
    command: &str,
    stdin: Option<&[u8]>,
) -> Result<ProgramOutput, LoginError> {
    let fail = |address, failure| LoginError::new(host, user, address, failure);
    validate_user(user).map_err(|error| fail(None, LoginFailure::Other(format!("{error:#}"))))?;
    let address = host
        .address_for_login()
        .map_err(|error| fail(None, LoginFailure::NoAddress(format!("{error:#}"))))?;
    let probe = host
        .site()
        .probe()
        .map_err(|error| fail(Some(address), LoginFailure::Other(format!("{error:#}"))))?;

    let ssh_timeout = SSH_TIMEOUT_SECS.to_string();
    let connect_timeout = format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}");
    let destination = format!("{user}@{address}");
    let remote = format!("echo {LOGGED_IN_MARKER} >&2; {command}");
    let argv = [
        "timeout",
        &ssh_timeout,
        "sshpass",
        "-e",
        "ssh",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        &connect_timeout,
        "-o",
        "LogLevel=ERROR",
        &destination,
        &remote,
    ];
    let output = probe
        .exec_program(
            &argv,
            &[("SSHPASS", password)],
            stdin,
            Duration::from_secs(u64::from(SSH_TIMEOUT_SECS) + 30),
        )
        .map_err(|error| fail(Some(address), LoginFailure::Other(format!("{error:#}"))))?;

    match classify(&output) {
        None => Ok(ProgramOutput {
            stderr: strip_marker(&output.stderr),
            ..output
        }),
        Some(failure) => Err(fail(Some(address), failure)),
    }
}

/// `None` when the remote shell ran (the marker is on stderr); otherwise why not.
fn classify(output: &ProgramOutput) -> Option<LoginFailure> {
    if output
        .stderr
        .lines()
        .any(|line| line.trim() == LOGGED_IN_MARKER)
    {
        return None;
    }
    let stderr = output.stderr.trim();
    Some(match output.exit_code {
        // sshpass: the password prompt came back.
        Some(5) => LoginFailure::WrongPassword,
        // coreutils timeout
        Some(124) => LoginFailure::TimedOut,
        _ if stderr.contains("Connection refused") => LoginFailure::ConnectionRefused,
        _ if stderr.contains("timed out") => LoginFailure::TimedOut,
        _ if stderr.contains("No route to host") => LoginFailure::NoRoute,
        _ if stderr.contains("Permission denied") => {
            LoginFailure::AuthenticationRefused(stderr.to_string())
        }
        _ if stderr.contains("Connection closed")
            || stderr.contains("Connection reset")
            || stderr.contains("closed by remote host") =>
        {
            LoginFailure::ConnectionClosed(stderr.to_string())
        }
        _ => LoginFailure::Other(format!(
            "sshpass/ssh ended with {} and no sign of a login: {stderr}",
            output.describe_exit()
        )),
    })
}

fn strip_marker(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|line| line.trim() != LOGGED_IN_MARKER)
        .map(|line| format!("{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(exit_code: i32, stderr: &str) -> ProgramOutput {
        ProgramOutput {
            exit_code: Some(exit_code),
            stdout: String::new(),
            stderr: stderr.to_string(),
        }
    }

    #[test]
    fn the_marker_means_logged_in_whatever_the_exit_code() {
        let result = classify(&output(
            1,
            "rotor-tests-logged-in\nsudo: a password is required\n",
        ));
        assert_eq!(result, None);
        assert_eq!(
            strip_marker("rotor-tests-logged-in\nsudo: a password is required\n"),
            "sudo: a password is required\n"
        );
    }

    #[test]
    fn failures_are_told_apart_as_observed_with_openssh_9_2() {
        let cases = [
            (
                5,
                "Permission denied, please try again.",
                LoginFailure::WrongPassword,
            ),
            (
                255,
                "ssh: connect to host 172.18.0.2 port 22: Connection refused",
                LoginFailure::ConnectionRefused,
            ),
            (
                255,
                "ssh: connect to host 172.19.0.2 port 22: Connection timed out",
                LoginFailure::TimedOut,
            ),
            (
                255,
                "Connection timed out during banner exchange",
                LoginFailure::TimedOut,
            ),
            (
                255,
                "ssh: connect to host 172.18.0.2 port 22: No route to host",
                LoginFailure::NoRoute,
            ),
            (124, "", LoginFailure::TimedOut),
        ];
        for (exit_code, stderr, expected) in cases {
            assert_eq!(
                classify(&output(exit_code, stderr)),
                Some(expected),
                "{stderr}"
            );
        }
        assert!(matches!(
            classify(&output(255, "user@1.2.3.4: Permission denied (publickey).")),
            Some(LoginFailure::AuthenticationRefused(_))
        ));
    }

    #[test]
    fn unreachable_and_wrong_password_are_distinct() {
        assert!(LoginFailure::WrongPassword.is_wrong_password());
        assert!(!LoginFailure::WrongPassword.is_unreachable());
        assert!(LoginFailure::ConnectionRefused.is_unreachable());
        assert!(LoginFailure::TimedOut.to_string().contains("unreachable"));
        assert!(
            LoginFailure::WrongPassword
                .to_string()
                .contains("wrong password")
        );
    }
}
