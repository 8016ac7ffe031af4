//! Ansible's `user` module over the benchmark fleet (issue 7, benchmark 1's third column):
//! ansible-core from PyPI in a venv under /var/cache/rotor/bench-venv, run from the build
//! machine against the containers' addresses with the same forks as hosts, setting every
//! account's password as a SHA-512 crypt hash (`openssl passwd -6`).
//!
//! Preparing a host for Ansible changes it beyond what Rotor needs, so it happens only here
//! and after Rotor and the floor were measured: Python (Debian's packages, fetched once into
//! /var/cache/rotor/bench-debs) and `mgmt ALL=(ALL) NOPASSWD: ALL` (Ansible's `become` runs
//! Python as root; the chpasswd-only line is not enough). Must not touch Rotor.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::fleet::Fleet;
use crate::docker::{DockerCall, docker};
use crate::image::test_image;
use crate::process::run_program;

const VENV: &str = "/var/cache/rotor/bench-venv";
const DEBS: &str = "/var/cache/rotor/bench-debs";
const PREPARE_PARALLELISM: usize = 5;

fn playbook_binary() -> PathBuf {
    Path::new(VENV).join("bin/ansible-playbook")
}

/// ansible-core's version (installing it into the venv first if it is not there).
pub fn ensure_ansible() -> Result<String> {
    if !playbook_binary().is_file() {
        eprintln!("rotor-bench: installing ansible-core into {VENV}");
        let created = Command::new("python3")
            .args(["-m", "venv", VENV])
            .status()
            .context("running python3 -m venv")?;
        if !created.success() {
            bail!("python3 -m venv {VENV} failed");
        }
        let pip = Path::new(VENV).join("bin/pip");
        let installed = Command::new(&pip)
            .args(["install", "-q", "ansible-core"])
            .status()
            .with_context(|| format!("running {}", pip.display()))?;
        if !installed.success() {
            bail!("pip install ansible-core into {VENV} failed");
        }
    }
    let output = Command::new(playbook_binary())
        .arg("--version")
        .output()
        .context("ansible-playbook --version")?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("ansible-playbook (unknown version)")
        .to_string())
}

/// Debian's python3 packages for the test image, downloaded once by a throwaway container.
fn ensure_python_debs() -> Result<()> {
    let present = std::fs::read_dir(DEBS)
        .map(|entries| {
            entries
                .flatten()
                .any(|entry| entry.file_name().to_string_lossy().starts_with("python3_"))
        })
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    std::fs::create_dir_all(DEBS).with_context(|| format!("creating {DEBS}"))?;
    let image = test_image()?;
    let mount = format!("{DEBS}:/out");
    let output = DockerCall {
        args: &[
            "run",
            "--rm",
            "-v",
            &mount,
            &image,
            "sh",
            "-c",
            "apt-get update -qq && apt-get install --download-only -y -qq --no-install-recommends \
             python3 && cp /var/cache/apt/archives/*.deb /out/",
        ],
        env: &[],
        stdin: None,
        timeout: Duration::from_secs(300),
    }
    .output()?;
    if !output.success() {
        bail!(
            "downloading python3 packages for the hosts failed: {}",
            output.diagnostics()
        );
    }
    Ok(())
}

/// Installs Python and the broad sudoers line on every host of the fleet.
pub fn prepare_hosts(fleet: &Fleet) -> Result<()> {
    ensure_python_debs()?;
    for chunk in fleet.hosts.chunks(PREPARE_PARALLELISM) {
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|fleet_host| {
                    scope.spawn(move || -> Result<()> {
                        let container = fleet_host.host.container().name();
                        docker(&["cp", DEBS, &format!("{container}:/tmp/bench-debs")])?;
                        fleet_host.host.exec(
                            // dpkg takes the files in name order, so python3-minimal and
                            // python3 meet their pre-dependencies unconfigured and are
                            // skipped; each pass installs one more link of that chain.
                            "ok=; for pass in 1 2 3 4; do \
                             if dpkg -i /tmp/bench-debs/*.deb >/tmp/bench-dpkg.log 2>&1; then ok=1; break; fi; \
                             done; [ -n \"$ok\" ] || { tail -5 /tmp/bench-dpkg.log; exit 1; }; \
                             echo 'mgmt ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/bench-ansible && \
                             chmod 0440 /etc/sudoers.d/bench-ansible && visudo -c >/dev/null && \
                             python3 -c 'import json'",
                        )?;
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(anyhow!("preparing a host panicked")))
                })
                .collect()
        });
        for result in results {
            result?;
        }
    }
    Ok(())
}

