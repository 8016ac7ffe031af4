//! One agent container: on the core network and its site's network, enrolled with
//! `rotor-agent enroll`, running `rotor-agent run` in the background; killing and
//! restarting that process; its log. Does not talk to the controller's API (rotor.rs
//! asks the controller for tokens and connection state).

use std::time::Duration;

use anyhow::{Result, bail};

use crate::container::{Container, ContainerSpec};
use crate::faults::Faults;
use crate::network::Network;
use crate::rotor::binaries::RotorBinaries;
use crate::rotor::processes::{rust_log_passthrough, stop_process};
use crate::site::Site;

const STATE_DIR: &str = "/var/lib/rotor-agent";
const AGENT_LOG: &str = "/var/log/rotor-agent.log";

/// What the controller's `agents/enroll` returned and the agent needs.
pub(crate) struct Enrollment {
    pub agent_id: String,
    pub token: String,
    pub ca_fingerprint: String,
    pub controller_address: String,
}

/// An enrolled agent of one site.
pub struct Agent {
    // Declared first: the container goes before the site's network handle.
    container: Container,
    id: String,
    site: Site,
}

impl Agent {
    /// Starts the container on `core`, joins the site network, enrolls and starts
    /// `rotor-agent run`. Does not wait for the connection (rotor.rs does).
    pub(crate) fn start(
        container_name: String,
        site: &Site,
        core: &Network,
        binaries: &RotorBinaries,
        enrollment: Enrollment,
    ) -> Result<Agent> {
        let container = Container::start(ContainerSpec {
            role: format!(
                "agent {} of site {} ({container_name})",
                enrollment.agent_id,
                site.name()
            ),
            name: container_name,
            run_id: site.run_id(),
            network: core,
            run_options: vec![
                "-v".to_string(),
                format!("{}:/usr/local/bin/rotor-agent:ro", binaries.agent.display()),
            ],
            command: vec!["/usr/local/sbin/host-init".to_string(), "idle".to_string()],
        })?;
        container.connect_to(site.network())?;
        // The one-time token goes in ROTOR_ENROLL_TOKEN (what `--token` falls back to),
        // so it never appears on a command line.
        let mut environment = rust_log_passthrough();
        environment.push(("ROTOR_ENROLL_TOKEN", &enrollment.token));
        let output = container.exec_program(
            &[
                "rotor-agent",
                "enroll",
                "--controller",
                &enrollment.controller_address,
                "--ca-fingerprint",
                &enrollment.ca_fingerprint,
                "--dir",
                STATE_DIR,
            ],
            &environment,
            None,
            Duration::from_secs(60),
        )?;
        if !output.success() {
            bail!(
                "`rotor-agent enroll --controller {} …` in {} failed ({}): {}",
                enrollment.controller_address,
                container.role(),
                output.describe_exit(),
                output.diagnostics()
            );
        }
        let agent = Agent {
            container,
            id: enrollment.agent_id,
            site: site.clone(),
        };
        agent.start_process()?;
        Ok(agent)
    }

    /// The agent id the controller assigned at enrollment.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The site this agent serves.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// SIGKILL to `rotor-agent run`, as a crash would; waits until it is gone.
    pub fn kill(&self) -> Result<()> {
        self.kill_process("rotor-agent")
    }

    /// Stops `rotor-agent run` if it runs (SIGTERM, then SIGKILL after 10 s) and starts
    /// it again with the same state directory.
    pub fn restart(&self) -> Result<()> {
        stop_process(&self.container, "rotor-agent")?;
        self.start_process()
    }

    /// Whether `rotor-agent run` is running.
    pub fn is_running(&self) -> Result<bool> {
        Ok(self
            .container
            .exec_output("pgrep -x rotor-agent")?
            .success())
    }

    /// What the agent wrote to stdout and stderr, across restarts.
    pub fn logs(&self) -> Result<String> {
        self.container
            .exec(&format!("cat {AGENT_LOG} 2>/dev/null || true"))
    }

    fn start_process(&self) -> Result<()> {
        self.container.exec_detached(
            &format!("exec rotor-agent run --dir {STATE_DIR} >>{AGENT_LOG} 2>&1"),
            &rust_log_passthrough(),
        )
    }
}

impl Faults for Agent {
    fn container(&self) -> &Container {
        &self.container
    }

    /// Like a machine's init would: start the agent again after a container restart.
    fn after_container_start(&self) -> Result<()> {
        self.start_process()
    }
}
