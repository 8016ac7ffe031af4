//! Issue 21 item 5, the container image and the compose file: `deploy/container/build.sh`
//! builds the image locally (the test-host image as base, Rotor's own .debs in it, no
//! registry), `deploy/compose.yaml` runs the controller, which initialises itself; an agent
//! enrolled with the token and fingerprint the controller handed out connects across the
//! compose network, which also reaches `sys/health` by the service's name. The controller's
//! container is then removed and made again on the same volumes: the store, the root token
//! and the agent's enrollment survive, and the agent reconnects. The controller's container
//! shows the `rotor` package's user, owners and modes (this test is where that package is
//! installed: `packaging_deb` covers the agent's).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rotor_tests::docker::DockerCall;
use rotor_tests::image::test_image;
use rotor_tests::naming::current_run_id;
use rotor_tests::process::{ProgramOutput, run_program};
use rotor_tests::rotor::binaries::locate_binaries;
use rotor_tests::skip_requested;
use rotor_tests::wait::wait_until;
use serde_json::Value;

const IMAGE: &str = "rotor:compose-test";
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(300);

/// One compose project, taken down with its volumes on drop.
struct Project {
    name: String,
    file: PathBuf,
    api_port: u16,
    agent_port: u16,
    /// Container ids by service, asked once: every `docker-compose` call costs a second or
    /// more. Forgotten when `up`, `rm` or `down` may have changed them.
    containers: RefCell<HashMap<String, String>>,
}

impl Project {
    fn new() -> Result<Project> {
        Ok(Project {
            name: format!("rotor-compose-{}", current_run_id()),
            file: repository().join("deploy/compose.yaml"),
            api_port: free_tcp_port()?,
            agent_port: free_udp_port()?,
            containers: RefCell::new(HashMap::new()),
        })
    }

    /// `docker-compose -p NAME -f deploy/compose.yaml ARGS` (or `docker compose ...`), with
    /// `env` set for it.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Result<ProgramOutput> {
        if matches!(args.first(), Some(&"up" | &"rm" | &"down")) {
            self.containers.borrow_mut().clear();
        }
        let (program, first_args) = compose_program();
        let mut command = Command::new(program);
        command
            .args(first_args)
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .env("ROTOR_IMAGE", IMAGE)
            .env("ROTOR_API_PORT", self.api_port.to_string())
            .env("ROTOR_AGENT_PORT", self.agent_port.to_string())
            .env_remove("ROTOR_ENROLL_TOKEN")
            .env_remove("ROTOR_CA_FINGERPRINT");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = run_program(command, None, COMPOSE_TIMEOUT)
            .with_context(|| format!("running docker-compose {}", args.join(" ")))?;
        if !output.success() {
            bail!(
                "`docker-compose {}` failed ({}): {}",
                args.join(" "),
                output.describe_exit(),
                output.diagnostics()
            );
        }
        Ok(output)
    }

    /// The container of `service`.
    fn container(&self, service: &str) -> Result<String> {
        if let Some(id) = self.containers.borrow().get(service) {
            return Ok(id.clone());
        }
        let id = self
            .run(&["ps", "-q", service], &[])?
            .stdout
            .trim()
            .to_string();
        if id.is_empty() {
            bail!("compose project {} has no {service} container", self.name);
        }
        self.containers
            .borrow_mut()
            .insert(service.to_string(), id.clone());
        Ok(id)
    }

    /// `docker exec` in `service`'s container, as its user; `env` forwarded by name only.
    fn exec(&self, service: &str, argv: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let container = self.container(service)?;
        let mut args = vec!["exec"];
        for (name, _) in env {
            args.extend(["-e", name]);
        }
        args.push(&container);
        args.extend(argv);
        let output = DockerCall {
            args: &args,
            env,
            stdin: None,
            timeout: Duration::from_secs(60),
        }
        .output()?;
        if !output.success() {
            bail!(
                "in {service}: `{}` failed ({}): {}",
                argv.join(" "),
                output.describe_exit(),
                output.diagnostics()
            );
        }
        Ok(output.stdout)
    }

    /// `rotor -format=json VERB ARGS` in the controller's container with the root token.
    fn rotor(&self, token: &str, verb: &str, args: &[&str]) -> Result<Value> {
        let mut argv = vec!["rotor", verb, "-format=json"];
        argv.extend(args);
        let stdout = self.exec(
            "controller",
            &argv,
            &[
                ("ROTOR_ADDR", "https://127.0.0.1:8200"),
                ("ROTOR_CACERT", "/var/lib/rotor/ca.pem"),
                ("ROTOR_TOKEN", token),
            ],
        )?;
        serde_json::from_str(&stdout).with_context(|| format!("not JSON: {stdout}"))
    }

    fn wait_healthy(&self) -> Result<()> {
        wait_until(
            "the controller's sys/health to answer 200",
            Duration::from_secs(60),
            || {
                Ok(self
                    .exec(
                        "controller",
                        &[
                            "curl",
                            "-sS",
                            "-o",
                            "/dev/null",
                            "-w",
                            "%{http_code}",
                            "--cacert",
                            "/var/lib/rotor/ca.pem",
                            "https://127.0.0.1:8200/v1/sys/health",
                        ],
                        &[],
                    )
                    .is_ok_and(|code| code.trim() == "200"))
            },
        )
        .map_err(|error| error.context(self.logs("controller")))
    }

    fn wait_connected(&self, token: &str, agent_id: &str) -> Result<()> {
        let path = format!("agents/{agent_id}");
        wait_until(
            &format!("agent {agent_id} to be connected"),
            Duration::from_secs(60),
            || {
                Ok(self
                    .rotor(token, "read", &[&path])
                    .is_ok_and(|answer| answer["data"]["connected"] == true))
            },
        )
        .map_err(|error| error.context(self.logs("agent")))
    }

    fn logs(&self, service: &str) -> String {
        self.run(&["logs", "--no-color", "--tail=40", service], &[])
            .map(|output| output.stdout)
            .unwrap_or_default()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if let Err(error) = self.run(&["down", "-v", "--timeout", "5"], &[]) {
            eprintln!(
                "deploy_compose: could not take {} down: {error:#}",
                self.name
            );
        }
    }
}

