//! A PostgreSQL server on a site's network (from the `rotor-postgres` image, built here by
//! `tests/image/build-postgres-image.sh`), reachable only from that site, and a client
//! container beside it from which `psql` logins prove credentials, as an application of the
//! site would log in. Rotor's controller, on the core network, cannot reach either.
//!
//! The superuser's password reaches the server on stdin only; logins pass passwords in the
//! docker CLI's environment (`PGPASSWORD`), never on a command line.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::container::{Container, ContainerSpec};
use crate::docker::{DOCKER_TIMEOUT, require_docker};
use crate::image::build_script_path;
use crate::process::{ProgramOutput, run_program};
use crate::site::Site;
use crate::wait::wait_until;

/// The database every test connects to.
pub const DATABASE: &str = "app";

const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The tag of the PostgreSQL image (`rotor-postgres:<hash12>`), built on first use.
pub fn postgres_image() -> Result<String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(|message| anyhow!("no PostgreSQL test image: {message}"))
}

fn build() -> Result<String> {
    require_docker()?;
    let script = build_script_path().with_file_name("build-postgres-image.sh");
    let output = run_program(Command::new(&script), None, BUILD_TIMEOUT)
        .map_err(|error| error.context(format!("running {}", script.display())))?;
    let tag = output
        .stdout
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    if !output.success() || !tag.starts_with("rotor-postgres:") {
        let tail: Vec<&str> = output.stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{} failed ({}); it needs root, Docker and the apt mirror. Last lines:\n{}",
            script.display(),
            output.describe_exit(),
            tail.join("\n")
        );
    }
    Ok(tag)
}

/// A running PostgreSQL server and its client container, removed on drop.
pub struct Postgres {
    server: Container,
    client: Container,
    /// The server's name on the site network (Docker's DNS), as agents reach it.
    host: String,
}

/// What a `psql` login ended with.
#[derive(Debug)]
pub enum Login {
    /// The query ran; its output (`-At`: unaligned, tuples only).
    Ok(String),
    /// The server refused the login (wrong or dropped role, expired `VALID UNTIL`).
    Refused(String),
    /// Logged in, but the query failed (e.g. permission denied).
    QueryFailed(String),
}

impl Postgres {
    /// Starts the server on `site` as `<run>-<site>-<name>`, with database [`DATABASE`] and
    /// the superuser `postgres` having `superuser_password` for TCP logins.
    pub fn start(site: &Site, name: &str, superuser_password: &str) -> Result<Postgres> {
        let image = postgres_image()?;
        let server_name = format!("{}-{}-{name}", site.run_id(), site.name());
        let server = Container::start_image(
            ContainerSpec {
                role: format!("PostgreSQL {name} of site {} ({server_name})", site.name()),
                name: server_name.clone(),
                run_id: site.run_id(),
                network: site.network(),
                run_options: Vec::new(),
                command: Vec::new(),
            },
            image.clone(),
        )?;
        let client_name = format!("{server_name}-client");
        let client = Container::start_image(
            ContainerSpec {
                role: format!("psql client of site {} ({client_name})", site.name()),
                name: client_name,
                run_id: site.run_id(),
                network: site.network(),
                run_options: Vec::new(),
                command: vec!["/usr/local/sbin/postgres-init".into(), "idle".into()],
            },
            image,
        )?;
        let postgres = Postgres {
            server,
            client,
            host: server_name,
        };
        wait_until(
            "PostgreSQL accepting connections",
            Duration::from_secs(60),
            || {
                Ok(postgres
                    .server
                    .exec_output("pg_isready -q -h /run/postgresql")?
                    .success())
            },
        )
        .with_context(|| postgres.server.docker_logs().unwrap_or_default())?;
        postgres.admin_sql(&format!("CREATE DATABASE {DATABASE}"), "postgres")?;
        let escaped = superuser_password.replace('\'', "''");
        postgres.admin_sql(
            &format!("ALTER ROLE postgres PASSWORD '{escaped}'"),
            "postgres",
        )?;
        Ok(postgres)
    }

    /// The server's host name on the site network.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server container.
    pub fn server(&self) -> &Container {
        &self.server
    }

    /// The client container (on the site network).
    pub fn client(&self) -> &Container {
        &self.client
    }

