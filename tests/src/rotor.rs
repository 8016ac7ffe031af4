//! Rotor in containers: a `core` network, the controller on it, and one enrolled agent
//! per site on `core` plus the site's network (hosts stay on their site network only).
//! The facade tests use: start, CLI, agent connection state, controller kill/restart.
//! The binaries come from the build machine (see `binaries`); nothing here builds them.

pub mod agent;
pub mod binaries;
pub mod controller;
pub mod processes;

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

pub use agent::Agent;
use agent::Enrollment;
use binaries::{RotorBinaries, locate_binaries};
pub use controller::Controller;
use processes::tail;

use crate::cleanup::sweep_once;
use crate::docker::require_docker;
use crate::host::Host;
use crate::naming::current_run_id;
use crate::network::Network;
use crate::site::Site;
use crate::wait::wait_until;

/// How long a freshly started or restarted agent may take to connect.
pub const AGENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A controller and its agents; everything is removed on drop.
pub struct Rotor {
    // Drop order is declaration order: agents, then controller, then the core network.
    agents: Vec<Agent>,
    controller: Controller,
    core: Network,
    binaries: RotorBinaries,
    run_id: String,
}

impl Rotor {
    /// Starts the controller on a new `core` network and one agent per site, each
    /// enrolled and connected (`connected: true` in `agents/<id>`).
    pub fn start(sites: &[&Site]) -> Result<Rotor> {
        require_docker()?;
        sweep_once();
        let binaries = locate_binaries()?;
        let run_id = sites
            .first()
            .map_or_else(current_run_id, |site| site.run_id().to_string());
        let core = Network::create(&format!("{run_id}-core"), &run_id)?;
        let controller = Controller::start(&run_id, &core, &binaries)?;
        let mut rotor = Rotor {
            agents: Vec::new(),
            controller,
            core,
            binaries,
            run_id,
        };
        for site in sites {
            rotor.add_agent(site)?;
        }
        Ok(rotor)
    }

    /// Enrolls and starts one more agent for `site`, and waits until it is connected.
    pub fn add_agent(&mut self, site: &Site) -> Result<&Agent> {
        let enrollment = self
            .enroll(site)
            .with_context(|| format!("enrolling an agent for site {}", site.name()))?;
        let index = self
            .agents
            .iter()
            .filter(|agent| agent.site().name() == site.name())
            .count()
            + 1;
        let container_name = format!("{}-{}-agent{index}", self.run_id, site.name());
        let agent = Agent::start(container_name, site, &self.core, &self.binaries, enrollment)?;
        self.wait_agent_connected(agent.id(), AGENT_CONNECT_TIMEOUT)
            .map_err(|error| {
                error.context(format!(
                    "agent log tail:\n{}",
                    tail(&agent.logs().unwrap_or_default(), 30)
                ))
            })?;
        self.agents.push(agent);
        self.agents
            .last()
            .ok_or_else(|| anyhow!("agent list empty right after a push"))
    }

    /// The network the controller and all agents share.
    pub fn core(&self) -> &Network {
        &self.core
    }

    /// `https://<controller address on core>:8200`: the HTTPS API (and the console) as this
    /// machine reaches it. The certificate does not name that address: a client pins the
    /// server's key (`browser::server_key_pin`) or uses the CA with the container's name.
    pub fn api_url(&self) -> Result<String> {
        self.controller.api_url(&self.core)
    }

    /// The controller (faults, logs, root token).
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Every agent, in the order they were started.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The (first) agent of `site`.
    pub fn agent(&self, site: &Site) -> Result<&Agent> {
        self.agents
            .iter()
            .find(|agent| agent.site().name() == site.name())
            .ok_or_else(|| {
                anyhow!(
                    "Rotor was started without an agent for site {}",
                    site.name()
                )
            })
    }

