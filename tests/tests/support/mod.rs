//! Local-process support for end-to-end tests that need no containers: runs the real
//! `rotor` and `rotor-agent` binaries on loopback, each with its own ports and directories,
//! and kills them on drop (also on a panic).
//!
//! Owns process lifecycle and reading the dev server's announced addresses. Must not assert
//! anything about Rotor's behaviour: scenarios do that.
#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Where cargo put the binaries: next to the test executable's `deps/` folder.
pub fn binary(name: &str) -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("ROTOR_BIN_DIR") {
        return Ok(Path::new(&dir).join(name));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no grandparent directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the binaries first (cargo build --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

/// A child process whose output is captured into memory and which is killed on drop.
pub struct Process {
    pub name: String,
    child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

fn pump(stream: impl std::io::Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines().map_while(Result::ok) {
            if let Ok(mut text) = sink.lock() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
}

impl Process {
    pub fn spawn(name: &str, mut command: Command) -> Result<Self> {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            pump(out, stdout.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, stderr.clone());
        }
        Ok(Self {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        })
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `predicate` holds on stdout+stderr, or fails with both in the message.
    pub fn wait_for_output(
        &mut self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = format!("{}{}", self.stdout(), self.stderr());
            if predicate(&all) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{} exited ({status}) before {what}:\n{all}", self.name);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not show {what} within {timeout:?}:\n{all}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit; answers its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still running after {timeout:?}:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {} failed", self.name);
        }
        Ok(())
    }

    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill().context("kill -9")?;
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} stderr ---\n{}", self.name, self.stderr());
        }
    }
}

/// A controller on loopback: dev mode (in memory) or config mode (a store on disk).
pub struct Controller {
    pub process: Process,
    pub address: String,
    pub ca_file: String,
    pub token: String,
    pub agent_address: String,
    pub dir: tempfile::TempDir,
}

fn parse_exports(output: &str, key: &str) -> Option<String> {
    output.lines().find_map(|line| {
        line.strip_prefix(&format!("export {key}='"))
            .and_then(|rest| rest.strip_suffix('\''))
            .map(String::from)
    })
}

fn free_port() -> Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.port())
}

