//! Running `scripts/demo.sh` as the README prints it, for the scenarios that drive it
//! (`demo_script`, `newcomer_path`): starting it with this build's binaries, reading what it
//! printed, and checking it removed every container, network, process and directory it made.
//!
//! Must not assert what the demo proves: each scenario does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::support::{Process, binary};

/// A cold host image (debootstrap) is built by the script itself; allow for it.
pub const DEMO_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The directory of this build's `rotor` and `rotor-agent` (the demo's `ROTOR_BIN_DIR`).
pub fn binaries_dir() -> Result<PathBuf> {
    Ok(binary("rotor")?
        .parent()
        .context("the rotor binary has no directory")?
        .to_path_buf())
}

/// Starts `bash <checkout>/scripts/demo.sh [arguments]` with this build's binaries, so
/// nothing is rebuilt, and the script's own host image.
pub fn start_demo(checkout: &Path, arguments: &[&str]) -> Result<Process> {
    let mut command = Command::new("bash");
    command
        .arg(checkout.join("scripts/demo.sh"))
        .args(arguments)
        .current_dir(checkout)
        .env("ROTOR_BIN_DIR", binaries_dir()?)
        .env_remove("ROTOR_DEMO_NONINTERACTIVE")
        .env_remove("ROTOR_TEST_IMAGE");
    Process::spawn(&format!("scripts/demo.sh {}", arguments.join(" ")), command)
}

/// The checkout this test was built from.
pub fn this_checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Stops a running demo as Ctrl-C would (its trap removes what it started) and answers
/// its exit code.
pub fn interrupt(demo: &mut Process) -> Result<Option<i32>> {
    demo.signal("INT")?;
    demo.wait_exit(Duration::from_secs(120))
}

/// After a demo exited: no container or network of its run, no controller or agent
/// process, no temp directory.
pub fn assert_cleaned_up(stdout: &str) -> Result<()> {
    let binaries = binaries_dir()?;
    let demo_id = text_after(stdout, "] demo ")?;
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
    let controller_pid = text_after(stdout, "controller pid ")?;
    let controller_pid = controller_pid.split(':').next().unwrap_or_default();
    let agent_pid = text_after(stdout, "(pid ")?;
    let agent_pid = agent_pid.split(')').next().unwrap_or_default();
    for (name, pid) in [("rotor server", controller_pid), ("rotor-agent", agent_pid)] {
        assert!(
            !runs_binary_of(pid, &binaries),
            "{name} (pid {pid}) still runs after the demo exited"
        );
    }
    let removed_line = text_after(stdout, "the network and ")?;
    let work_dir = PathBuf::from(removed_line.trim());
    assert!(
        work_dir.is_absolute() && !work_dir.exists(),
        "the demo's directory {} is still there",
        work_dir.display()
    );
    Ok(())
}

/// The rest of the first line containing `marker`, after it.
pub fn text_after<'a>(text: &'a str, marker: &str) -> Result<&'a str> {
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

pub fn docker(args: &[&str]) -> Result<String> {
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
