//! Fleet rotation (issue 7, benchmarks 1 and 4): N harness hosts × M accounts on one site,
//! each with a parent `mgmt` allowed `sudo -n /usr/sbin/chpasswd`, one Rotor agent. Times
//! Rotor rotating every child (`os/hosts/:host/rotate accounts=…`, all hosts at once, from
//! inside the controller container) against the floor (one `sshpass ssh … sudo -n
//! /usr/sbin/chpasswd` per host with M lines on stdin, all hosts at once, from the site's
//! probe container) and Ansible's `user` module (see `ansible`). While Rotor rotates, the
//! agent's RSS is sampled (see `rss`). After every run a sample of accounts logs in with its
//! new password.
//!
//! Owns the fleet's set-up and the timing scripts. Must not judge the figures (the caller
//! reports them), and never puts a password on a command line outside the containers'
//! throwaway scripts, which receive them on stdin.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::fresh_password;
use super::rss::{self, Sampler};
use super::stats::labelled_value;
use crate::faults::Faults;
use crate::host::Host;
use crate::process::ProgramOutput;
use crate::rotor::Rotor;
use crate::site::Site;

/// Inside the controller container (see `rotor::controller`).
const API_ADDRESS: &str = "https://127.0.0.1:8200";
const CA_CERT: &str = "/data/ca.pem";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);
const PARENT: &str = "mgmt";
/// Hosts started at once while building the fleet.
const START_PARALLELISM: usize = 5;

/// The fleet's shape.
#[derive(Debug, Clone, Copy)]
pub struct FleetShape {
    pub hosts: usize,
    pub accounts: usize,
}

/// One host of the fleet and what the benchmark knows of it.
pub struct FleetHost {
    pub host: Host,
    pub address: String,
    host_key: String,
}

/// The running fleet: hosts, Rotor (controller + one agent), the accounts' names.
pub struct Fleet {
    // Drop order: Rotor (agent, controller), then hosts, then the site.
    pub rotor: Rotor,
    pub hosts: Vec<FleetHost>,
    pub site: Site,
    pub users: Vec<String>,
    pub parent_password: String,
}

/// Wall time and the agent's memory during one Rotor round.
pub struct RotorRound {
    pub wall: Duration,
    /// VmRSS samples of the agent during the round, KiB.
    pub rss_samples: Vec<u64>,
    /// VmHWM after the round (peak since the reset before it), KiB.
    pub peak_kib: u64,
}

