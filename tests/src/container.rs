//! One container of the test image: started from a spec, commands run in it with
//! `docker exec`, removed (with its anonymous volumes) on drop.
//! Knows no roles: hosts, probes, controller and agents wrap it. Fault injection lives
//! in `faults`. Secrets go in through stdin or the docker CLI's environment only.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::docker::{DOCKER_TIMEOUT, DockerCall, docker};
use crate::image::test_image;
use crate::naming::label_args;
use crate::network::Network;
use crate::process::ProgramOutput;

/// What to start: the container's name, what it is in the test (for messages), its
/// first network, extra `docker run` options and the command.
pub struct ContainerSpec<'a> {
    pub name: String,
    pub role: String,
    pub run_id: &'a str,
    pub network: &'a Network,
    /// Extra `docker run` options (mounts, environment names).
    pub run_options: Vec<String>,
    /// The command; empty means the image's `host-init` (sshd).
    pub command: Vec<String>,
}

/// A running container, removed on drop.
pub struct Container {
    name: String,
    role: String,
    /// Every network this container joined; held so they are removed after it.
    networks: Mutex<Vec<Network>>,
}

impl Container {
    /// Starts a container of the test image on `spec.network` with NET_ADMIN (for `tc`)
    /// and docker's init as PID 1 (reaps what the entrypoint does not).
    pub(crate) fn start(spec: ContainerSpec<'_>) -> Result<Container> {
        Container::start_image(spec, test_image()?)
    }

