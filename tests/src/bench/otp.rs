//! OTP login latency (issue 8's benchmark): one harness host with `rotor-agent otp-verify`
//! as sshd's `pam_exec` helper (the `sufficient` stack, set up as `tests/tests/ssh_otp.rs`
//! does), the controller in its container. From the site's probe, timed inside the probe:
//! N logins (`sshpass -e ssh … true`) with the account's password before the helper is
//! installed (the baseline), then N with fresh OTPs interleaved with N with the password
//! (which now passes through the helper first and falls through to pam_unix). Inside the
//! host, N helper runs alone (`otp-verify` with an OTP on stdin, as pam_exec runs it).
//!
//! Owns this set-up and its timing scripts. Must not judge the figures.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use super::fresh_password;
use super::stats::{Sample, samples};
use crate::faults::Faults;
use crate::host::Host;
use crate::otp_helper::{HELPER_DIR, install_otp_helper};
use crate::rotor::Rotor;
use crate::site::Site;

const USER: &str = "app1";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(900);

/// Every sample of one OTP benchmark run.
pub struct OtpSamples {
    pub baseline_password: Vec<Sample>,
    /// `otp` and `password` samples, interleaved in time.
    pub with_helper: Vec<Sample>,
    /// `helper` samples: otp-verify alone inside the host.
    pub helper_alone: Vec<Sample>,
}

/// Runs the OTP benchmark with `logins` samples of each kind.
pub fn run(logins: usize) -> Result<OtpSamples> {
    let site = Site::new("otpbench")?;
    let password = fresh_password();
    let host = site.host("otp-1").with_user(USER, &password).start()?;
    let rotor = Rotor::start(&[&site])?;
    let ip = host.address()?.to_string();
    let probe_ip = site.probe()?.address_on(site.network())?.to_string();

    // Warm-up (probe start, first handshakes), then the baseline.
    host.login(USER, &password)
        .map_err(|error| anyhow!("the account's password must log in: {error}"))?;
    let baseline: String = (0..logins)
        .map(|_| format!("password {password}\n"))
        .collect();
    let baseline_password = timed_logins(&site, &ip, &baseline)?;

    install_otp_helper(&rotor, &host, "otp-hosts")?;
    let subnet = match ip.split('.').collect::<Vec<_>>()[..] {
        [a, b, _, _] => format!("{a}.{b}.0.0/16"),
        _ => bail!("the host's address {ip} is not IPv4"),
    };
    rotor.cli(&[
        "write",
        "ssh/roles/bench",
        "key_type=otp",
        &format!("default_user={USER}"),
        &format!("cidr_list={subnet}"),
    ])?;
    let first = otps(&rotor, &ip, 1)?;
    let first = first.first().ok_or_else(|| anyhow!("no OTP issued"))?;
    host.login(USER, first)
        .map_err(|error| anyhow!("a fresh OTP must log in: {error}"))?;

    let mut mixed = String::new();
    for otp in otps(&rotor, &ip, logins)? {
        mixed.push_str(&format!("otp {otp}\npassword {password}\n"));
    }
    let with_helper = timed_logins(&site, &ip, &mixed)?;

    let alone = otps(&rotor, &ip, logins)?;
    let helper_alone = timed_helper(&host, &probe_ip, &ip, &alone)?;
    Ok(OtpSamples {
        baseline_password,
        with_helper,
        helper_alone,
    })
}

/// `count` fresh OTPs for `ip` and the benchmark user, issued in one controller exec.
fn otps(rotor: &Rotor, ip: &str, count: usize) -> Result<Vec<String>> {
    let token = rotor.controller().root_token().to_string();
    let script = format!(
        "i=0; while [ $i -lt {count} ]; do rotor write -field=key ssh/creds/bench ip={ip} \
         username={USER} || exit 1; echo; i=$((i+1)); done"
    );
    let output = rotor.controller().container().exec_program(
        &["sh", "-c", &script],
        &[
            ("ROTOR_ADDR", "https://127.0.0.1:8200"),
            ("ROTOR_CACERT", "/data/ca.pem"),
            ("ROTOR_TOKEN", &token),
        ],
        None,
        SCRIPT_TIMEOUT,
    )?;
    if !output.success() {
        bail!("issuing OTPs failed: {}", output.diagnostics());
    }
    let keys: Vec<String> = output
        .stdout
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect();
    if keys.len() != count {
        bail!("asked for {count} OTPs, got {}", keys.len());
    }
    Ok(keys)
}

/// Times one `sshpass -e ssh … true` per `KIND SECRET` line of `plan`, in order, inside the
/// site's probe; every login must succeed.
fn timed_logins(site: &Site, ip: &str, plan: &str) -> Result<Vec<Sample>> {
    let script = format!(
        "while read -r kind secret; do \
         s=$(date +%s%N); \
         SSHPASS=\"$secret\" sshpass -e ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o PreferredAuthentications=password,keyboard-interactive -o PubkeyAuthentication=no \
         -o LogLevel=ERROR -o ConnectTimeout=10 {USER}@{ip} true </dev/null >/dev/null 2>&1; rc=$?; \
         e=$(date +%s%N); echo \"sample $kind $rc $((e-s))\"; done"
    );
    let output = site.probe()?.exec_program(
        &["sh", "-c", &script],
        &[],
        Some(plan.as_bytes()),
        SCRIPT_TIMEOUT,
    )?;
    all_succeeded(samples(&output.stdout)?, plan.lines().count())
}

/// Times `rotor-agent otp-verify` alone inside the host, with the environment pam_exec
/// gives it and each OTP on stdin.
fn timed_helper(host: &Host, probe_ip: &str, ip: &str, otps: &[String]) -> Result<Vec<Sample>> {
    let plan: String = otps.iter().map(|otp| format!("{otp}\n")).collect();
    let script = format!(
        "while read -r secret; do \
         s=$(date +%s%N); \
         printf %s \"$secret\" | env -i PAM_USER={USER} PAM_RHOST={probe_ip} PAM_SERVICE=sshd \
         PAM_TYPE=auth PAM_TTY=ssh SSH_CONNECTION='{probe_ip} 40000 {ip} 22' \
         /usr/local/bin/rotor-agent otp-verify --dir {HELPER_DIR} >/dev/null 2>&1; rc=$?; \
         e=$(date +%s%N); echo \"sample helper $rc $((e-s))\"; done"
    );
    let output = host.container().exec_program(
        &["sh", "-c", &script],
        &[],
        Some(plan.as_bytes()),
        SCRIPT_TIMEOUT,
    )?;
    all_succeeded(samples(&output.stdout)?, otps.len())
}

fn all_succeeded(found: Vec<Sample>, expected: usize) -> Result<Vec<Sample>> {
    if found.len() != expected {
        bail!("expected {expected} timed attempts, got {}", found.len());
    }
    if let Some(failed) = found.iter().find(|sample| sample.exit_code != 0) {
        bail!(
            "a timed {} login failed (exit {}): the measurement would be meaningless",
            failed.kind,
            failed.exit_code
        );
    }
    Ok(found)
}
