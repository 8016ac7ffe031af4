//! `rotor-bench-api creds-reads [-seconds N] [-connections N] [-runs N] [-http 1|2]`: the
//! controller's read path under load (issue 7, benchmark 3). Starts a `rotor server -dev`
//! (the release build when there is one), creates one host with 100 accounts (no agent
//! needed: `creds` is answered from the store), then reads `os/hosts/bench/accounts/*/creds`
//! over HTTPS with keep-alive from N concurrent connections for N seconds, `-runs` times
//! without and then as often with a file audit device. HTTP/1.1 by default (N connections,
//! as curl and hvac's `requests` speak); `-http=2` multiplexes the N clients' requests over
//! one HTTP/2 connection instead.
//! Prints reads per second and latency percentiles, and writes them with the machine's
//! description into `docs/benchmarks.md` (its own section; other sections are kept).
//!
//! `rotor-bench-api controller-scale [-agents=1000] [-hosts=10000] [-accounts=100]`: the
//! controller at scale (issue 7, benchmark 2). A config-mode store is bulk-loaded with
//! hosts × accounts (one parent and its children per host), the server starts on it, the
//! given number of simulated agents enroll and connect over QUIC on loopback — the real
//! agent link code, with a job handler that answers at once — and every host is rotated
//! (`os/hosts/:host/rotate`, 64 in flight). Reports committed rotations per second, the
//! host-rotation latency, the API's read latency idle and while rotating, the controller's
//! peak RSS and the redb file size. With `-due=N [-due-after=90]` nothing is asked through
//! the API: child `app1` of N hosts falls due at the same second, the scheduler rotates
//! them, and the report (its own section) says how long that took and what it did to the
//! API's latency.
//!
//! `rotor-bench-api logins [-seconds=10] [-connections=8]`: auth method logins (issue 20).
//! The password hash's own cost first (argon2id as the controller runs it, hashing and
//! verifying in this process), then AppRole logins (`auth/approle/login`, one unlimited
//! secret ID) and userpass logins (`auth/userpass/login/:user`) against `rotor server -dev`,
//! N concurrent connections for N seconds each. Every login issues and stores a token.
//!
//! Owns the load generator, the simulator and the report. Must not assert targets: it
//! measures and says.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rotor_agent::handlers::JobHandler;
use rotor_common::secret::Password;
use rotor_common::wire::os::{AccountResult, OsJob, OsOutcome};
use rotor_common::wire::{JobKind, JobOutcome};
use rotor_controller::engines::os::model::{self, AccountRecord, Connection, HostRecord};
use rotor_controller::store::{Sealer, Store};
use rotor_tests::bench::report::{machine, write_section};
use rotor_tests::bench::rss;
use serde_json::{Value, json};

/// A syntactically valid Ed25519 public key: the host is never contacted.
const PINNED_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILOLDeTfMqC3kdA0ILoUJDJ/btSbdY4qWKSA0dhYssk+";
const ACCOUNTS: usize = 100;
const SECTION: &str = "creds-reads";

struct Server {
    child: Child,
    address: String,
    token: String,
    ca_file: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The `rotor` binary to measure: `ROTOR_BIN`, else release, else debug.
fn rotor_binary() -> Result<(PathBuf, &'static str)> {
    if let Some(path) = std::env::var_os("ROTOR_BIN") {
        return Ok((PathBuf::from(path), "as given by ROTOR_BIN"));
    }
    for profile in ["release", "debug"] {
        let path = target_dir().join(profile).join("rotor");
        if path.exists() {
            return Ok((path, profile));
        }
    }
    bail!("no rotor binary: run `cargo build --release -p rotor-controller` first")
}

fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `rotor` with `args` (a server), its stdout in a file, and waits up to `wait` for
/// its address lines; the token is the one it prints (`-dev`) or `token`.
fn spawn_server(
    binary: &Path,
    args: &[&str],
    token: Option<&str>,
    wait: Duration,
) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    let child = Command::new(binary)
        .args(args)
        .env("TMPDIR", dir.path())
        .env("ROTOR_LOG", "warn")
        .stdout(std::fs::File::create(&log)?)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting rotor {}", args.join(" ")))?;
    let deadline = Instant::now() + wait;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let export = |name: &str| {
            text.lines().find_map(|line| {
                line.strip_prefix(&format!("export {name}='"))
                    .and_then(|rest| rest.strip_suffix('\''))
                    .map(String::from)
            })
        };
        let token = token.map(String::from).or_else(|| export("ROTOR_TOKEN"));
        if let (Some(address), Some(token), Some(ca_file), true) = (
            export("ROTOR_ADDR"),
            token,
            export("ROTOR_CACERT"),
            text.contains("agents: "),
        ) {
            return Ok(Server {
                child,
                address,
                token,
                ca_file,
                _dir: dir,
            });
        }
        if Instant::now() > deadline {
            bail!("the server printed no address lines in {wait:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_server(binary: &Path) -> Result<Server> {
    let agents = format!("-dev-agent-address=127.0.0.1:{}", free_udp_port()?);
    spawn_server(
        binary,
        &["server", "-dev", "-dev-listen-address=127.0.0.1:0", &agents],
        None,
        Duration::from_secs(20),
    )
}

fn client(server: &Server) -> Result<reqwest::Client> {
    Ok(client_builder(server)?.build()?)
}

fn client_builder(server: &Server) -> Result<reqwest::ClientBuilder> {
    let pem = std::fs::read(&server.ca_file)?;
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem)?])
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(10)))
}

