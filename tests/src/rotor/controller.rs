//! The controller container: its `/data` volume and configuration, `rotor operator
//! init`, the `rotor server` process (start, kill -9, restart, health) and the CLI run
//! inside it against `https://127.0.0.1:8200` with the root token from the environment.
//! Does not start agents.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::container::{Container, ContainerSpec};
use crate::faults::Faults;
use crate::network::{Network, Volume};
use crate::process::ProgramOutput;
use crate::rotor::binaries::RotorBinaries;
use crate::rotor::processes::{rust_log_passthrough, stop_process, tail};
use crate::wait::wait_until;

/// Port agents dial (QUIC).
pub const AGENT_PORT: u16 = 8201;
const CONFIG_PATH: &str = "/data/rotor.hcl";
const SERVER_LOG: &str = "/var/log/rotor-server.log";
const API_ADDRESS: &str = "https://127.0.0.1:8200";
const CA_CERT: &str = "/data/ca.pem";
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

const CONFIG: &str = r#"storage_path  = "/data/rotor.redb"
seal_key_file = "/data/seal.key"
listener "tcp"  { address = "0.0.0.0:8200" }
agent_listener  { address = "0.0.0.0:8201" }
"#;

/// The controller: `rotor server` in a container on the core network.
pub struct Controller {
    // Declared first: the container goes before the volume it mounts.
    container: Container,
    data: Volume,
    /// Printed by `rotor operator init`; passed to the CLI only through its environment.
    root_token: String,
}

impl Controller {
    /// Starts the container, writes the configuration, runs `operator init`, starts the
    /// server and waits for `/v1/sys/health` to answer 200.
    pub(crate) fn start(
        run_id: &str,
        core: &Network,
        binaries: &RotorBinaries,
    ) -> Result<Controller> {
        let name = format!("{run_id}-controller");
        let data = Volume::create(&format!("{run_id}-controller-data"), run_id)?;
        let container = Container::start(ContainerSpec {
            role: format!("controller ({name})"),
            name,
            run_id,
            network: core,
            run_options: vec![
                "-v".to_string(),
                format!("{}:/data", data.name()),
                "-v".to_string(),
                format!("{}:/usr/local/bin/rotor:ro", binaries.controller.display()),
            ],
            command: vec!["/usr/local/sbin/host-init".to_string(), "idle".to_string()],
        })?;
        let output =
            container.exec_with_stdin(&format!("cat > {CONFIG_PATH}"), CONFIG.as_bytes())?;
        if !output.success() {
            bail!(
                "writing {CONFIG_PATH} in the controller failed: {}",
                output.stderr.trim()
            );
        }
        let root_token = operator_init(&container)?;
        let controller = Controller {
            container,
            data,
            root_token,
        };
        controller.start_server()?;
        Ok(controller)
    }

    /// The container's name, which agents resolve on the core network.
    pub fn name(&self) -> &str {
        self.container.name()
    }

    /// `<controller name>:8201`, the address agents dial.
    pub fn agent_address(&self) -> String {
        format!("{}:{AGENT_PORT}", self.name())
    }

    /// The HTTPS API's URL from this machine: the container's address on `core`.
    pub fn api_url(&self, core: &Network) -> Result<String> {
        Ok(format!("https://{}:8200", self.container.address_on(core)?))
    }

    /// The docker volume mounted at `/data` (store, seal key, CA).
    pub fn data_volume(&self) -> &str {
        self.data.name()
    }

    /// The root token printed by `rotor operator init`.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// Runs `rotor <args>` in the controller container with ROTOR_ADDR, ROTOR_CACERT and
    /// ROTOR_TOKEN set; Ok whatever its exit status.
    pub fn cli_output(&self, args: &[&str]) -> Result<ProgramOutput> {
        let mut argv = vec!["rotor"];
        argv.extend(args);
        self.container
            .exec_program(&argv, &self.cli_environment(), None, CLI_TIMEOUT)
    }

