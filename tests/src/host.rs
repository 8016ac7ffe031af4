//! A target host: a container running sshd with PAM, its accounts (parents with the
//! `NOPASSWD: /usr/sbin/chpasswd` sudoers line, self-managed users without sudo), and
//! what tests do to it as root through `docker exec`: passwords, host keys, sshd, logs.
//! Logging in over SSH is in `login`; faults come from the `Faults` trait. Passwords
//! reach the container only on stdin.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::container::{Container, ContainerSpec};
use crate::faults::Faults;
use crate::login::{LoginError, run_over_ssh};
use crate::naming::{validate_part, validate_user};
use crate::process::ProgramOutput;
use crate::site::Site;
use crate::wait::wait_until;

/// Where host-init sends sshd's log (`-E`), and where `start_sshd` does too.
pub const SSHD_LOG: &str = "/var/log/sshd.log";
const START_SSHD: &str = "mkdir -p /run/sshd && /usr/sbin/sshd -E /var/log/sshd.log";
const SSHD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// One account to create at start. Not `Debug`: it holds a password.
struct Account {
    user: String,
    password: String,
    is_parent: bool,
}

/// A host being described; `start()` makes it. Not `Debug`: it holds passwords.
pub struct HostBuilder {
    site: Site,
    name: String,
    accounts: Vec<Account>,
}

impl HostBuilder {
    pub(crate) fn new(site: Site, name: &str) -> HostBuilder {
        HostBuilder {
            site,
            name: name.to_string(),
            accounts: Vec::new(),
        }
    }

    /// Adds a parent account: may run `sudo -n /usr/sbin/chpasswd` without a password.
    pub fn with_parent(mut self, user: &str, password: &str) -> HostBuilder {
        self.accounts.push(Account {
            user: user.to_string(),
            password: password.to_string(),
            is_parent: true,
        });
        self
    }

    /// Adds a self-managed account (a login shell, no sudo).
    pub fn with_user(mut self, user: &str, password: &str) -> HostBuilder {
        self.accounts.push(Account {
            user: user.to_string(),
            password: password.to_string(),
            is_parent: false,
        });
        self
    }

    /// Starts the container (fresh host keys, sshd listening), then creates the accounts.
    pub fn start(self) -> Result<Host> {
        validate_part("host", &self.name)?;
        for account in &self.accounts {
            validate_user(&account.user)?;
            validate_password(&account.password)?;
        }
        let container_name = format!("{}-{}-{}", self.site.run_id(), self.site.name(), self.name);
        let container = Container::start(ContainerSpec {
            role: format!(
                "host {} of site {} ({container_name})",
                self.name,
                self.site.name()
            ),
            name: container_name,
            run_id: self.site.run_id(),
            network: self.site.network(),
            run_options: Vec::new(),
            command: Vec::new(),
        })?;
        let host = Host {
            container,
            name: self.name,
            site: self.site,
            last_address: Mutex::new(None),
        };
        host.wait_for_sshd()?;
        host.create_accounts(&self.accounts)?;
        host.address()?;
        Ok(host)
    }
}

/// A running target host; its container is removed on drop.
pub struct Host {
    // Declared first: dropped (container removed) before the site's network handle.
    container: Container,
    name: String,
    site: Site,
    /// Last address seen on the site network, so a login to a disconnected host still
    /// tries (and fails to reach) where it was.
    last_address: Mutex<Option<IpAddr>>,
}

impl Host {
    /// The host's name as the test gave it (`web-1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The site the host is on.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Who this is in messages: `host web-1 of site a (rt…-a-web-1)`.
    pub fn role(&self) -> &str {
        self.container.role()
    }

    /// The host's IPv4 address on its site network.
    pub fn address(&self) -> Result<IpAddr> {
        let address = self.container.address_on(self.site.network())?;
        if let Ok(mut last) = self.last_address.lock() {
            *last = Some(address);
        }
        Ok(address)
    }

    /// The current address, or the last one seen if the host left its network.
    pub(crate) fn address_for_login(&self) -> Result<IpAddr> {
        self.address().or_else(|error| {
            self.last_address
                .lock()
                .ok()
                .and_then(|last| *last)
                .ok_or(error)
        })
    }