async fn call(
    http: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut request = http
        .request(method, format!("{}/v1/{path}", server.address))
        .header("X-Vault-Token", &server.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{path}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn setup(http: &reqwest::Client, server: &Server) -> Result<()> {
    call(
        http,
        server,
        reqwest::Method::POST,
        "os/hosts/bench",
        Some(json!({"address": "127.0.0.1", "site": "bench", "ssh_host_key": PINNED_KEY})),
    )
    .await?;
    for index in 0..ACCOUNTS {
        call(
            http,
            server,
            reqwest::Method::POST,
            &format!("os/hosts/bench/accounts/app{index}"),
            Some(json!({
                "username": format!("app{index}"),
                "password": format!("Initial-{index}-{}", rand::random::<u64>()),
                "verify_connection": false,
            })),
        )
        .await?;
    }
    Ok(())
}

struct Run {
    reads: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.reads as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_ms(&self, p: f64) -> f64 {
        ms(&self.latencies_us, p)
    }
}

/// The `p`-th percentile of sorted microseconds, in milliseconds.
fn ms(sorted_us: &[u32], p: f64) -> f64 {
    percentile(sorted_us, p) as f64 / 1000.0
}

/// The `p`-th percentile (0-100) of sorted `values`, nearest rank.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn load(
    http: &reqwest::Client,
    server: Arc<Server>,
    connections: usize,
    duration: Duration,
) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let http = http.clone();
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(200_000);
            let mut errors = 0usize;
            let mut index = worker;
            while Instant::now() < deadline {
                let url = format!(
                    "{}/v1/os/hosts/bench/accounts/app{}/creds",
                    server.address,
                    index % ACCOUNTS
                );
                index += connections;
                let sent = Instant::now();
                let ok = match http
                    .get(&url)
                    .header("X-Vault-Token", &server.token)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((mut latencies, failed)) = task.await {
            latencies_us.append(&mut latencies);
            errors += failed;
        }
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Run {
        reads: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

/// Newlines in the file at `path`, read in blocks (an audit log of three runs is gigabytes).
fn count_lines(path: &Path) -> Result<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("opening the audit file {}", path.display()))?;
    let mut block = vec![0u8; 1 << 20];
    let mut lines = 0;
    loop {
        let read = file.read(&mut block)?;
        if read == 0 {
            return Ok(lines);
        }
        lines += block[..read].iter().filter(|byte| **byte == b'\n').count();
    }
}

fn flag(args: &[String], name: &str, default: u64) -> Result<u64> {
    let prefix = format!("-{name}=");
    match args.iter().find_map(|arg| {
        arg.trim_start_matches('-')
            .strip_prefix(&prefix[1..])
            .map(String::from)
    }) {
        None => Ok(default),
        Some(value) => value
            .parse()
            .with_context(|| format!("-{name}: '{value}' is not a number")),
    }
}

fn creds_reads(args: &[String]) -> Result<()> {
    let seconds = flag(args, "seconds", 10)?;
    let connections = flag(args, "connections", 32)? as usize;
    let runs = flag(args, "runs", 3)?.max(1);
    let http_version = flag(args, "http", 1)?;
    if !matches!(http_version, 1 | 2) {
        bail!("-http: {http_version} is not 1 or 2");
    }
    let (binary, profile) = rotor_binary()?;
    let server = Arc::new(start_server(&binary)?);
    let pid = server.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let audit_file = tempfile::NamedTempFile::new()?;
    let (plain, audited) = runtime.block_on(async {
        let builder = client_builder(&server)?;
        let http = if http_version == 1 {
            builder.http1_only().build()?
        } else {
            builder.build()?
        };
        setup(&http, &server).await?;
        // Warm the connections and caches.
        load(&http, server.clone(), connections, Duration::from_secs(2)).await;
        let runs_of_load = async || {
            let mut done = Vec::new();
            for _ in 0..runs {
                let run = load(
                    &http,
                    server.clone(),
                    connections,
                    Duration::from_secs(seconds),
                )
                .await;
                done.push(run);
            }
            done
        };
        let plain = runs_of_load().await;
        call(
            &http,
            &server,
            reqwest::Method::POST,
            "sys/audit/bench",
            Some(json!({"type": "file", "options": {"file_path": audit_file.path()}})),
        )
        .await?;
        let audited = runs_of_load().await;
        anyhow::Ok((plain, audited))
    })?;
    let peak_rss = rss::status_kib(pid, "VmHWM").unwrap_or(0);
    let audit_lines = count_lines(audit_file.path())?;
    let audited_reads: usize = audited.iter().map(|run| run.reads).sum();
    let row = |name: &str, run: &Run| {
        format!(
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            run.reads,
            run.per_second(),
            run.percentile_ms(50.0),
            run.percentile_ms(99.0),
            run.percentile_ms(99.9),
            run.errors
        )
    };
    let mut rows = Vec::new();
    for (name, set) in [("no audit device", &plain), ("file audit device", &audited)] {
        for (index, run) in set.iter().enumerate() {
            rows.push(row(&format!("{name}, run {}", index + 1), run));
        }
    }
    let median = |set: &[Run]| {
        let mut rates: Vec<f64> = set.iter().map(Run::per_second).collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let worst_p99 = |set: &[Run]| {
        set.iter()
            .map(|run| run.percentile_ms(99.0))
            .fold(0.0, f64::max)
    };
    let protocol = if http_version == 1 {
        format!("HTTP/1.1, {connections} keep-alive connections")
    } else {
        format!("HTTP/2, {connections} concurrent streams on one connection")
    };
    let body = format!(
        "## Credential reads (`creds` over HTTPS, keep-alive)\n\n\
         Command: `cargo build --release -p rotor-controller && cargo run --release -p rotor-tests --bin rotor-bench-api -- creds-reads -seconds={seconds} -connections={connections} -runs={runs} -http={http_version}`\n\n\
         Machine: {}. Server: `rotor server -dev` ({profile} build), one host with {ACCOUNTS} accounts; \
         the load generator (reqwest, {protocol}, same machine, sharing its 2 cores) reads them round-robin, \
         {runs} runs of {seconds} s without and then with a file audit device, after a 2 s warm-up.\n\n\
         | run | reads | reads/s | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---|---|---|---|\n{}\n\n\
         Median reads/s: {:.0} without an audit device, {:.0} with one (worst p99 {:.2} ms and {:.2} ms). \
         The audit runs wrote {audit_lines} audit lines for {audited_reads} reads (a request and a response line per read). \
         Controller peak RSS: {:.1} MiB. \
         Target (issue 7): ≥ 25,000 reads/s with p99 < 5 ms on this machine, load generator included.\n",
        machine(),
        rows.join("\n"),
        median(&plain),
        median(&audited),
        worst_p99(&plain),
        worst_p99(&audited),
        peak_rss as f64 / 1024.0,
    );
    println!("{body}");
    let path = write_section(SECTION, &body)?;
    println!("written to {}", path.display());
    Ok(())
}

/// POSTs of `body` to `path` from `connections` workers for `duration`, without a token
/// (a login needs none).
async fn login_load(
    http: &reqwest::Client,
    server: Arc<Server>,
    connections: usize,
    duration: Duration,
    path: &str,
    body: Value,
) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let url = format!("{}/v1/{path}", server.address);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let http = http.clone();
        let url = url.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let ok = match http.post(&url).json(&body).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((mut latencies, failed)) = task.await {
            latencies_us.append(&mut latencies);
            errors += failed;
        }
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Run {
        reads: latencies_us.len(),
        errors,
        elapsed,
        latencies_us,
    }
}

/// Milliseconds per call of `work`, median of `samples` calls, and the calls per second of
/// one core that makes.
fn cost_ms(samples: usize, mut work: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn logins(args: &[String]) -> Result<()> {
    use rotor_controller::auth::userpass::password;
    let seconds = flag(args, "seconds", 10)?;
    let connections = flag(args, "connections", 8)? as usize;
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let stored = password::hash("bench-Password-1").map_err(|error| anyhow::anyhow!(error))?;
    let hash_ms = cost_ms(21, || {
        let _ = password::hash("bench-Password-1");
    });
    let verify_ms = cost_ms(21, || {
        let _ = password::verify("bench-Password-1", &stored);
    });
    let (binary, profile) = rotor_binary()?;
    let server = Arc::new(start_server(&binary)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (approle, userpass) = runtime.block_on(async {
        let http = client_builder(&server)?.http1_only().build()?;
        let post = reqwest::Method::POST;
        for method in ["approle", "userpass"] {
            call(
                &http,
                &server,
                post.clone(),
                &format!("sys/auth/{method}"),
                Some(json!({"type": method})),
            )
            .await?;
        }
        call(
            &http,
            &server,
            post.clone(),
            "auth/approle/role/bench",
            Some(json!({"token_policies": "default", "token_ttl": "10m"})),
        )
        .await?;
        let role_id = call(
            &http,
            &server,
            reqwest::Method::GET,
            "auth/approle/role/bench/role-id",
            None,
        )
        .await?["data"]["role_id"]
            .as_str()
            .context("role_id")?
            .to_string();
        let secret_id = call(
            &http,
            &server,
            post.clone(),
            "auth/approle/role/bench/secret-id",
            Some(json!({})),
        )
        .await?["data"]["secret_id"]
            .as_str()
            .context("secret_id")?
            .to_string();
        call(
            &http,
            &server,
            post.clone(),
            "auth/userpass/users/bench",
            Some(json!({"password": "bench-Password-1", "token_ttl": "10m"})),
        )
        .await?;
        let approle_body = json!({"role_id": role_id, "secret_id": secret_id});
        let userpass_body = json!({"password": "bench-Password-1"});
        // Warm up both paths.
        login_load(
            &http,
            server.clone(),
            connections,
            Duration::from_secs(1),
            "auth/approle/login",
            approle_body.clone(),
        )
        .await;
        login_load(
            &http,
            server.clone(),
            connections,
            Duration::from_secs(1),
            "auth/userpass/login/bench",
            userpass_body.clone(),
        )
        .await;
        let approle = login_load(
            &http,
            server.clone(),
            connections,
            Duration::from_secs(seconds),
            "auth/approle/login",
            approle_body,
        )
        .await;
        let userpass = login_load(
            &http,
            server.clone(),
            connections,
            Duration::from_secs(seconds),
            "auth/userpass/login/bench",
            userpass_body,
        )
        .await;
        anyhow::Ok((approle, userpass))
    })?;
    let row = |name: &str, run: &Run| {
        format!(
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {} |",
            run.reads,
            run.per_second(),
            run.percentile_ms(50.0),
            run.percentile_ms(99.0),
            run.errors
        )
    };
    let body = format!(
        "## Auth method logins (AppRole, userpass)\n\n\
         Command: `cargo build --release -p rotor-controller && cargo run --release -p rotor-tests --bin rotor-bench-api -- logins -seconds={seconds} -connections={connections}`\n\n\
         Machine: {}. Server: `rotor server -dev` ({profile} build); {connections} keep-alive HTTP/1.1 connections \
         (reqwest, same machine, sharing its cores) log in for {seconds} s each after a 1 s warm-up; every login \
         issues a token (stored as a hash, one durable write).\n\n\
         The password hash's own cost ({build} build, argon2id m=19 MiB t=2 p=1, median of 21 in one thread): \
         hashing {hash_ms:.1} ms, verifying {verify_ms:.1} ms, so one core verifies at most {:.0} passwords/s.\n\n\
         | login | logins | logins/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n{}\n{}\n\n\
         A userpass login is bounded by the hash (the controller's cores verify in parallel on the blocking pool); \
         an AppRole login costs SHA-256 lookups, one write transaction that checks and spends the secret ID, \
         and the token's durable write. Other engineers' builds shared the machine (see the load average).\n",
        machine(),
        1000.0 / verify_ms,
        row("AppRole (`auth/approle/login`)", &approle),
        row("userpass (`auth/userpass/login/:user`)", &userpass),
    );
    println!("{body}");
    let path = write_section("auth-logins", &body)?;
    println!("written to {}", path.display());
    Ok(())
}

fn instant_outcome(kind: JobKind) -> JobOutcome {
    match kind {
        JobKind::Echo { payload } => JobOutcome::Echo { payload },
        JobKind::Os(job) => JobOutcome::Os(match job {
            OsJob::VerifyLogin { .. } => OsOutcome::Login {
                accepted: Some(0),
                host_key: None,
            },
            OsJob::RotateWithParent { changes, .. } | OsJob::RotateLocal { changes, .. } => {
                OsOutcome::Rotated {
                    accounts: changes
                        .into_iter()
                        .map(|change| (change.username, AccountResult::Changed))
                        .collect(),
                    host_key: None,
                }
            }
            OsJob::RotateSelf { username, .. } => OsOutcome::Rotated {
                accounts: vec![(username, AccountResult::Changed)],
                host_key: None,
            },
        }),
        JobKind::Database(job) => {
            use rotor_common::wire::database::{DbJob, DbOutcome};
            JobOutcome::Database(match job {
                DbJob::Verify { .. } => DbOutcome::Verified {
                    server_version: "simulated".into(),
                },
                DbJob::CreateRole { .. } => DbOutcome::Created,
                DbJob::RoleExists { .. } => DbOutcome::RoleExists { exists: false },
                DbJob::RevokeRole { .. } => DbOutcome::Revoked {
                    existed: true,
                    sessions_terminated: 0,
                },
                DbJob::RenewRole { .. } => DbOutcome::Renewed,
                DbJob::SetPassword { .. } => DbOutcome::PasswordSet,
                DbJob::RehearseCreation { .. } => DbOutcome::CreationRehearsed,
            })
        }
    }
}

fn account(host: &str, name: &str, parent: Option<&str>) -> AccountRecord {
    AccountRecord {
        parent_ref: parent.map(String::from),
        verify_connection: false,
        disable_automated_rotation: true,
        created_unix: 0,
        ..AccountRecord::new(host, name)
    }
}

/// A scheduled rotation period far longer than any run: a due account rotates once.
const DUE_PERIOD_SECS: u64 = 30 * 24 * 3600;

/// Writes `hosts` hosts of `per_host` accounts (`mgmt` and its children) into the store. With
/// `due = Some((n, at))`, child `app1` of the first `n` hosts falls due (its rotation period
/// elapses) at Unix time `at`, for the scheduler to rotate.
fn bulk_load(
    config_dir: &Path,
    hosts: usize,
    per_host: usize,
    due: Option<(usize, u64)>,
) -> Result<Duration> {
    let started = Instant::now();
    let store = Store::open(
        &config_dir.join("rotor.redb"),
        Sealer::load(&config_dir.join("seal.key")).context("loading the seal key")?,
    )?;
    for index in 0..hosts {
        let name = format!("h{index:05}");
        let host = HostRecord {
            name: name.clone(),
            address: format!(
                "10.{}.{}.{}",
                index / 65536,
                (index / 256) % 256,
                index % 256
            ),
            port: 22,
            ssh_host_key: Some(PINNED_KEY.into()),
            trusted_host_key: None,
            site: Some("sim".into()),
            connection: Connection::Ssh,
            agent: None,
            chpasswd_command: "/usr/sbin/chpasswd".into(),
            passwd_prompts_json: None,
            created_unix: 0,
            password_policy: None,
        };
        let mut accounts = vec![(
            account(&name, "mgmt", None),
            Password::new(format!("Mgmt-{index}-initial")),
        )];
        for child in 1..per_host {
            let mut record = account(&name, &format!("app{child}"), Some("mgmt"));
            if let Some((count, at)) = due
                && child == 1
                && index < count
            {
                record.disable_automated_rotation = false;
                record.rotation_period_secs = Some(DUE_PERIOD_SECS);
                record.last_vault_rotation_unix = Some(at.saturating_sub(DUE_PERIOD_SECS));
            }
            accounts.push((record, Password::new(format!("App{child}-{index}-initial"))));
        }
        model::load_host_with_accounts(&store, "os/", &host, accounts)?;
    }
    Ok(started.elapsed())
}

fn init_config() -> Result<(tempfile::TempDir, PathBuf, String, String)> {
    let dir = tempfile::tempdir()?;
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let agent_port = free_udp_port()?;
    let config = format!(
        "storage_path = \"{d}/rotor.redb\"\nseal_key_file = \"{d}/seal.key\"\nca_cert_file = \"{d}/ca.pem\"\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{api_port}\"\n}}\nagent_listener {{\n  address = \"127.0.0.1:{agent_port}\"\n}}\n",
        d = dir.path().display()
    );
    let path = dir.path().join("rotor.hcl");
    std::fs::write(&path, config)?;
    let (binary, _) = rotor_binary()?;
    let output = Command::new(&binary)
        .args(["operator", "init", "-config"])
        .arg(&path)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "operator init failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let token = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Root Token: "))
        .context("operator init printed no root token")?
        .to_string();
    Ok((dir, path, token, format!("127.0.0.1:{agent_port}")))
}

fn start_config_server(binary: &Path, config: &Path, token: &str) -> Result<Server> {
    let config = config.to_string_lossy();
    spawn_server(
        binary,
        &["server", "-config", &config],
        Some(token),
        Duration::from_secs(120),
    )
}

/// Reads one gauge from `sys/metrics?format=prometheus`.
async fn gauge(http: &reqwest::Client, server: &Server, line_prefix: &str) -> Result<f64> {
    let text = http
        .get(format!(
            "{}/v1/sys/metrics?format=prometheus",
            server.address
        ))
        .header("X-Vault-Token", &server.token)
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|line| line.starts_with(line_prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0))
}

