//! The docker CLI, called the way the harness needs it: errors name the command and
//! Docker's answer, and the first call checks once that a daemon is reachable.
//! Never puts a secret on a command line: secret values travel in the CLI's own
//! environment (`docker exec -e NAME` without a value) or on stdin.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::process::{ProgramOutput, run_program};

/// Deadline for ordinary docker calls (run, exec, inspect, rm).
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(90);

/// One docker CLI call. `env` is set on the docker CLI process, so `-e NAME` (no value)
/// in `args` forwards it into a container without it appearing in any argument list.
pub struct DockerCall<'a> {
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub stdin: Option<&'a [u8]>,
    pub timeout: Duration,
}

impl<'a> DockerCall<'a> {
    pub fn new(args: &'a [&'a str]) -> Self {
        DockerCall {
            args,
            env: &[],
            stdin: None,
            timeout: DOCKER_TIMEOUT,
        }
    }

    /// Runs the call; Ok whatever the exit status.
    pub fn output(&self) -> Result<ProgramOutput> {
        require_docker()?;
        self.output_unchecked()
    }

    fn output_unchecked(&self) -> Result<ProgramOutput> {
        let mut command = Command::new("docker");
        command.args(self.args);
        for (name, value) in self.env {
            command.env(name, value);
        }
        run_program(command, self.stdin, self.timeout)
            .map_err(|error| error.context(format!("running `docker {}`", self.args.join(" "))))
    }

    /// Runs the call and returns its trimmed stdout; Err (with stderr) on a non-zero exit.
    pub fn stdout(&self) -> Result<String> {
        let output = self.output()?;
        if !output.success() {
            bail!(
                "`docker {}` failed ({}): {}",
                self.args.join(" "),
                output.describe_exit(),
                output.stderr.trim()
            );
        }
        Ok(output.stdout.trim().to_string())
    }
}

/// Runs `docker <args>` and returns its trimmed stdout; Err naming the command otherwise.
pub fn docker(args: &[&str]) -> Result<String> {
    DockerCall::new(args).stdout()
}

/// Fails with a message naming what is missing when the docker CLI or daemon is not there.
/// Checked once per process; later calls return the same verdict.
pub fn require_docker() -> Result<()> {
    static VERDICT: OnceLock<Result<(), String>> = OnceLock::new();
    VERDICT
        .get_or_init(|| {
            let call = DockerCall {
                args: &["version", "--format", "{{.Server.Version}}"],
                env: &[],
                stdin: None,
                timeout: Duration::from_secs(30),
            };
            let hint = "the end-to-end tests need the docker CLI and a running Docker daemon \
                        (or set ROTOR_E2E=skip to skip them explicitly)";
            match call.output_unchecked() {
                Err(error) => Err(format!("Docker is unavailable: {error:#}; {hint}")),
                Ok(output) if !output.success() => Err(format!(
                    "Docker is unavailable: the daemon did not answer `docker version` ({}): {}; {hint}",
                    output.describe_exit(),
                    output.stderr.trim()
                )),
                Ok(_) => Ok(()),
            }
        })
        .clone()
        .map_err(|message| anyhow!(message))
}
