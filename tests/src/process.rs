//! Runs one external program (the docker CLI, build-image.sh) with optional stdin,
//! a deadline, and captured output.
//! Knows nothing about Docker; callers add the context that names what was run.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a finished program left behind. `exit_code` is `None` when a signal ended it.
#[derive(Debug, Clone)]
pub struct ProgramOutput {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ProgramOutput {
    /// True when the program exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// stderr, then stdout if any, trimmed, for error messages.
    pub fn diagnostics(&self) -> String {
        match (self.stderr.trim(), self.stdout.trim()) {
            (stderr, "") => stderr.to_string(),
            ("", stdout) => format!("(stdout) {stdout}"),
            (stderr, stdout) => format!("{stderr} (stdout) {stdout}"),
        }
    }

    /// The exit code as text for messages ("exit 3", "killed by a signal").
    pub fn describe_exit(&self) -> String {
        match self.exit_code {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".to_string(),
        }
    }
}

/// Runs `command` to completion, feeding `stdin` (if any) and killing it after `timeout`.
/// Ok whatever the exit status; Err only when it could not be started or timed out.
pub fn run_program(
    mut command: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<ProgramOutput> {
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start `{program}` (is it installed and in PATH?)"))?;

    let stdin_writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            // A program may exit without reading its stdin; a broken pipe is not our error.
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let stdout_reader = spawn_reader(child.stdout.take());
    let stderr_reader = spawn_reader(child.stderr.take());

    let status = wait_with_deadline(&mut child, timeout)?;
    let Some(status) = status else {
        // Readers are not joined: a grandchild may still hold the pipes open.
        bail!(
            "`{program}` did not finish within {} s and was killed",
            timeout.as_secs()
        );
    };
    if let Some(writer) = stdin_writer {
        let _ = writer.join();
    }
    Ok(ProgramOutput {
        exit_code: status.code(),
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
    })
}

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// `Ok(None)` when the deadline passed (the child is then killed and reaped).
fn wait_with_deadline(
    child: &mut Child,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_stdin_and_exit_code() -> Result<()> {
        let mut command = Command::new("sh");
        command.args(["-c", "cat; echo err >&2; exit 3"]);
        let output = run_program(command, Some(b"hello"), Duration::from_secs(10))?;
        assert_eq!(output.exit_code, Some(3));
        assert_eq!(output.stdout, "hello");
        assert_eq!(output.stderr.trim(), "err");
        Ok(())
    }

    #[test]
    fn kills_a_program_that_overruns_its_deadline() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let started = Instant::now();
        let error = run_program(command, None, Duration::from_millis(200))
            .expect_err("sleep 30 must time out");
        assert!(error.to_string().contains("did not finish"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