impl Controller {
    /// `rotor server -dev` on free loopback ports.
    pub fn start_dev() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut command = Command::new(binary("rotor")?);
        command
            .args(["server", "-dev", "-dev-listen-address=127.0.0.1:0"])
            .arg(format!("-dev-agent-address=127.0.0.1:{}", free_port()?))
            .env("TMPDIR", dir.path());
        let mut process = Process::spawn("rotor server -dev", command)?;
        process.wait_for_output("its export lines", Duration::from_secs(20), |out| {
            out.contains("agents: ")
        })?;
        let out = process.stdout();
        let address = parse_exports(&out, "ROTOR_ADDR").context("no ROTOR_ADDR line")?;
        let ca_file = parse_exports(&out, "ROTOR_CACERT").context("no ROTOR_CACERT line")?;
        let token = parse_exports(&out, "ROTOR_TOKEN").context("no ROTOR_TOKEN line")?;
        let agent_address = out
            .lines()
            .find_map(|line| line.strip_prefix("agents: "))
            .context("no agents line")?
            .to_string();
        Ok(Self {
            process,
            address,
            ca_file,
            token,
            agent_address,
            dir,
        })
    }

    /// Writes a config for a store in its own directory and runs `operator init` on it.
    pub fn init_config() -> Result<(tempfile::TempDir, PathBuf, String)> {
        let dir = tempfile::tempdir()?;
        let api_port = free_port()?;
        let agent_port = free_port()?;
        let config = format!(
            "storage_path = \"{d}/rotor.redb\"\nseal_key_file = \"{d}/seal.key\"\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{api_port}\"\n}}\nagent_listener {{\n  address = \"127.0.0.1:{agent_port}\"\n}}\n",
            d = dir.path().display()
        );
        let path = dir.path().join("rotor.hcl");
        std::fs::write(&path, config)?;
        let output = Command::new(binary("rotor")?)
            .args(["operator", "init", "-config"])
            .arg(&path)
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        if !output.status.success() {
            bail!(
                "operator init failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let token = stdout
            .lines()
            .find_map(|line| line.strip_prefix("Root Token: "))
            .context("operator init printed no root token")?
            .to_string();
        Ok((dir, path, token))
    }

    /// `rotor server -config FILE` for a store made by [`Controller::init_config`].
    pub fn start_config(dir: tempfile::TempDir, config: &Path, token: &str) -> Result<Self> {
        let mut command = Command::new(binary("rotor")?);
        command.args(["server", "-config"]).arg(config);
        let mut process = Process::spawn("rotor server -config", command)?;
        process.wait_for_output("its address lines", Duration::from_secs(20), |out| {
            out.contains("agents: ")
        })?;
        let out = process.stdout();
        let address = parse_exports(&out, "ROTOR_ADDR").context("no ROTOR_ADDR line")?;
        let ca_file = parse_exports(&out, "ROTOR_CACERT").context("no ROTOR_CACERT line")?;
        let agent_address = out
            .lines()
            .find_map(|line| line.strip_prefix("agents: "))
            .context("no agents line")?
            .to_string();
        Ok(Self {
            process,
            address,
            ca_file,
            token: token.to_string(),
            agent_address,
            dir,
        })
    }

    /// Runs the `rotor` CLI against this controller.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        Command::new(binary("rotor")?)
            .args(args)
            .env("ROTOR_ADDR", &self.address)
            .env("ROTOR_CACERT", &self.ca_file)
            .env("ROTOR_TOKEN", &self.token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .context("running rotor")
    }

    /// Runs the CLI with `-format=json` and answers the parsed JSON; fails on a non-zero exit.
    pub fn cli_json(&self, args: &[&str]) -> Result<Value> {
        let mut full = vec![args[0], "-format=json"];
        full.extend_from_slice(&args[1..]);
        let output = self.cli(&full)?;
        if !output.status.success() {
            bail!(
                "rotor {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        serde_json::from_slice(&output.stdout).context("rotor printed no JSON")
    }

    /// Issues an enrollment token for `site`; answers the `data` object.
    pub fn enrollment(&self, site: &str) -> Result<Value> {
        let answer =
            self.cli_json(&["write", "agents/enroll", &format!("site={site}"), "ttl=15m"])?;
        Ok(answer["data"].clone())
    }

    /// Polls `agents/ID` until `connected` equals `expected`.
    pub fn wait_connected(&self, id: &str, expected: bool, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.cli_json(&["read", &format!("agents/{id}")])?;
            if answer["data"]["connected"] == Value::Bool(expected) {
                return Ok(answer["data"].clone());
            }
            if Instant::now() > deadline {
                bail!("agent {id} connected != {expected} after {timeout:?}: {answer}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An agent directory plus (optionally) its running process.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub process: Option<Process>,
}

impl Agent {
    /// Enrolls a new agent of `site` with `controller`.
    pub fn enroll(controller: &Controller, site: &str) -> Result<Self> {
        let data = controller.enrollment(site)?;
        let dir = tempfile::tempdir()?;
        let output = Self::enroll_command(
            &controller.agent_address,
            data["token"].as_str().context("no token")?,
            data["ca_fingerprint"].as_str().context("no fingerprint")?,
            dir.path(),
        )?;
        if !output.status.success() {
            bail!(
                "rotor-agent enroll failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let id = data["agent_id"]
            .as_str()
            .context("no agent_id")?
            .to_string();
        Ok(Self {
            dir,
            id,
            process: None,
        })
    }

    pub fn enroll_command(
        controller: &str,
        token: &str,
        fingerprint: &str,
        dir: &Path,
    ) -> Result<Output> {
        Command::new(binary("rotor-agent")?)
            .args([
                "enroll",
                "--controller",
                controller,
                "--ca-fingerprint",
                fingerprint,
                "--dir",
            ])
            .arg(dir)
            .env("ROTOR_ENROLL_TOKEN", token)
            .output()
            .context("running rotor-agent enroll")
    }

    pub fn start(&mut self) -> Result<()> {
        let mut command = Command::new(binary("rotor-agent")?);
        command.args(["run", "--dir"]).arg(self.dir.path());
        self.process = Some(Process::spawn(
            &format!("rotor-agent {}", self.id),
            command,
        )?);
        Ok(())
    }

    pub fn process(&mut self) -> Result<&mut Process> {
        self.process.as_mut().context("agent not started")
    }
}