    /// Runs `sh -c command` as root on the host; Ok(stdout) only when it exits 0.
    pub fn exec(&self, command: &str) -> Result<String> {
        self.container.exec(command)
    }

    /// Runs `sh -c command` as root on the host; Ok whatever its exit status.
    pub fn exec_output(&self, command: &str) -> Result<ProgramOutput> {
        self.container.exec_output(command)
    }

    /// Sets `user`'s password as root with chpasswd (the password goes on stdin).
    pub fn set_password(&self, user: &str, password: &str) -> Result<()> {
        validate_user(user)?;
        validate_password(password)?;
        let line = format!("{user}:{password}\n");
        let output = self
            .container
            .exec_with_stdin("chpasswd", line.as_bytes())?;
        if !output.success() {
            bail!(
                "setting the password of `{user}` on {} failed ({}): {}",
                self.role(),
                output.describe_exit(),
                output.stderr.trim()
            );
        }
        Ok(())
    }

    /// Logs in over SSH as `user` with `password` from inside the host's site and runs
    /// `true`. The error says whether the password was refused or the host unreachable.
    pub fn login(&self, user: &str, password: &str) -> Result<(), LoginError> {
        let output = run_over_ssh(self, user, password, "true", None)?;
        if output.success() {
            Ok(())
        } else {
            Err(LoginError::session_failed(self, user, &output))
        }
    }

    /// Logs in as `user` and runs `command` (its words split by the remote shell) with
    /// `stdin`; Ok with the command's output whatever its exit status once logged in.
    pub fn ssh(
        &self,
        user: &str,
        password: &str,
        command: &str,
        stdin: &[u8],
    ) -> Result<ProgramOutput, LoginError> {
        run_over_ssh(self, user, password, command, Some(stdin))
    }

    /// Whether this host can open a TCP connection to `other`'s sshd.
    pub fn reaches(&self, other: &Host) -> Result<bool> {
        let address = other.address_for_login()?;
        self.container.can_reach(address, 22)
    }

    /// The SHA256 fingerprint of the host's ed25519 key, as `ssh-keygen -lf` prints it
    /// (`SHA256:…`).
    pub fn host_key_fingerprint(&self) -> Result<String> {
        let listing = self.exec("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")?;
        listing
            .split_whitespace()
            .nth(1)
            .filter(|field| field.starts_with("SHA256:"))
            .map(String::from)
            .ok_or_else(|| anyhow!("ssh-keygen -lf on {} printed `{listing}`", self.role()))
    }

    /// The host's public key of `algorithm` (`ed25519`, `rsa`, `ecdsa`, or the OpenSSH
    /// names `ssh-ed25519`, …) as one OpenSSH line, `ssh-ed25519 AAAA…`, without comment.
    pub fn host_public_key(&self, algorithm: &str) -> Result<String> {
        let file = match algorithm {
            "ed25519" | "ssh-ed25519" => "ed25519",
            "rsa" | "ssh-rsa" => "rsa",
            "ecdsa" | "ecdsa-sha2-nistp256" => "ecdsa",
            other => bail!("unknown host key algorithm `{other}` (ed25519, rsa or ecdsa)"),
        };
        let line = self.exec(&format!("cat /etc/ssh/ssh_host_{file}_key.pub"))?;
        let fields: Vec<&str> = line.split_whitespace().take(2).collect();
        if fields.len() != 2 {
            bail!(
                "{}: malformed {file} public key `{}`",
                self.role(),
                line.trim()
            );
        }
        Ok(fields.join(" "))
    }

    /// Replaces all host keys with new ones and restarts sshd (a "rebuilt" host).
    pub fn regenerate_host_keys(&self) -> Result<()> {
        self.exec("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A")
            .with_context(|| format!("regenerating host keys of {}", self.role()))?;
        self.stop_sshd()?;
        self.start_sshd()
    }

    /// Stops every sshd process (listener and sessions); port 22 then refuses.
    pub fn stop_sshd(&self) -> Result<()> {
        self.exec_output("pkill -x sshd")?;
        wait_until(
            &format!("sshd to stop on {}", self.role()),
            SSHD_START_TIMEOUT,
            || {
                Ok(!self.sshd_is_listening()?
                    && self.exec_output("pgrep -x sshd")?.exit_code == Some(1))
            },
        )
    }