    /// Like [`Container::start`], from another image built here (the PostgreSQL image).
    pub(crate) fn start_image(spec: ContainerSpec<'_>, image: String) -> Result<Container> {
        let mut args: Vec<String> = ["run", "-d", "--init", "--cap-add", "NET_ADMIN"]
            .map(String::from)
            .to_vec();
        args.extend(label_args(spec.run_id));
        args.extend(["--name", &spec.name, "--hostname", &spec.name].map(String::from));
        args.extend(["--network".to_string(), spec.network.name().to_string()]);
        args.extend(spec.run_options);
        args.push(image);
        args.extend(spec.command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(error) = docker(&args) {
            // `docker run` can fail after creating the container (e.g. a bad mount).
            let _ = docker(&["rm", "-f", "-v", &spec.name]);
            return Err(error.context(format!("starting {}", spec.role)));
        }
        Ok(Container {
            name: spec.name,
            role: spec.role,
            networks: Mutex::new(vec![spec.network.clone()]),
        })
    }

    /// The Docker name of the container (also its DNS name on its networks).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the container is in the test, e.g. `host web-1 of site a (rt1a2b3c4d-a-web-1)`.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Runs `sh -c script` as root; Ok(stdout) only when it exits 0.
    pub fn exec(&self, script: &str) -> Result<String> {
        let output = self.exec_output(script)?;
        if !output.success() {
            bail!(
                "in {}: `{script}` failed ({}): {}",
                self.role,
                output.describe_exit(),
                output.diagnostics()
            );
        }
        Ok(output.stdout)
    }

    /// Runs `sh -c script` as root; Ok whatever its exit status.
    pub fn exec_output(&self, script: &str) -> Result<ProgramOutput> {
        self.exec_program(&["sh", "-c", script], &[], None, DOCKER_TIMEOUT)
    }

    /// Runs `sh -c script` as root with `stdin` (the place for secrets); Ok whatever its
    /// exit status.
    pub fn exec_with_stdin(&self, script: &str, stdin: &[u8]) -> Result<ProgramOutput> {
        self.exec_program(&["sh", "-c", script], &[], Some(stdin), DOCKER_TIMEOUT)
    }

    /// Runs `argv` as root. Each `(NAME, value)` of `env` reaches the program as an
    /// environment variable without appearing on any command line.
    pub fn exec_program(
        &self,
        argv: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ProgramOutput> {
        let mut args = vec!["exec"];
        if stdin.is_some() {
            args.push("-i");
        }
        for (name, _) in env {
            args.extend(["-e", name]);
        }
        args.push(&self.name);
        args.extend(argv);
        let output = DockerCall {
            args: &args,
            env,
            stdin,
            timeout,
        }
        .output()
        .with_context(|| format!("in {}", self.role))?;
        // The docker CLI itself fails with 125-127 and says why on stderr.
        if matches!(output.exit_code, Some(125..=127))
            && output.stderr.contains("Error response from daemon")
        {
            bail!(
                "in {}: docker exec `{}` failed: {}",
                self.role,
                argv.join(" "),
                output.stderr.trim()
            );
        }
        Ok(output)
    }

    /// Starts `sh -c script` in the background (`docker exec -d`); its output must be
    /// redirected by the script.
    pub fn exec_detached(&self, script: &str, env: &[(&str, &str)]) -> Result<()> {
        let mut args = vec!["exec", "-d"];
        for (name, _) in env {
            args.extend(["-e", name]);
        }
        args.extend([self.name.as_str(), "sh", "-c", script]);
        DockerCall {
            args: &args,
            env,
            stdin: None,
            timeout: DOCKER_TIMEOUT,
        }
        .stdout()
        .with_context(|| format!("in {}: starting `{script}`", self.role))?;
        Ok(())
    }

    /// The container's IPv4 address on `network`; Err when it is not attached to it.
    pub fn address_on(&self, network: &Network) -> Result<IpAddr> {
        let networks_json = docker(&[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks}}",
            &self.name,
        ])
        .with_context(|| format!("inspecting {}", self.role))?;
        let networks: serde_json::Value = serde_json::from_str(&networks_json)
            .with_context(|| format!("parsing docker inspect of {}: {networks_json}", self.role))?;
        let address = networks
            .get(network.name())
            .and_then(|entry| entry.get("IPAddress"))
            .and_then(|address| address.as_str())
            .filter(|address| !address.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "{} has no address on network {} (not attached, or disconnected)",
                    self.role,
                    network.name()
                )
            })?;
        address
            .parse()
            .with_context(|| format!("{} reports an unparsable address `{address}`", self.role))
    }

    /// Whether a TCP connection from this container to `address:port` succeeds within 2 s.
    pub fn can_reach(&self, address: IpAddr, port: u16) -> Result<bool> {
        let target = address.to_string();
        let port = port.to_string();
        let output = self.exec_program(
            &[
                "timeout",
                "2",
                "bash",
                "-c",
                "exec 3<>\"/dev/tcp/$0/$1\"",
                &target,
                &port,
            ],
            &[],
            None,
            DOCKER_TIMEOUT,
        )?;
        Ok(output.success())
    }

    /// Joins `network` (a second network, or again after `disconnect_from`).
    pub fn connect_to(&self, network: &Network) -> Result<()> {
        docker(&["network", "connect", network.name(), &self.name])
            .with_context(|| format!("connecting {} to {}", self.role, network.name()))?;
        let mut networks = self
            .networks
            .lock()
            .map_err(|_| anyhow!("network list of {} poisoned", self.role))?;
        if !networks.iter().any(|held| held.name() == network.name()) {
            networks.push(network.clone());
        }
        Ok(())
    }

    /// Leaves `network`: nothing on it reaches this container any more (partition).
    pub fn disconnect_from(&self, network: &Network) -> Result<()> {
        docker(&["network", "disconnect", network.name(), &self.name])
            .with_context(|| format!("disconnecting {} from {}", self.role, network.name()))?;
        Ok(())
    }

    /// Whether the container is running (false when stopped or killed; paused counts
    /// as running).
    pub fn is_running(&self) -> Result<bool> {
        let running = docker(&["inspect", "--format", "{{.State.Running}}", &self.name])
            .with_context(|| format!("inspecting {}", self.role))?;
        Ok(running == "true")
    }

    /// What the container's main process wrote (`docker logs`, stdout and stderr).
    pub fn docker_logs(&self) -> Result<String> {
        let output = DockerCall::new(&["logs", &self.name])
            .output()
            .with_context(|| format!("reading docker logs of {}", self.role))?;
        Ok(format!("{}{}", output.stdout, output.stderr))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(error) = docker(&["rm", "-f", "-v", &self.name]) {
            eprintln!("rotor-tests: could not remove {}: {error:#}", self.role);
        }
    }
}
