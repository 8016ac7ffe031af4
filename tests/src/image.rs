//! Finds or builds the test-host image, once per test process, by running
//! `tests/image/build-image.sh` (which caches by recipe hash and serialises concurrent
//! builds with flock). Does not start containers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::docker::{docker, require_docker};
use crate::process::run_program;

/// A cold build (debootstrap + import) takes about 40 s here; allow for slow mirrors.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The recipe script, found from this crate's source directory.
pub fn build_script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("image")
        .join("build-image.sh")
}

/// The tag of the test-host image (`rotor-host:<hash12>`), building it on first use.
/// `ROTOR_TEST_IMAGE=<tag>` uses an existing image instead of the recipe.
pub fn test_image() -> Result<String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| find_or_build().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(|message| anyhow!("no test-host image: {message}"))
}

fn find_or_build() -> Result<String> {
    require_docker()?;
    if let Ok(tag) = std::env::var("ROTOR_TEST_IMAGE") {
        docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).map_err(|error| {
            error.context(format!("ROTOR_TEST_IMAGE={tag} names no local image"))
        })?;
        return Ok(tag);
    }
    let script = build_script_path();
    let output = run_program(Command::new(&script), None, BUILD_TIMEOUT)
        .map_err(|error| error.context(format!("running {}", script.display())))?;
    let tag = output
        .stdout
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    if !output.success() || !tag.starts_with("rotor-host:") {
        let stderr_tail: Vec<&str> = output.stderr.lines().rev().take(15).collect();
        let stderr_tail: Vec<&str> = stderr_tail.into_iter().rev().collect();
        return Err(anyhow!(
            "{} failed ({}), so the test hosts cannot be started; it needs root, \
             debootstrap, Docker and the apt mirror. Last lines:\n{}",
            script.display(),
            output.describe_exit(),
            stderr_tail.join("\n")
        ));
    }
    Ok(tag)
}
