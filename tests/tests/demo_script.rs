//! Issue 21 item 1, "The README's first command runs the main job": `bash scripts/demo.sh
//! --no-wait` starts a dev controller and an agent, two Debian hosts in containers, rotates a
//! parent-managed and a self-managed password, proves each by an SSH login (the old one
//! refused), and removes everything it started. Runs the script as the README prints it,
//! with this build's binaries (`ROTOR_BIN_DIR`) so nothing is rebuilt.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rotor_tests::skip_requested;
use support::{Process, binary};

/// A cold host image (debootstrap) is built by the script itself; allow for it.
const DEMO_TIMEOUT: Duration = Duration::from_secs(20 * 60);

#[test]
fn the_demo_rotates_and_proves_two_passwords_then_removes_what_it_started() -> Result<()> {
    if skip_requested("demo_script") {
        return Ok(());
    }
    let binaries = binary("rotor")?
        .parent()
        .context("the rotor binary has no directory")?
        .to_path_buf();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo.sh");
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .arg("--no-wait")
        .env("ROTOR_BIN_DIR", &binaries)
        .env_remove("ROTOR_DEMO_NONINTERACTIVE")
        .env_remove("ROTOR_TEST_IMAGE");
    let mut demo = Process::spawn("scripts/demo.sh --no-wait", command)?;
    let exit_code = match demo.wait_exit(DEMO_TIMEOUT) {
        Ok(code) => code,
        Err(error) => {
            // SIGTERM, not SIGKILL: the script's trap removes what it started.
            let _ = demo.signal("TERM");
            let _ = demo.wait_exit(Duration::from_secs(60));
            return Err(error.context("the demo did not finish"));
        }
    };
    let stdout = demo.stdout();
    let everything = format!("{stdout}\n--- stderr ---\n{}", demo.stderr());
    assert_eq!(exit_code, Some(0), "{everything}");

    for expected in [
        "login as app on web-1 with the new password (version 2): ok",
        "login as app on web-1 with the old password: refused",
        "login as svc on db-1 with the new password (version 2): ok",
        "login as svc on db-1 with the old password: refused",
        "done: 2 passwords rotated and proved by SSH logins",
        "export ROTOR_ADDR='https://127.0.0.1:",
        "export ROTOR_CACERT='",
        "export ROTOR_TOKEN='",
        "rotor rotation watch",
    ] {
        assert!(
            stdout.contains(expected),
            "no `{expected}` in:\n{everything}"
        );
    }
    let first_rotation = text_after(&stdout, "first password rotated ")?;
    assert!(
        first_rotation.ends_with(" s after the demo started"),
        "{first_rotation}"
    );

    // Cleaned up: no container or network of this run, no process, no temp directory.
    let demo_id = text_after(&stdout, "] demo ")?;
    assert!(demo_id.starts_with("rotor-demo-"), "{demo_id}");
    let label = format!("label=rotor-demo.run={demo_id}");
    for listing in [
        vec!["ps", "-a", "-q", "--filter", &label],
        vec!["network", "ls", "-q", "--filter", &label],
    ] {
        let left = docker(&listing)?;
        assert!(
            left.trim().is_empty(),
            "`docker {}` still lists {left}",
            listing.join(" ")
        );
    }
    let controller_pid = text_after(&stdout, "controller pid ")?;
    let controller_pid = controller_pid.split(':').next().unwrap_or_default();
    let agent_pid = text_after(&stdout, "(pid ")?;
    let agent_pid = agent_pid.split(')').next().unwrap_or_default();
    for (name, pid) in [("rotor server", controller_pid), ("rotor-agent", agent_pid)] {
        assert!(
            !runs_binary_of(pid, &binaries),
            "{name} (pid {pid}) still runs after the demo exited"
        );
    }
    let removed_line = text_after(&stdout, "the network and ")?;
    let work_dir = PathBuf::from(removed_line.trim());
    assert!(
        work_dir.is_absolute() && !work_dir.exists(),
        "the demo's directory {} is still there",
        work_dir.display()
    );
    Ok(())
}

/// The rest of the first line containing `marker`, after it.
fn text_after<'a>(text: &'a str, marker: &str) -> Result<&'a str> {
    text.lines()
        .find_map(|line| line.split_once(marker).map(|(_, rest)| rest))
        .with_context(|| format!("the demo printed no `{marker}` line:\n{text}"))
}

/// Whether process `pid` exists and runs a program from `binaries` (a reused pid does not).
fn runs_binary_of(pid: &str, binaries: &Path) -> bool {
    let Ok(command_line) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    String::from_utf8_lossy(&command_line).contains(&*binaries.to_string_lossy())
}

fn docker(args: &[&str]) -> Result<String> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .context("running docker")?;
    if !output.status.success() {
        bail!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}
