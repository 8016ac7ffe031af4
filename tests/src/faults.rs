//! Faults a test can inflict on any container: kill a process, kill or restart the
//! whole container, pause it, cut it from a network and heal, slow its links.
//! Each is one trait method with a default body, so hosts, agents and the controller
//! share them; `after_container_start` lets an owner bring its processes back after
//! a container restart (as a machine's init would). Never asserts anything.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::container::Container;
use crate::docker::docker;
use crate::network::Network;
use crate::wait::wait_until;

/// Fault injection on the container behind a host, agent or controller.
pub trait Faults {
    /// The container faults act on.
    fn container(&self) -> &Container;

    /// Runs after `restart_container` started the container again; the default does
    /// nothing. Hosts wait for sshd; agents and the controller restart their process.
    fn after_container_start(&self) -> Result<()> {
        Ok(())
    }

    /// Sends SIGKILL to every process named exactly `process_name` (`pkill -9 -x`) and
    /// waits until none is left. Err if no such process was running.
    fn kill_process(&self, process_name: &str) -> Result<()> {
        let container = self.container();
        let output = container.exec_program(
            &["pkill", "-KILL", "-x", process_name],
            &[],
            None,
            Duration::from_secs(30),
        )?;
        if output.exit_code == Some(1) {
            bail!(
                "in {}: no process named `{process_name}` to kill",
                container.role()
            );
        }
        if !output.success() {
            bail!(
                "in {}: pkill -KILL -x {process_name} failed ({}): {}",
                container.role(),
                output.describe_exit(),
                output.stderr.trim()
            );
        }
        wait_until(
            &format!("`{process_name}` to be gone in {}", container.role()),
            Duration::from_secs(10),
            || {
                let check = container.exec_program(
                    &["pgrep", "-x", process_name],
                    &[],
                    None,
                    Duration::from_secs(30),
                )?;
                Ok(check.exit_code == Some(1))
            },
        )
    }

    /// `docker kill`: SIGKILL to the whole container; everything in it stops at once.
    fn kill_container(&self) -> Result<()> {
        let container = self.container();
        docker(&["kill", container.name()])
            .with_context(|| format!("killing {}", container.role()))?;
        Ok(())
    }

    /// Starts the container again (after `kill_container`), or restarts it if it runs,
    /// then runs `after_container_start`. Networks it was on are rejoined by Docker.
    fn restart_container(&self) -> Result<()> {
        let container = self.container();
        let verb = if container.is_running()? {
            ["restart", "-t", "2"].as_slice()
        } else {
            ["start"].as_slice()
        };
        let mut args = verb.to_vec();
        args.push(container.name());
        docker(&args).with_context(|| format!("restarting {}", container.role()))?;
        self.after_container_start()
    }

    /// Freezes every process of the container (`docker pause`); TCP handshakes still
    /// complete in the kernel, but nothing answers.
    fn pause(&self) -> Result<()> {
        let container = self.container();
        docker(&["pause", container.name()])
            .with_context(|| format!("pausing {}", container.role()))?;
        Ok(())
    }

    /// Thaws a paused container.
    fn unpause(&self) -> Result<()> {
        let container = self.container();
        docker(&["unpause", container.name()])
            .with_context(|| format!("unpausing {}", container.role()))?;
        Ok(())
    }

    /// Partition: removes the container from `network` (its address there is released).
    fn disconnect_from(&self, network: &Network) -> Result<()> {
        self.container().disconnect_from(network)
    }

    /// Heal: joins `network` again (the address may differ from before).
    fn connect_to(&self, network: &Network) -> Result<()> {
        self.container().connect_to(network)
    }

    /// Delays every packet leaving each of the container's interfaces by `delay_ms`
    /// (`tc qdisc … netem delay`). Err saying so when the kernel has no netem.
    fn slow_link(&self, delay_ms: u32) -> Result<()> {
        let container = self.container();
        for interface in interfaces(container)? {
            let delay = format!("{delay_ms}ms");
            let output = container.exec_program(
                &[
                    "tc", "qdisc", "replace", "dev", &interface, "root", "netem", "delay", &delay,
                ],
                &[],
                None,
                Duration::from_secs(30),
            )?;
            if output.success() {
                continue;
            }
            let stderr = output.stderr.trim();
            if stderr.contains("qdisc kind is unknown") || stderr.contains("No such file") {
                bail!(
                    "slow_link on {}: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is \
                     off on this machine), so links cannot be slowed; tc said: {stderr}",
                    container.role()
                );
            }
            bail!(
                "slow_link on {} ({interface}): tc failed ({}): {stderr}",
                container.role(),
                output.describe_exit()
            );
        }
        Ok(())
    }

    /// Removes what `slow_link` added.
    fn clear_slow_link(&self) -> Result<()> {
        let container = self.container();
        for interface in interfaces(container)? {
            // Fails harmlessly when no qdisc was added.
            container.exec_program(
                &["tc", "qdisc", "del", "dev", &interface, "root"],
                &[],
                None,
                Duration::from_secs(30),
            )?;
        }
        Ok(())
    }
}

impl Faults for Container {
    fn container(&self) -> &Container {
        self
    }
}

/// The container's network interfaces other than loopback.
fn interfaces(container: &Container) -> Result<Vec<String>> {
    let listing = container.exec("ls /sys/class/net")?;
    Ok(listing
        .split_whitespace()
        .filter(|name| *name != "lo")
        .map(String::from)
        .collect())
}