    /// Runs `script` with `sh -c` in the controller container, in the CLI's environment
    /// (as `cli_output`), so a command is run exactly as a document prints it: quotes,
    /// line continuations and all. Ok whatever its exit status.
    pub fn shell_output(&self, script: &str) -> Result<ProgramOutput> {
        self.container.exec_program(
            &["sh", "-c", script],
            &self.cli_environment(),
            None,
            CLI_TIMEOUT,
        )
    }

    fn cli_environment(&self) -> [(&'static str, &str); 3] {
        [
            ("ROTOR_ADDR", API_ADDRESS),
            ("ROTOR_CACERT", CA_CERT),
            ("ROTOR_TOKEN", &self.root_token),
        ]
    }

    /// Starts `rotor server` in the background (log in /var/log/rotor-server.log) and
    /// waits until it is healthy.
    pub fn start_server(&self) -> Result<()> {
        self.container.exec_detached(
            &format!("exec rotor server -config {CONFIG_PATH} >>{SERVER_LOG} 2>&1"),
            &rust_log_passthrough(),
        )?;
        self.wait_healthy()
    }

    /// SIGKILL to `rotor server`; waits until it is gone.
    pub fn kill_server(&self) -> Result<()> {
        self.kill_process("rotor")
    }

    /// Stops the server if it runs (SIGTERM, then SIGKILL after 10 s) and starts it
    /// again on the same `/data`.
    pub fn restart_server(&self) -> Result<()> {
        stop_process(&self.container, "rotor")?;
        self.start_server()
    }

    /// Whether the `rotor server` process is running.
    pub fn server_is_running(&self) -> Result<bool> {
        Ok(self.container.exec_output("pgrep -x rotor")?.success())
    }

    /// What the server wrote to stdout and stderr, across restarts.
    pub fn logs(&self) -> Result<String> {
        self.container
            .exec(&format!("cat {SERVER_LOG} 2>/dev/null || true"))
    }

    /// Waits until `GET /v1/sys/health` answers 200; fails early, with the log, if the
    /// server process is gone.
    pub fn wait_healthy(&self) -> Result<()> {
        let mut last_answer = String::from("nothing yet");
        let health = format!(
            "curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 --cacert {CA_CERT} \
             {API_ADDRESS}/v1/sys/health"
        );
        let waited = wait_until(
            &format!("the controller's {API_ADDRESS}/v1/sys/health to answer 200"),
            HEALTH_TIMEOUT,
            || {
                let answer = self.container.exec_output(&health)?;
                if answer.stdout.trim() == "200" {
                    return Ok(true);
                }
                last_answer = format!("{} {}", answer.stdout.trim(), answer.stderr.trim());
                if !self.server_is_running()? {
                    bail!("`rotor server` exited");
                }
                Ok(false)
            },
        );
        waited.map_err(|error| {
            error.context(format!(
                "controller not healthy; last health answer: {last_answer}; server log tail:\n{}",
                tail(&self.logs().unwrap_or_default(), 30)
            ))
        })
    }
}

impl Faults for Controller {
    fn container(&self) -> &Container {
        &self.container
    }

    /// Like a machine's init would: start the server again after a container restart.
    fn after_container_start(&self) -> Result<()> {
        self.start_server()
    }
}

/// Runs `rotor operator init` and returns the token of its `Root Token: ` line.
fn operator_init(container: &Container) -> Result<String> {
    let output = container.exec_program(
        &["rotor", "operator", "init", "-config", CONFIG_PATH],
        &[],
        None,
        CLI_TIMEOUT,
    )?;
    if !output.success() {
        bail!(
            "`rotor operator init -config {CONFIG_PATH}` failed ({}): {}",
            output.describe_exit(),
            output.diagnostics()
        );
    }
    output
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Root Token:"))
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "`rotor operator init` printed no `Root Token: <token>` line; stdout: `{}`, \
                 stderr: `{}`",
                output.stdout.trim(),
                output.stderr.trim()
            )
        })
}