fn controller_scale(args: &[String]) -> Result<()> {
    let agents = flag(args, "agents", 1000)? as usize;
    let hosts = flag(args, "hosts", 10_000)? as usize;
    let per_host = flag(args, "accounts", 100)?.max(1) as usize;
    let in_flight = flag(args, "parallel", 64)? as usize;
    let (binary, profile) = rotor_binary()?;
    let (dir, config, token, agent_address) = init_config()?;
    println!("loading {hosts} hosts × {per_host} accounts into the store…");
    let due_count = flag(args, "due", 0)? as usize;
    let due_after = Duration::from_secs(flag(args, "due-after", 90)?);
    if due_count > hosts {
        bail!("-due={due_count} is more than -hosts={hosts} (one due account per host)");
    }
    let due_at = std::time::SystemTime::now() + due_after;
    let due_unix = due_at.duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let load_time = bulk_load(
        dir.path(),
        hosts,
        per_host,
        (due_count > 0).then_some((due_count, due_unix)),
    )?;
    println!("loaded in {load_time:?}");
    let server = Arc::new(start_config_server(&binary, &config, &token)?);
    let pid = server.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let agent_dirs = tempfile::tempdir()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (enroll_time, report) = runtime.block_on(async {
        let http = client(&server)?;
        // Enroll the simulated agents (the real enrollment, 25 at a time).
        let enroll_started = Instant::now();
        let mut enrolled = Vec::new();
        for chunk in (0..agents).collect::<Vec<_>>().chunks(25) {
            let mut pending = Vec::new();
            for index in chunk {
                let answer = call(
                    &http,
                    &server,
                    reqwest::Method::POST,
                    "agents/enroll",
                    Some(json!({"site": "sim"})),
                )
                .await?;
                let token = answer["data"]["token"]
                    .as_str()
                    .context("token")?
                    .to_string();
                let fingerprint = answer["data"]["ca_fingerprint"]
                    .as_str()
                    .context("fingerprint")?
                    .to_string();
                let dir = agent_dirs.path().join(format!("a{index}"));
                let address = agent_address.clone();
                pending.push(tokio::spawn(async move {
                    rotor_agent::enroll::enroll(
                        &address,
                        Password::new(token),
                        &fingerprint,
                        &dir,
                        false,
                    )
                    .await
                    .map(|_| dir)
                    .map_err(|error| anyhow::anyhow!("enrolling: {error}"))
                }));
            }
            for task in pending {
                enrolled.push(task.await??);
            }
        }
        let enroll_time = enroll_started.elapsed();
        let handler: JobHandler = Arc::new(|kind| Box::pin(async move { instant_outcome(kind) }));
        for dir in &enrolled {
            let dir = dir.clone();
            let stopped = stopped.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = rotor_agent::link::run_with(&dir, stopped, handler).await;
            });
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let connected = gauge(&http, &server, "rotor_agents_connected{site=\"sim\"}").await?;
            if connected as usize >= agents {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {connected} of {agents} simulated agents connected in 300 s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if due_count > 0 {
            println!(
                "{agents} agents enrolled and connected; {due_count} accounts fall due at once in {:.0} s…",
                due_at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
                    .as_secs_f64()
            );
            let scheduled = scheduled_phase(&http, &server, due_count, due_at).await?;
            let _ = stop.send(true);
            return anyhow::Ok((enroll_time, Phase::Scheduled(scheduled)));
        }
        println!("{agents} agents enrolled and connected; rotating {hosts} hosts…");
        // The API's latency while idle, then while the fleet rotates: one read at a time,
        // every 20 ms, of a host record (auth, ACL, store, JSON: the whole path).
        let idle = probe_api(&http, &server, Duration::from_secs(3), None).await?;
        let busy_probe = BackgroundProbe::start(&http, &server);
        let limit = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for index in 0..hosts {
            let permit = limit.clone().acquire_owned().await?;
            let http = http.clone();
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let answer = call(
                    &http,
                    &server,
                    reqwest::Method::POST,
                    &format!("os/hosts/h{index:05}/rotate"),
                    None,
                )
                .await;
                drop(permit);
                let committed = answer
                    .ok()
                    .and_then(|answer| answer["data"]["accounts"].as_object().cloned())
                    .map_or(0, |accounts| {
                        accounts
                            .values()
                            .filter(|account| account["version"].as_u64().is_some_and(|v| v > 1))
                            .count()
                    });
                (sent.elapsed(), committed)
            }));
        }
        let mut latencies = Vec::new();
        let mut committed = 0usize;
        for task in tasks {
            let (latency, count) = task.await?;
            latencies.push(latency.as_micros().min(u32::MAX as u128) as u32);
            committed += count;
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        let busy = busy_probe.finish().await?;
        let _ = stop.send(true);
        anyhow::Ok((
            enroll_time,
            Phase::Api(ApiRun {
                elapsed,
                committed,
                latencies,
                idle,
                busy,
            }),
        ))
    })?;
    let peak_rss = rss::status_kib(pid, "VmHWM").unwrap_or(0);
    let redb_size = std::fs::metadata(dir.path().join("rotor.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let ApiRun {
        elapsed,
        committed,
        latencies,
        idle,
        busy,
    } = match report {
        Phase::Api(run) => run,
        Phase::Scheduled(scheduled) => {
            let body = format!(
                "## Controller at scale: {due_count} rotations due at once (the scheduler)\n\n\
                 Command: `rotor-bench-api controller-scale -agents={agents} -hosts={hosts} -accounts={per_host} -due={due_count}`\n\n\
                 Machine: {}. Server: `rotor server -config` ({profile} build) on a redb file loaded with {hosts} hosts × {per_host} accounts \
                 in {:.1} s; {agents} simulated agents (jobs answered at once) enrolled in {:.1} s. Child `app1` of {due_count} hosts \
                 had its rotation period elapse at the same second; nothing else asked for a rotation. Meanwhile one client read a \
                 host record every 20 ms.\n\n\
                 | figure | value |\n|---|---|\n\
                 | due rotations committed | {} of {due_count} |\n\
                 | from the due second to the last commit | {:.1} s |\n\
                 | API read latency p50 / p99, idle ({} reads) | {:.1} ms / {:.1} ms |\n\
                 | API read latency p50 / p99, while the due rotations ran ({} reads) | {:.1} ms / {:.1} ms |\n\
                 | controller peak RSS | {:.0} MiB |\n\n\
                 Requirement (issue 7): many due rotations at once must not spike memory or starve the API.\n",
                machine(),
                load_time.as_secs_f64(),
                enroll_time.as_secs_f64(),
                scheduled.committed,
                scheduled.elapsed.as_secs_f64(),
                scheduled.idle.len(),
                ms(&scheduled.idle, 50.0),
                ms(&scheduled.idle, 99.0),
                scheduled.busy.len(),
                ms(&scheduled.busy, 50.0),
                ms(&scheduled.busy, 99.0),
                peak_rss as f64 / 1024.0,
            );
            println!("{body}");
            let path = write_section("controller-scale-due", &body)?;
            println!("written to {}", path.display());
            drop(runtime);
            return Ok(());
        }
    };
    let total = hosts * per_host;
    let body = format!(
        "## Controller at scale (simulated agents over QUIC, bulk-loaded store)\n\n\
         Command: `cargo build --release -p rotor-controller -p rotor-tests --bin rotor --bin rotor-bench-api && $CARGO_TARGET_DIR/release/rotor-bench-api controller-scale -agents={agents} -hosts={hosts} -accounts={per_host}`\n\n\
         Machine: {}. Server: `rotor server -config` ({profile} build) on a redb file loaded with {hosts} hosts × {per_host} accounts \
         ({total} accounts, one parent per host) in {:.1} s. {agents} simulated agents (the real agent link code in one process, \
         jobs answered at once) enrolled in {:.1} s and connected over QUIC on loopback. Every host was rotated through \
         `os/hosts/:host/rotate`, {in_flight} at a time; each is one job for the children (through the parent) and one for the parent.\n\n\
         | figure | value |\n|---|---|\n\
         | accounts rotated and committed | {committed} of {total} |\n\
         | wall time | {:.1} s |\n\
         | committed rotations per second | {:.0} |\n\
         | host rotation latency p50 / p99 | {:.1} ms / {:.1} ms |\n\
         | API read latency p50 / p99, idle ({} reads) | {:.1} ms / {:.1} ms |\n\
         | API read latency p50 / p99, while rotating ({} reads) | {:.1} ms / {:.1} ms |\n\
         | controller peak RSS | {:.0} MiB |\n\
         | redb file size after the run | {:.0} MiB |\n\n\
         Targets (issue 7): ≥ 10,000 committed rotations/s, RSS < 1 GiB, API latency flat while the fleet rotates.\n",
        machine(),
        load_time.as_secs_f64(),
        enroll_time.as_secs_f64(),
        elapsed.as_secs_f64(),
        committed as f64 / elapsed.as_secs_f64(),
        ms(&latencies, 50.0),
        ms(&latencies, 99.0),
        idle.len(),
        ms(&idle, 50.0),
        ms(&idle, 99.0),
        busy.len(),
        ms(&busy, 50.0),
        ms(&busy, 99.0),
        peak_rss as f64 / 1024.0,
        redb_size as f64 / 1048576.0,
    );
    println!("{body}");
    let path = write_section("controller-scale", &body)?;
    println!("written to {}", path.display());
    drop(runtime);
    Ok(())
}

