//! Installing `rotor-agent` on a harness host as sshd's PAM OTP helper: the binary copied in,
//! an agent enrolled with its own identity, and the `pam_exec` line placed before
//! `common-auth` (the `sufficient` stack of deploy/pam.d).
//!
//! Owns that setup only; what a test or benchmark then proves with it is theirs.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::docker::docker;
use crate::host::Host;
use crate::rotor::Rotor;
use crate::rotor::binaries::locate_binaries;

/// Where the helper's identity lives on the host.
pub const HELPER_DIR: &str = "/var/lib/rotor-agent";
/// The PAM line of deploy/pam.d, naming where the harness copies the binary
/// (`/usr/local/bin`; the Debian package's, which deploy/pam.d names, is `/usr/bin`).
pub const PAM_LINE: &str = "auth sufficient pam_exec.so expose_authtok quiet /usr/local/bin/rotor-agent otp-verify --dir /var/lib/rotor-agent";

/// Installs and enrolls the helper on `host` for `site`; answers its agent id.
pub fn install_otp_helper(rotor: &Rotor, host: &Host, site: &str) -> Result<String> {
    host.container().connect_to(rotor.core())?;
    let binaries = locate_binaries()?;
    docker(&[
        "cp",
        &binaries.agent.to_string_lossy(),
        &format!("{}:/usr/local/bin/rotor-agent", host.container().name()),
    ])?;
    let enrollment = rotor.cli_json(&["write", "agents/enroll", &format!("site={site}")])?;
    let data = &enrollment["data"];
    let agent_id = data["agent_id"].as_str().context("agent_id")?.to_string();
    let fingerprint = data["ca_fingerprint"].as_str().context("ca_fingerprint")?;
    let token = data["token"].as_str().context("token")?;
    let enrolled = host.container().exec_program(
        &[
            "rotor-agent",
            "enroll",
            "--controller",
            &rotor.controller().agent_address(),
            "--ca-fingerprint",
            fingerprint,
            "--dir",
            HELPER_DIR,
        ],
        &[("ROTOR_ENROLL_TOKEN", token)],
        None,
        Duration::from_secs(60),
    )?;
    if !enrolled.success() {
        bail!(
            "enrolling the helper on {} failed: {}",
            host.name(),
            enrolled.diagnostics()
        );
    }
    host.exec(&format!(
        "grep -q otp-verify /etc/pam.d/sshd || sed -i '/^@include common-auth/i {PAM_LINE}' /etc/pam.d/sshd"
    ))?;
    let stack = host.exec("cat /etc/pam.d/sshd")?;
    match (stack.find("otp-verify"), stack.find("@include common-auth")) {
        (Some(helper), Some(common)) if helper < common => Ok(agent_id),
        _ => bail!(
            "the helper's PAM line must precede common-auth on {}:\n{stack}",
            host.name()
        ),
    }
}
