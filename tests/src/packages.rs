//! Rotor's Debian packages for scenarios that install them: runs `scripts/build-deb.sh`
//! over the binaries cargo built (the ones the harness bind-mounts elsewhere), into a
//! directory the caller owns. Does not install anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::run_program;
use crate::rotor::binaries::locate_binaries;

/// Stripping and packing a debug build takes a few seconds; allow for a loaded machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// Builds `packages` (`rotor-agent`, `rotor`) into `out_dir`; answers each .deb's path.
pub fn build_debs(packages: &[&str], out_dir: &Path) -> Result<Vec<PathBuf>> {
    let binaries = locate_binaries()?;
    let bin_dir = binaries
        .agent
        .parent()
        .context("the rotor-agent binary has no directory")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-deb.sh");
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .args(packages)
        .env("ROTOR_BIN_DIR", bin_dir)
        .env("ROTOR_DEB_DIR", out_dir);
    let output = run_program(command, None, BUILD_TIMEOUT)
        .with_context(|| format!("running {}", script.display()))?;
    if !output.success() {
        bail!(
            "scripts/build-deb.sh {} failed ({}): {}",
            packages.join(" "),
            output.describe_exit(),
            output.diagnostics()
        );
    }
    let debs: Vec<PathBuf> = output.stdout.lines().map(PathBuf::from).collect();
    if debs.len() != packages.len() || debs.iter().any(|deb| !deb.is_file()) {
        bail!(
            "scripts/build-deb.sh printed {debs:?} for {packages:?}; stderr: {}",
            output.stderr
        );
    }
    Ok(debs)
}