    /// Starts sshd (logging to the same file) and waits until it listens.
    pub fn start_sshd(&self) -> Result<()> {
        self.exec(START_SSHD)
            .with_context(|| format!("starting sshd on {}", self.role()))?;
        self.wait_for_sshd()
    }

    /// Whether something listens on TCP port 22 in the host.
    pub fn sshd_is_listening(&self) -> Result<bool> {
        Ok(!self.exec("ss -Htln 'sport = :22'")?.trim().is_empty())
    }

    /// Everything sshd logged since the container started (`LogLevel VERBOSE`):
    /// `Accepted password for …`, `Failed password for …`, connections.
    pub fn auth_log(&self) -> Result<String> {
        self.exec(&format!("cat {SSHD_LOG}"))
    }

    /// The container behind the host (faults, raw exec).
    pub fn container(&self) -> &Container {
        &self.container
    }

    fn wait_for_sshd(&self) -> Result<()> {
        wait_until(
            &format!("sshd to listen on port 22 of {}", self.role()),
            SSHD_START_TIMEOUT,
            || self.sshd_is_listening(),
        )
        .map_err(
            |error| match self.exec_output(&format!("tail -n 20 {SSHD_LOG}")) {
                Ok(log) => error.context(format!("sshd log: {}", log.stdout.trim())),
                Err(_) => error,
            },
        )
    }

    fn create_accounts(&self, accounts: &[Account]) -> Result<()> {
        if accounts.is_empty() {
            return Ok(());
        }
        // User names are validated, and passed as arguments; passwords only on stdin.
        let mut argv = vec![
            "sh",
            "-c",
            "set -e; for user; do useradd --create-home --shell /bin/bash \"$user\"; done; chpasswd",
            "sh",
        ];
        argv.extend(accounts.iter().map(|account| account.user.as_str()));
        let password_lines: String = accounts
            .iter()
            .map(|account| format!("{}:{}\n", account.user, account.password))
            .collect();
        let output = self.container.exec_program(
            &argv,
            &[],
            Some(password_lines.as_bytes()),
            Duration::from_secs(60),
        )?;
        if !output.success() {
            bail!(
                "creating accounts on {} failed ({}): {}",
                self.role(),
                output.describe_exit(),
                output.stderr.trim()
            );
        }
        for parent in accounts.iter().filter(|account| account.is_parent) {
            self.grant_chpasswd(&parent.user)?;
        }
        Ok(())
    }

    /// Installs `/etc/sudoers.d/rotor-<user>` with the chpasswd line, checked by visudo
    /// before it is moved into place (sudo ignores the `.new` name meanwhile).
    fn grant_chpasswd(&self, user: &str) -> Result<()> {
        let sudoers_line = format!("{user} ALL=(root) NOPASSWD: /usr/sbin/chpasswd\n");
        let output = self.container.exec_program(
            &[
                "sh",
                "-c",
                "set -e; file=/etc/sudoers.d/rotor-$1; cat > \"$file.new\"; \
                 visudo -cf \"$file.new\"; chmod 0440 \"$file.new\"; mv \"$file.new\" \"$file\"",
                "sh",
                user,
            ],
            &[],
            Some(sudoers_line.as_bytes()),
            Duration::from_secs(30),
        )?;
        if !output.success() {
            bail!(
                "installing the sudoers line for `{user}` on {} failed ({}): {}",
                self.role(),
                output.describe_exit(),
                output.diagnostics()
            );
        }
        Ok(())
    }
}

impl Faults for Host {
    fn container(&self) -> &Container {
        &self.container
    }

    /// host-init starts sshd again; wait until it listens.
    fn after_container_start(&self) -> Result<()> {
        self.wait_for_sshd()
    }
}

/// chpasswd reads one `user:password` line per account: no newline may hide in one.
fn validate_password(password: &str) -> Result<()> {
    if password.is_empty() || password.contains(['\n', '\r', '\0']) {
        bail!("a test password must be non-empty and free of newlines and NULs");
    }
    Ok(())
}