impl Fleet {
    /// Starts the hosts and Rotor, and registers every host and account with Rotor.
    pub fn start(shape: FleetShape) -> Result<Fleet> {
        let site = Site::new("bench")?;
        let parent_password = fresh_password();
        let users: Vec<String> = (1..=shape.accounts).map(|i| format!("u{i:02}")).collect();
        let names: Vec<String> = (1..=shape.hosts).map(|i| format!("h{i:02}")).collect();
        let mut hosts = Vec::new();
        for chunk in names.chunks(START_PARALLELISM) {
            let started: Vec<Result<(FleetHost, HashMap<String, String>)>> =
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|name| {
                            let (site, users, parent) = (&site, &users, &parent_password);
                            scope.spawn(move || start_host(site, name, parent, users))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|handle| {
                            handle
                                .join()
                                .unwrap_or_else(|_| Err(anyhow!("a host start panicked")))
                        })
                        .collect()
                });
            for host in started {
                hosts.push(host?);
            }
        }
        eprintln!("rotor-bench: {} hosts up; starting Rotor", hosts.len());
        let rotor = Rotor::start(&[&site])?;
        let mut script = String::from("set -e\n");
        for (fleet_host, initial) in &hosts {
            let name = fleet_host.host.name();
            script.push_str(&format!(
                "rotor write os/hosts/{name} address={} site={} 'ssh_host_key={}' >/dev/null\n",
                fleet_host.address,
                site.name(),
                fleet_host.host_key
            ));
            script.push_str(&format!(
                "rotor write os/hosts/{name}/accounts/{PARENT} username={PARENT} \
                 password={parent_password} verify_connection=false >/dev/null\n"
            ));
            for user in &users {
                let password = initial
                    .get(user)
                    .ok_or_else(|| anyhow!("no initial password for {user}"))?;
                script.push_str(&format!(
                    "rotor write os/hosts/{name}/accounts/{user} username={user} \
                     password={password} parent_ref={PARENT} verify_connection=false >/dev/null\n"
                ));
            }
        }
        let fleet = Fleet {
            rotor,
            hosts: hosts.into_iter().map(|(host, _)| host).collect(),
            site,
            users,
            parent_password,
        };
        let output = fleet.controller_script(&script)?;
        if !output.success() {
            bail!(
                "registering the fleet with Rotor failed ({}): {}",
                output.describe_exit(),
                output.diagnostics()
            );
        }
        Ok(fleet)
    }

    /// Runs `script` with `sh` inside the controller container, with the CLI's environment.
    pub(crate) fn controller_script(&self, script: &str) -> Result<ProgramOutput> {
        let token = self.rotor.controller().root_token().to_string();
        self.rotor.controller().container().exec_program(
            &["sh", "-s"],
            &[
                ("ROTOR_ADDR", API_ADDRESS),
                ("ROTOR_CACERT", CA_CERT),
                ("ROTOR_TOKEN", &token),
            ],
            Some(script.as_bytes()),
            SCRIPT_TIMEOUT,
        )
    }

    /// The agent's host PID (to read its memory from /proc).
    pub fn agent_pid(&self) -> Result<u32> {
        let agent = self
            .rotor
            .agents()
            .first()
            .ok_or_else(|| anyhow!("Rotor has no agent"))?;
        rss::host_pid(agent.container().name(), "rotor-agent")
    }

    /// Rotor rotates every child account of every host, all hosts at once; the wall time is
    /// from the first request to the last answer (each answer means every account of that
    /// host was confirmed changed and committed). Checks every answer and a sample of logins.
    pub fn rotor_round(&self) -> Result<RotorRound> {
        let agent_pid = self.agent_pid()?;
        rss::reset_peak(agent_pid)?;
        let accounts = self.users.join(",");
        let names: Vec<&str> = self.hosts.iter().map(|h| h.host.name()).collect();
        let names = names.join(" ");
        let script = format!(
            "rm -f /tmp/rot-*.json\n\
             s=$(date +%s%N)\n\
             for h in {names}; do rotor write -format=json os/hosts/$h/rotate accounts={accounts} \
             >/tmp/rot-$h.json 2>&1 & done\n\
             wait\n\
             e=$(date +%s%N)\n\
             echo \"wall_ns $((e-s))\"\n\
             for h in {names}; do printf 'answer %s ' $h; tr -d '\\n' </tmp/rot-$h.json; echo; done\n"
        );
        let sampler = Sampler::start(agent_pid, Duration::from_millis(50));
        let output = self.controller_script(&script);
        let rss_samples = sampler.finish();
        let output = output?;
        let peak_kib = rss::status_kib(agent_pid, "VmHWM")?;
        let wall = Duration::from_nanos(labelled_value(&output.stdout, "wall_ns")?);
        for line in output.stdout.lines() {
            let Some(rest) = line.strip_prefix("answer ") else {
                continue;
            };
            let (host, answer) = rest.split_once(' ').unwrap_or((rest, ""));
            check_rotate_answer(host, answer, self.users.len())?;
        }
        for (host, user) in self.sample() {
            let path = format!("os/hosts/{}/accounts/{user}/creds", host.host.name());
            let creds = self.rotor.cli_json(&["read", &path])?;
            let password = creds
                .pointer("/data/password")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("`rotor read {path}` has no password: {creds}"))?;
            host.host.login(user, password).map_err(|error| {
                anyhow!("after Rotor's rotation, the new password must log in: {error}")
            })?;
        }
        Ok(RotorRound {
            wall,
            rss_samples,
            peak_kib,
        })
    }

    /// The floor: plain OpenSSH from the site's probe, one session per host running
    /// `sudo -n /usr/sbin/chpasswd` with every account's new line on stdin, all hosts at
    /// once. Answers the wall time inside the probe; checks every exit and a sample of logins.
    pub fn floor_round(&self) -> Result<Duration> {
        let passwords = self.new_passwords();
        let mut lines = String::new();
        for (index, host) in self.hosts.iter().enumerate() {
            for (user, password) in self.users.iter().zip(&passwords[index]) {
                lines.push_str(&format!("{} {user}:{password}\n", host.address));
            }
        }
        let script = "rm -rf /tmp/floor && mkdir /tmp/floor && cd /tmp/floor || exit 99\n\
             while read -r ip line; do echo \"$line\" >>\"$ip.in\"; done\n\
             ips=$(ls | sed -n 's/\\.in$//p')\n\
             s=$(date +%s%N)\n\
             for ip in $ips; do (sshpass -e ssh -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o PreferredAuthentications=password,keyboard-interactive \
             -o PubkeyAuthentication=no -o LogLevel=ERROR -o ConnectTimeout=10 mgmt@$ip \
             'sudo -n /usr/sbin/chpasswd' <$ip.in >$ip.out 2>&1; echo $? >$ip.rc) & done\n\
             wait\n\
             e=$(date +%s%N)\n\
             echo \"wall_ns $((e-s))\"\n\
             for ip in $ips; do echo \"rc $ip $(cat $ip.rc) $(head -c 300 $ip.out | tr '\\n' ' ')\"; done\n";
        let probe = self.site.probe()?;
        let output = probe.exec_program(
            &["sh", "-c", script],
            &[("SSHPASS", &self.parent_password)],
            Some(lines.as_bytes()),
            SCRIPT_TIMEOUT,
        )?;
        let wall = Duration::from_nanos(
            labelled_value(&output.stdout, "wall_ns")
                .with_context(|| format!("floor script: {}", output.diagnostics()))?,
        );
        let results: Vec<&str> = output
            .stdout
            .lines()
            .filter(|line| line.starts_with("rc "))
            .collect();
        if results.len() != self.hosts.len() {
            bail!(
                "the floor ran on {} hosts, not {}: {}",
                results.len(),
                self.hosts.len(),
                output.diagnostics()
            );
        }
        if let Some(failed) = results
            .iter()
            .find(|line| line.split_whitespace().nth(2) != Some("0"))
        {
            bail!("a floor session failed: {failed}");
        }
        self.check_logins(&passwords, "the floor's chpasswd")?;
        Ok(wall)
    }

    /// A fresh password for every account of every host, `[host][account]`.
    pub fn new_passwords(&self) -> Vec<Vec<String>> {
        self.hosts
            .iter()
            .map(|_| self.users.iter().map(|_| fresh_password()).collect())
            .collect()
    }

    /// Logs in with the passwords just set on a sample of hosts and accounts.
    pub fn check_logins(&self, passwords: &[Vec<String>], by: &str) -> Result<()> {
        for (host, user) in self.sample() {
            let host_index = self
                .hosts
                .iter()
                .position(|h| h.host.name() == host.host.name())
                .ok_or_else(|| anyhow!("sampled host not in the fleet"))?;
            let user_index = self
                .users
                .iter()
                .position(|u| u == user)
                .ok_or_else(|| anyhow!("sampled user not in the fleet"))?;
            let password = passwords
                .get(host_index)
                .and_then(|row| row.get(user_index))
                .ok_or_else(|| anyhow!("no password for {user} on {}", host.host.name()))?;
            host.host
                .login(user, password)
                .map_err(|error| anyhow!("after {by}, the new password must log in: {error}"))?;
        }
        Ok(())
    }

    /// First, middle and last host; first and last account of each.
    fn sample(&self) -> Vec<(&FleetHost, &str)> {
        let count = self.hosts.len();
        let mut indexes = vec![0, count / 2, count.saturating_sub(1)];
        indexes.dedup();
        let users: Vec<&str> = [self.users.first(), self.users.last()]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        indexes
            .into_iter()
            .filter_map(|index| self.hosts.get(index))
            .flat_map(|host| users.iter().map(move |user| (host, *user)))
            .collect()
    }

    /// What the controller and the agent logged (for finding where time goes).
    pub fn logs(&self) -> Result<(String, String)> {
        let agent = self
            .rotor
            .agents()
            .first()
            .ok_or_else(|| anyhow!("Rotor has no agent"))?;
        Ok((self.rotor.controller_logs()?, agent.logs()?))
    }
}