/// What a controller-scale run measured: rotations asked through the API, or left to the
/// scheduler.
enum Phase {
    Api(ApiRun),
    Scheduled(Scheduled),
}

/// Every host rotated through the API: how long, how many committed, the host rotations'
/// latencies and the API's read latencies idle and while rotating (µs, sorted).
struct ApiRun {
    elapsed: Duration,
    committed: usize,
    latencies: Vec<u32>,
    idle: Vec<u32>,
    busy: Vec<u32>,
}

struct Scheduled {
    committed: u64,
    elapsed: Duration,
    idle: Vec<u32>,
    busy: Vec<u32>,
}

/// Probes the idle API until `due_at`, then keeps probing while the scheduler rotates the
/// `due_count` due accounts (child `app1` of hosts 0..due_count); done when every one of
/// them has version 2. Their versions are read a few at a time, not through a metrics scrape
/// (which streams every account).
async fn scheduled_phase(
    http: &reqwest::Client,
    server: &Arc<Server>,
    due_count: usize,
    due_at: std::time::SystemTime,
) -> Result<Scheduled> {
    let Ok(until_due) = due_at.duration_since(std::time::SystemTime::now()) else {
        bail!("the agents connected after the accounts fell due: raise -due-after");
    };
    let idle = probe_api(http, server, until_due, None).await?;
    let busy_probe = BackgroundProbe::start(http, server);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1800);
    // Hosts not yet seen rotated; the scheduler goes through them in name order.
    let mut next = 0usize;
    while next < due_count {
        let path = format!("os/hosts/h{next:05}/accounts/app1");
        let answer = call(http, server, reqwest::Method::GET, &path, None).await?;
        if answer["data"]["current_version"]
            .as_u64()
            .is_some_and(|v| v >= 2)
        {
            next += 1;
            continue;
        }
        if Instant::now() > deadline {
            bail!("{next} of {due_count} due rotations committed after 1800 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let busy = busy_probe.finish().await?;
    let committed =
        gauge(http, server, "rotor_rotations_total{outcome=\"committed\"}").await? as u64;
    Ok(Scheduled {
        committed,
        elapsed,
        idle,
        busy,
    })
}

/// Reads a host record every 20 ms for `length` or until `stop` turns true; answers the
/// latencies in microseconds, sorted. A failed read fails the benchmark.
async fn probe_api(
    http: &reqwest::Client,
    server: &Server,
    length: Duration,
    mut stop: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<Vec<u32>> {
    let until = Instant::now() + length;
    let mut latencies = Vec::new();
    while Instant::now() < until && !stop.as_ref().is_some_and(|stop| *stop.borrow()) {
        let sent = Instant::now();
        call(http, server, reqwest::Method::GET, "os/hosts/h00000", None)
            .await
            .context("API probe while rotating")?;
        latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let pause = tokio::time::sleep(Duration::from_millis(20));
        match stop.as_mut() {
            Some(stop) => {
                tokio::select! {
                    () = pause => {}
                    _ = stop.changed() => {}
                }
            }
            None => pause.await,
        }
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// [`probe_api`] running in the background until [`BackgroundProbe::finish`].
struct BackgroundProbe {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<Vec<u32>>>,
}

impl BackgroundProbe {
    fn start(http: &reqwest::Client, server: &Arc<Server>) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let http = http.clone();
        let server = server.clone();
        let task = tokio::spawn(async move {
            probe_api(&http, &server, Duration::from_secs(3600), Some(stopped)).await
        });
        Self { stop, task }
    }

    /// Stops the probe; answers its latencies (µs, sorted).
    async fn finish(self) -> Result<Vec<u32>> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("creds-reads") => creds_reads(&args[1..]),
        Some("controller-scale") => controller_scale(&args[1..]),
        Some("logins") => logins(&args[1..]),
        _ => Err(anyhow::anyhow!(
            "usage: rotor-bench-api creds-reads [-seconds=10] [-connections=32]\n       rotor-bench-api controller-scale [-agents=1000] [-hosts=10000] [-accounts=100] [-parallel=64] [-due=N [-due-after=90]]\n       rotor-bench-api logins [-seconds=10] [-connections=8]"
        )),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }
}