    /// Runs `sql` as the superuser over the local socket (peer), in `database`; the SQL goes
    /// on stdin. Ok(output of `psql -At`) only when it succeeds.
    pub fn admin_sql(&self, sql: &str, database: &str) -> Result<String> {
        let output = self.server.exec_program(
            &[
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-h",
                "/run/postgresql",
                "-d",
                database,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
            ],
            &[],
            Some(sql.as_bytes()),
            DOCKER_TIMEOUT,
        )?;
        if !output.success() {
            bail!("admin SQL `{sql}` failed: {}", output.diagnostics());
        }
        Ok(output.stdout.trim().to_string())
    }

    /// Logs in over TCP from the site's client container as `user` with `password` and runs
    /// `sql` (one statement).
    pub fn login(&self, user: &str, password: &str, sql: &str) -> Result<Login> {
        let output = self.psql(user, password, sql)?;
        let stderr = output.stderr.trim().to_string();
        if output.success() {
            return Ok(Login::Ok(output.stdout.trim().to_string()));
        }
        if stderr.contains("password authentication failed")
            || stderr.contains("is not permitted to log in")
            || stderr.contains("does not exist")
                && stderr.contains("role")
                && stderr.contains("FATAL")
        {
            return Ok(Login::Refused(stderr));
        }
        if stderr.contains("FATAL") || stderr.contains("could not connect") {
            bail!("psql as {user} could not get to the server: {stderr}");
        }
        Ok(Login::QueryFailed(stderr))
    }

    fn psql(&self, user: &str, password: &str, sql: &str) -> Result<ProgramOutput> {
        let connection = format!(
            "host={} port=5432 dbname={DATABASE} user={user} connect_timeout=5 sslmode=disable",
            self.host
        );
        self.client.exec_program(
            &[
                "psql",
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &connection,
                "-c",
                sql,
            ],
            &[("PGPASSWORD", password)],
            None,
            DOCKER_TIMEOUT,
        )
    }

    /// Opens a session as `user` that stays open (`pg_sleep`), tagged with `tag` as its
    /// application name, in the background; its output goes to `/tmp/<tag>.log` in the
    /// client container. Waits until the server shows it.
    pub fn open_session(&self, user: &str, password: &str, tag: &str) -> Result<()> {
        let script = format!(
            "psql -X -At -d 'host={} port=5432 dbname={DATABASE} user={user} application_name={tag} sslmode=disable' -c 'SELECT pg_sleep(600)' > /tmp/{tag}.log 2>&1; echo \"exit $?\" >> /tmp/{tag}.log",
            self.host
        );
        self.client
            .exec_detached(&script, &[("PGPASSWORD", password)])?;
        wait_until(
            "the session to show in pg_stat_activity",
            Duration::from_secs(20),
            || Ok(self.sessions_tagged(tag)? == 1),
        )
    }

    /// Sessions whose application name is `tag`.
    pub fn sessions_tagged(&self, tag: &str) -> Result<u32> {
        let count = self.admin_sql(
            &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{tag}'"),
            "postgres",
        )?;
        count
            .parse()
            .with_context(|| format!("pg_stat_activity count `{count}`"))
    }

    /// What the background session of `tag` printed (ends with `exit N` once it ended).
    pub fn session_log(&self, tag: &str) -> Result<String> {
        self.client
            .exec(&format!("cat /tmp/{tag}.log 2>/dev/null || true"))
    }

    /// Whether a role called `name` exists.
    pub fn role_exists(&self, name: &str) -> Result<bool> {
        let escaped = name.replace('\'', "''");
        Ok(self.admin_sql(
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{escaped}'"),
            "postgres",
        )? == "1")
    }

    /// The role's `VALID UNTIL` as Unix seconds, if set.
    pub fn valid_until_unix(&self, name: &str) -> Result<Option<i64>> {
        let escaped = name.replace('\'', "''");
        let text = self.admin_sql(
            &format!(
                "SELECT coalesce(extract(epoch FROM rolvaliduntil)::bigint::text, '') FROM pg_roles WHERE rolname = '{escaped}'"
            ),
            "postgres",
        )?;
        if text.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            text.parse().with_context(|| format!("epoch `{text}`"))?,
        ))
    }

    /// Roles whose names start with `prefix`.
    pub fn roles_starting_with(&self, prefix: &str) -> Result<Vec<String>> {
        let escaped = prefix.replace('\'', "''");
        let text = self.admin_sql(
            &format!(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{escaped}') ORDER BY 1"
            ),
            "postgres",
        )?;
        Ok(text
            .lines()
            .map(String::from)
            .filter(|line| !line.is_empty())
            .collect())
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Postgres")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// The query's output, when the login and the query succeeded.
    pub fn output(&self) -> Option<&str> {
        match self {
            Login::Ok(output) => Some(output),
            _ => None,
        }
    }
}