/// A host with the parent and `users`; answers it with each user's initial password.
fn start_host(
    site: &Site,
    name: &str,
    parent_password: &str,
    users: &[String],
) -> Result<(FleetHost, HashMap<String, String>)> {
    let mut builder = site.host(name).with_parent(PARENT, parent_password);
    let mut initial = HashMap::new();
    for user in users {
        let password = fresh_password();
        builder = builder.with_user(user, &password);
        initial.insert(user.clone(), password);
    }
    let host = builder.start()?;
    let address = host.address()?.to_string();
    let host_key = host.host_public_key("ed25519")?;
    Ok((
        FleetHost {
            host,
            address,
            host_key,
        },
        initial,
    ))
}

/// `os/hosts/:host/rotate`'s JSON answer: every one of `expected` accounts got a version.
fn check_rotate_answer(host: &str, answer: &str, expected: usize) -> Result<()> {
    let parsed: Value = serde_json::from_str(answer)
        .with_context(|| format!("Rotor's answer for {host} is not JSON: {answer}"))?;
    let failed = parsed.pointer("/data/failed").and_then(Value::as_u64);
    let rotated = parsed
        .pointer("/data/accounts")
        .and_then(Value::as_object)
        .map(|accounts| {
            accounts
                .values()
                .filter(|account| account.get("version").is_some_and(Value::is_u64))
                .count()
        });
    if failed != Some(0) || rotated != Some(expected) {
        bail!("Rotor did not rotate all {expected} accounts of {host}: {answer}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_answers_are_checked() {
        let good = r#"{"data":{"accounts":{"u01":{"version":2,"status":"in_sync","error":null},"u02":{"version":2}},"failed":0}}"#;
        assert!(check_rotate_answer("h01", good, 2).is_ok());
        assert!(check_rotate_answer("h01", good, 3).is_err());
        let failed = r#"{"data":{"accounts":{"u01":{"version":null,"error":"x"}},"failed":1}}"#;
        assert!(check_rotate_answer("h01", failed, 1).is_err());
        assert!(check_rotate_answer("h01", "Error: 500", 1).is_err());
    }
}