#[test]
fn the_compose_file_runs_a_controller_and_an_agent_that_survive_a_new_container() -> Result<()> {
    if skip_requested("deploy_compose") {
        return Ok(());
    }
    let base = test_image()?;
    let binaries = locate_binaries()?;
    let bin_dir = binaries.agent.parent().context("binary directory")?;
    let mut build = Command::new("bash");
    build
        .arg(repository().join("deploy/container/build.sh"))
        .env("ROTOR_IMAGE", IMAGE)
        .env("ROTOR_BIN_DIR", bin_dir)
        .env("ROTOR_TEST_IMAGE", &base);
    let started = std::time::Instant::now();
    let built = run_program(build, None, COMPOSE_TIMEOUT)?;
    eprintln!(
        "deploy_compose: image built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        built.success(),
        "deploy/container/build.sh: {}",
        built.diagnostics()
    );
    assert_eq!(built.stdout.lines().last(), Some(IMAGE));

    let project = Project::new()?;
    project.run(&["up", "-d", "controller"], &[])?;
    project.wait_healthy()?;
    // The rotor package's user and modes, in the image and in the volumes made from it.
    let modes = project.exec(
        "controller",
        &[
            "stat",
            "-c",
            "%n %U:%G %a",
            "/var/lib/rotor",
            "/etc/rotor",
            "/etc/rotor/seal",
            "/etc/rotor/seal/seal.key",
            "/etc/rotor/rotor.hcl",
            "/var/lib/rotor/init.txt",
        ],
        &[],
    )?;
    assert_eq!(
        modes,
        "/var/lib/rotor rotor:rotor 700\n/etc/rotor rotor:rotor 750\n/etc/rotor/seal rotor:rotor 700\n\
         /etc/rotor/seal/seal.key rotor:rotor 600\n/etc/rotor/rotor.hcl root:rotor 640\n\
         /var/lib/rotor/init.txt rotor:rotor 600\n"
    );
    let init = project.exec("controller", &["cat", "/var/lib/rotor/init.txt"], &[])?;
    let token = init
        .lines()
        .find_map(|line| line.trim().strip_prefix("Root Token:"))
        .map(str::trim)
        .context("no root token in init.txt")?
        .to_string();

    let enrollment = project.rotor(&token, "write", &["agents/enroll", "site=compose"])?;
    let data = &enrollment["data"];
    let agent_id = data["agent_id"].as_str().context("agent_id")?.to_string();
    assert_eq!(data["controller_addr"], "controller:8201", "{enrollment}");
    project.run(
        &["up", "-d", "agent"],
        &[
            (
                "ROTOR_ENROLL_TOKEN",
                data["token"].as_str().context("token")?,
            ),
            (
                "ROTOR_CA_FINGERPRINT",
                data["ca_fingerprint"].as_str().context("ca_fingerprint")?,
            ),
        ],
    )?;
    project.wait_connected(&token, &agent_id)?;

    // The API by its service name, from the compose network, trusting the CA the agent pinned.
    let health = project.exec(
        "agent",
        &[
            "curl",
            "-sS",
            "--cacert",
            "/var/lib/rotor-agent/ca.pem",
            "https://controller:8200/v1/sys/health",
        ],
        &[],
    )?;
    let health: Value = serde_json::from_str(&health).context("sys/health is not JSON")?;
    assert_eq!(health["initialized"], true, "{health}");
    let users = project.exec("agent", &["id", "-un"], &[])?;
    assert_eq!(users.trim(), "rotor-agent");

    // A new controller container on the same volumes: same store, same agent.
    project.run(&["rm", "-s", "-f", "controller"], &[])?;
    project.run(&["up", "-d", "--no-deps", "controller"], &[])?;
    project.wait_healthy()?;
    // The root token still works and the agent's record is there, connected again.
    project.wait_connected(&token, &agent_id)?;
    Ok(())
}

/// `docker-compose` (v1, Debian's package) where installed, else Docker's `docker compose`.
fn compose_program() -> (&'static str, &'static [&'static str]) {
    let v1 = Command::new("docker-compose").arg("version").output();
    if v1.is_ok_and(|output| output.status.success()) {
        ("docker-compose", &[])
    } else {
        ("docker", &["compose"])
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}