    /// Registers `host` with the `os/` engine as a host of `site`: its address, the site and
    /// its pinned ed25519 host key, plus `extra` fields (`chpasswd_command=…`).
    pub fn register_os_host(&self, site: &Site, host: &Host, extra: &[&str]) -> Result<()> {
        let path = format!("os/hosts/{}", host.name());
        let address = format!("address={}", host.address()?);
        let site_field = format!("site={}", site.name());
        let key = format!("ssh_host_key={}", host.host_public_key("ed25519")?);
        let mut args = vec!["write", path.as_str(), &address, &site_field, &key];
        args.extend_from_slice(extra);
        self.cli(&args).map(drop)
    }

    /// Writes the parent account `username` of `host` (the one whose `sudo chpasswd` rotates
    /// its children), with automated rotation off so a test's schedule never touches it.
    pub fn write_os_parent(&self, host: &str, username: &str, password: &str) -> Result<()> {
        let path = format!("os/hosts/{host}/accounts/{username}");
        let username_field = format!("username={username}");
        let password_field = format!("password={password}");
        self.cli(&[
            "write",
            &path,
            &username_field,
            &password_field,
            "disable_automated_rotation=true",
        ])
        .map(drop)
    }

    /// Runs `rotor <args>` inside the controller container as root; Ok(stdout) only when
    /// it exits 0.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let output = self.controller.cli_output(args)?;
        if !output.success() {
            bail!(
                "`rotor {}` failed ({}): {}",
                args.join(" "),
                output.describe_exit(),
                output.diagnostics()
            );
        }
        Ok(output.stdout)
    }

    /// Like `cli`, with `-format=json` after the verb (`read`, `write`, …); returns the
    /// parsed JSON envelope.
    pub fn cli_json(&self, args: &[&str]) -> Result<Value> {
        let Some((verb, rest)) = args.split_first() else {
            bail!("cli_json needs at least a verb");
        };
        let mut full = vec![*verb, "-format=json"];
        full.extend(rest);
        let stdout = self.cli(&full)?;
        serde_json::from_str(&stdout)
            .with_context(|| format!("`rotor {}` printed no JSON: {stdout}", full.join(" ")))
    }

    /// `data.connected` of `agents/<id>`.
    pub fn is_agent_connected(&self, agent_id: &str) -> Result<bool> {
        let path = format!("agents/{agent_id}");
        let answer = self.cli_json(&["read", &path])?;
        answer
            .pointer("/data/connected")
            .and_then(Value::as_bool)
            .ok_or_else(|| anyhow!("`rotor read {path}` has no boolean data.connected: {answer}"))
    }

    /// Waits until the controller reports agent `agent_id` connected.
    pub fn wait_agent_connected(&self, agent_id: &str, timeout: Duration) -> Result<()> {
        wait_until(
            &format!("agent {agent_id} to be connected (agents/{agent_id} data.connected)"),
            timeout,
            || self.is_agent_connected(agent_id),
        )
    }

    /// Waits until the controller reports agent `agent_id` no longer connected.
    pub fn wait_agent_disconnected(&self, agent_id: &str, timeout: Duration) -> Result<()> {
        wait_until(
            &format!("the controller to see agent {agent_id} disconnected"),
            timeout,
            || Ok(!self.is_agent_connected(agent_id)?),
        )
    }

    /// SIGKILL to `rotor server`, as a crash would.
    pub fn kill_controller(&self) -> Result<()> {
        self.controller.kill_server()
    }

    /// Starts `rotor server` again on the same `/data` (stopping it first if it runs)
    /// and waits until it is healthy.
    pub fn restart_controller(&self) -> Result<()> {
        self.controller.restart_server()
    }

    /// The server's output across restarts.
    pub fn controller_logs(&self) -> Result<String> {
        self.controller.logs()
    }

    fn enroll(&self, site: &Site) -> Result<Enrollment> {
        let site_parameter = format!("site={}", site.name());
        let answer = self.cli_json(&["write", "agents/enroll", &site_parameter, "ttl=15m"])?;
        let field = |name: &str| -> Result<String> {
            answer
                .pointer(&format!("/data/{name}"))
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| anyhow!("agents/enroll answered without data.{name}"))
        };
        Ok(Enrollment {
            agent_id: field("agent_id")?,
            token: field("token")?,
            ca_fingerprint: field("ca_fingerprint")?,
            controller_address: self.controller.agent_address(),
        })
    }
}