/// SHA-512 crypt hashes of `passwords`, in order (`openssl passwd -6 -stdin`).
fn hashes(passwords: &[&str]) -> Result<Vec<String>> {
    let mut command = Command::new("openssl");
    command.args(["passwd", "-6", "-stdin"]);
    let input: String = passwords.iter().map(|p| format!("{p}\n")).collect();
    let output = run_program(command, Some(input.as_bytes()), Duration::from_secs(120))?;
    if !output.success() {
        bail!("openssl passwd -6 failed: {}", output.diagnostics());
    }
    let hashes: Vec<String> = output.stdout.lines().map(String::from).collect();
    if hashes.len() != passwords.len() || hashes.iter().any(|h| !h.starts_with("$6$")) {
        bail!(
            "openssl passwd -6 printed {} lines for {} passwords",
            hashes.len(),
            passwords.len()
        );
    }
    Ok(hashes)
}

/// One Ansible run setting fresh passwords on every account; answers its wall time (the
/// whole `ansible-playbook` process, start-up included) after checking a sample of logins.
pub fn ansible_round(fleet: &Fleet, forks: usize) -> Result<Duration> {
    let passwords = fleet.new_passwords();
    let flat: Vec<&str> = passwords.iter().flatten().map(String::as_str).collect();
    let hashed = hashes(&flat)?;
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("host_vars"))?;
    let mut inventory = String::from("[fleet]\n");
    let mut hashes_iter = hashed.iter();
    for fleet_host in &fleet.hosts {
        let name = fleet_host.host.name();
        inventory.push_str(&format!("{name} ansible_host={}\n", fleet_host.address));
        let mut vars = String::from("accounts:\n");
        for user in &fleet.users {
            let hash = hashes_iter
                .next()
                .ok_or_else(|| anyhow!("fewer hashes than accounts"))?;
            vars.push_str(&format!("  - {{ name: {user}, hash: '{hash}' }}\n"));
        }
        std::fs::write(root.join("host_vars").join(format!("{name}.yml")), vars)?;
    }
    inventory.push_str(&format!(
        "[fleet:vars]\nansible_user=mgmt\nansible_password={}\nansible_become=true\n\
         ansible_python_interpreter=/usr/bin/python3\n",
        fleet.parent_password
    ));
    std::fs::write(root.join("inventory.ini"), inventory)?;
    std::fs::write(
        root.join("ansible.cfg"),
        "[defaults]\nhost_key_checking = False\nretry_files_enabled = False\n",
    )?;
    std::fs::write(
        root.join("play.yml"),
        "- hosts: fleet\n  gather_facts: false\n  tasks:\n    - name: set passwords\n      \
         ansible.builtin.user:\n        name: \"{{ item.name }}\"\n        password: \"{{ item.hash }}\"\n      \
         loop: \"{{ accounts }}\"\n      no_log: true\n",
    )?;
    let mut command = Command::new(playbook_binary());
    command
        .current_dir(root)
        .args(["-i", "inventory.ini", "-f", &forks.to_string(), "play.yml"])
        .env("ANSIBLE_CONFIG", root.join("ansible.cfg"))
        .env("ANSIBLE_LOCAL_TEMP", root.join("tmp"));
    let started = Instant::now();
    let output = run_program(command, None, Duration::from_secs(900))?;
    let wall = started.elapsed();
    if !output.success() {
        bail!(
            "ansible-playbook failed ({}): {}\n{}",
            output.describe_exit(),
            output
                .stdout
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n"),
            output.stderr.trim()
        );
    }
    fleet.check_logins(&passwords, "Ansible's user module")?;
    Ok(wall)
}
