//! Finds the `rotor` and `rotor-agent` binaries cargo built on this machine, to be
//! bind-mounted read-only into containers (the test image is Debian 12, like the
//! build machine, so the glibc matches). Never builds them.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Paths of the two binaries on the machine running the tests.
#[derive(Debug, Clone)]
pub struct RotorBinaries {
    pub controller: PathBuf,
    pub agent: PathBuf,
}

/// Looks in `$ROTOR_BIN_DIR`, then `$CARGO_TARGET_DIR/debug`, then the profile directory
/// of the running test executable (`target/debug/deps/..`).
pub fn locate_binaries() -> Result<RotorBinaries> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("ROTOR_BIN_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(Path::new(&dir).join("debug"));
    }
    if let Ok(executable) = std::env::current_exe()
        && let Some(profile_dir) = executable.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.to_path_buf());
    }
    for dir in &candidates {
        let controller = dir.join("rotor");
        let agent = dir.join("rotor-agent");
        if controller.is_file() && agent.is_file() {
            return Ok(RotorBinaries { controller, agent });
        }
    }
    let searched: Vec<String> = candidates
        .iter()
        .map(|dir| dir.display().to_string())
        .collect();
    bail!(
        "the Rotor binaries `rotor` and `rotor-agent` were not found (searched: {}); \
         build them with `cargo build -p rotor-controller -p rotor-agent` or set ROTOR_BIN_DIR",
        searched.join(", ")
    )
}
