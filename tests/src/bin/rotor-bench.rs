//! `rotor-bench fleet|agent-rss|otp-latency|recovery|all [-hosts=20] [-accounts=10]
//! [-rounds=3] [-logins=50] [-kills=20] [-no-ansible]`: the container benchmarks of issue 7
//! (fleet rotation against plain OpenSSH and Ansible; the agent's memory while rotating),
//! issue 8 (OTP login latency) and issue 16 (recovery after a controller kill -9). Each writes its section of `docs/benchmarks.md` with the machine, the date and
//! the raw figures, and prints it.
//!
//! Measures the Rotor binaries of the profile this command was built with (`--release`:
//! release), building them first with cargo, unless `ROTOR_BIN_DIR` names others.
//! Owns argument parsing and the report's wording; the measuring is in `rotor_tests::bench`.
//! Must not assert targets: it measures and says how the figures compare.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rotor_tests::bench::fleet::{Fleet, FleetShape, RotorRound};
use rotor_tests::bench::report::{load_average, machine, table, write_section};
use rotor_tests::bench::rss::{self, mib};
use rotor_tests::bench::stats::{median, millis_of, percentile, ratio};
use rotor_tests::bench::{ansible, otp};

const USAGE: &str = "usage: rotor-bench fleet|agent-rss|otp-latency|recovery|all [-hosts=20] \
                     [-accounts=10] [-rounds=3] [-logins=50] [-kills=20] [-no-ansible]";

struct Options {
    hosts: usize,
    accounts: usize,
    rounds: usize,
    logins: usize,
    kills: usize,
    ansible: bool,
}

fn flag(args: &[String], name: &str, default: usize) -> Result<usize> {
    let prefix = format!("{name}=");
    match args
        .iter()
        .find_map(|arg| arg.trim_start_matches('-').strip_prefix(&prefix))
    {
        None => Ok(default),
        Some(value) => value
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("-{name}: `{value}` is not a positive number")),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(which) = args.first().cloned() else {
        bail!("{USAGE}");
    };
    let options = Options {
        hosts: flag(&args, "hosts", 20)?,
        accounts: flag(&args, "accounts", 10)?,
        rounds: flag(&args, "rounds", 3)?,
        logins: flag(&args, "logins", 50)?,
        kills: flag(&args, "kills", 20)?,
        ansible: !args
            .iter()
            .any(|arg| arg.trim_start_matches('-') == "no-ansible"),
    };
    if !matches!(
        which.as_str(),
        "fleet" | "agent-rss" | "otp-latency" | "recovery" | "all"
    ) {
        bail!("unknown benchmark `{which}`\n{USAGE}");
    }
    if std::env::var_os("ROTOR_BIN_DIR").is_none() {
        // Build the binaries of this profile, then run again with the harness pointed at them.
        let dir = build_rotor_binaries()?;
        let status = Command::new(std::env::current_exe()?)
            .args(&args)
            .env("ROTOR_BIN_DIR", &dir)
            .env("ROTOR_BENCH_PROFILE", profile_of(&dir))
            .status()
            .context("running rotor-bench again with ROTOR_BIN_DIR")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let profile = std::env::var("ROTOR_BENCH_PROFILE").unwrap_or_else(|_| {
        format!(
            "as given by ROTOR_BIN_DIR={}",
            std::env::var("ROTOR_BIN_DIR").unwrap_or_default()
        )
    });
    if matches!(which.as_str(), "fleet" | "agent-rss" | "all") {
        fleet_benchmarks(&options, &profile, which != "agent-rss")?;
    }
    if matches!(which.as_str(), "otp-latency" | "all") {
        otp_benchmark(&options, &profile)?;
    }
    if matches!(which.as_str(), "recovery" | "all") {
        recovery_benchmark(&options, &profile)?;
    }
    Ok(())
}

/// Issue 16: kill -9 of the controller while every host rotates, `options.kills` times;
/// the time from the restart to every account settled.
fn recovery_benchmark(options: &Options, profile: &str) -> Result<()> {
    let machine = machine();
    let shape = FleetShape {
        hosts: options.hosts,
        accounts: 1,
    };
    eprintln!(
        "rotor-bench: recovery, {} hosts, {} kills",
        shape.hosts, options.kills
    );
    let fleet = Fleet::start(shape)?;
    let mut rounds = Vec::new();
    for kill in 0..options.kills {
        let round =
            fleet.recovery_round((Duration::from_millis(150), Duration::from_millis(1500)))?;
        eprintln!(
            "rotor-bench: kill {kill}: after {:?}, {} pending at restart, settled in {:?} ({} from the journal, {} by probe)",
            round.killed_after,
            round.pending_at_restart,
            round.settled_after,
            round.from_journal,
            round.by_probe
        );
        rounds.push(round);
    }
    let seconds: Vec<f64> = rounds
        .iter()
        .map(|round| round.settled_after.as_secs_f64())
        .collect();
    let with_pending: Vec<f64> = rounds
        .iter()
        .filter(|round| round.pending_at_restart > 0)
        .map(|round| round.settled_after.as_secs_f64())
        .collect();
    let most = |values: &[f64]| values.iter().copied().fold(f64::NAN, f64::max);
    let rows = vec![
        vec![
            "every kill".to_string(),
            seconds.len().to_string(),
            format!("{:.2}", percentile(&seconds, 50.0).unwrap_or(f64::NAN)),
            format!("{:.2}", most(&seconds)),
        ],
        vec![
            "kills that left changes pending".to_string(),
            with_pending.len().to_string(),
            format!("{:.2}", percentile(&with_pending, 50.0).unwrap_or(f64::NAN)),
            format!("{:.2}", most(&with_pending)),
        ],
    ];
    let pending: u64 = rounds.iter().map(|round| round.pending_at_restart).sum();
    let journal: u64 = rounds.iter().map(|round| round.from_journal).sum();
    let probe: u64 = rounds.iter().map(|round| round.by_probe).sum();
    let body = format!(
        "## Recovery after a controller kill -9 (issue 16)\n\n\
         Machine: {machine}. Rotor binaries: {profile} profile.\n\n\
         {} harness hosts on one site, one agent, each host with `mgmt` (sudo chpasswd) and one \
         child. Each round starts a rotation of every host's child at once (from inside the \
         controller container), kills `rotor server` with SIGKILL 150-1500 ms later, starts it \
         again on the same store, and scrapes its `rotor_accounts` gauges every 100 ms until no \
         account is rotating or verifying. The figure is from the restart command to that \
         moment (the server's own start included); every round checks that nothing ended out \
         of sync.\n\n{}\n\
         Changes pending at the restarts: {pending}; settled from the agent's journal: \
         {journal}; by a probe login: {probe}. Target: p50 < 5 s, max < 15 s with 20 hosts \
         pending. Load average after: {}.\n",
        shape.hosts,
        table(&["rounds", "count", "p50 (s)", "max (s)"], &rows),
        load_average(),
    );
    write_section("recovery", &body)?;
    println!("{body}");
    Ok(())
}

/// The directory holding this executable's profile (`…/target/release`).
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))
}

fn profile_of(dir: &Path) -> String {
    dir.file_name()
        .map_or("unknown".into(), |name| name.to_string_lossy().into_owned())
}

/// `cargo build [--release] -p rotor-controller -p rotor-agent` for this executable's profile.
fn build_rotor_binaries() -> Result<PathBuf> {
    let dir = profile_dir()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "-p", "rotor-controller", "-p", "rotor-agent"]);
    if profile_of(&dir) == "release" {
        command.arg("--release");
    }
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    eprintln!(
        "rotor-bench: building the Rotor binaries ({})",
        profile_of(&dir)
    );
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of rotor and rotor-agent failed");
    }
    Ok(dir)
}

fn seconds(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64())
}

fn list(durations: &[Duration]) -> String {
    durations
        .iter()
        .map(|d| seconds(*d))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median_secs(durations: &[Duration]) -> f64 {
    let values: Vec<f64> = durations.iter().map(Duration::as_secs_f64).collect();
    median(&values).unwrap_or(f64::NAN)
}

fn fleet_benchmarks(options: &Options, profile: &str, compare: bool) -> Result<()> {
    let machine = machine();
    let shape = FleetShape {
        hosts: options.hosts,
        accounts: options.accounts,
    };
    eprintln!(
        "rotor-bench: starting {} hosts × {} accounts",
        shape.hosts, shape.accounts
    );
    let fleet = Fleet::start(shape)?;
    let agent_pid = fleet.agent_pid()?;
    let idle_kib = rss::status_kib(agent_pid, "VmRSS")?;
    let mut rotor_rounds: Vec<RotorRound> = Vec::new();
    let mut floor_walls = Vec::new();
    for round in 1..=options.rounds {
        let rotor = fleet.rotor_round()?;
        eprintln!("rotor-bench: round {round}: Rotor {}s", seconds(rotor.wall));
        rotor_rounds.push(rotor);
        if compare {
            let floor = fleet.floor_round()?;
            eprintln!("rotor-bench: round {round}: floor {}s", seconds(floor));
            floor_walls.push(floor);
        }
    }
    let rotor_walls: Vec<Duration> = rotor_rounds.iter().map(|r| r.wall).collect();
    let accounts_total = shape.hosts * shape.accounts;
    let setup = format!(
        "{} harness hosts × {} accounts ({accounts_total} accounts; parent `mgmt` with \
         `NOPASSWD: /usr/sbin/chpasswd`, Debian 12, yescrypt), one site, one agent. Rotor \
         binaries: {profile} profile.",
        shape.hosts, shape.accounts
    );

    // Agent footprint.
    let samples: Vec<u64> = rotor_rounds
        .iter()
        .flat_map(|r| r.rss_samples.iter().copied())
        .collect();
    let max_sampled = samples.iter().copied().max().unwrap_or(0);
    let peak = rotor_rounds.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    let rss_body = format!(
        "## Agent footprint while rotating (issue 7, benchmark 4)\n\n\
         Machine: {machine}.\n\n\
         {setup} `rotor-agent` RSS read from the build machine's /proc (VmRSS every 50 ms \
         while Rotor rotated the fleet, {} rounds; VmHWM reset before each round).\n\n{}\n\
         Target: < 64 MiB. Measured peak: {} MiB ({}).\n",
        options.rounds,
        table(
            &[
                "idle before rotating (MiB)",
                "VmRSS samples",
                "max sampled VmRSS (MiB)",
                "peak VmHWM during rotation (MiB)",
            ],
            &[vec![
                mib(idle_kib),
                samples.len().to_string(),
                mib(max_sampled),
                mib(peak),
            ]],
        ),
        mib(peak),
        if peak < 64 * 1024 { "met" } else { "missed" }
    );
    write_section("agent-rss", &rss_body)?;
    println!("{rss_body}");
    if !compare {
        return Ok(());
    }

    let mut ansible_line = String::from("not run (-no-ansible)");
    let mut ansible_walls = Vec::new();
    if options.ansible {
        let version = ansible::ensure_ansible()?;
        eprintln!("rotor-bench: preparing the hosts for Ansible ({version})");
        ansible::prepare_hosts(&fleet)?;
        let wall = ansible::ansible_round(&fleet, shape.hosts)?;
        eprintln!("rotor-bench: Ansible {}s", seconds(wall));
        ansible_walls.push(wall);
        ansible_line = version;
    }
    let rotor_median = median_secs(&rotor_walls);
    let floor_median = median_secs(&floor_walls);
    let mut rows = vec![
        vec![
            "Rotor: `os/hosts/:host/rotate accounts=…`, every host at once".to_string(),
            list(&rotor_walls),
            format!("{rotor_median:.2}"),
        ],
        vec![
            "floor: one `sshpass ssh mgmt@host sudo -n /usr/sbin/chpasswd` per host, all at once"
                .to_string(),
            list(&floor_walls),
            format!("{floor_median:.2}"),
        ],
    ];
    let ansible_median = median_secs(&ansible_walls);
    if !ansible_walls.is_empty() {
        rows.push(vec![
            format!(
                "Ansible `user` module, hashed password, forks={}",
                shape.hosts
            ),
            list(&ansible_walls),
            format!("{ansible_median:.2}"),
        ]);
    }
    let rotor_over_floor = ratio(rotor_median, floor_median);
    let fleet_body = format!(
        "## Fleet rotation: Rotor vs plain OpenSSH (the floor) vs Ansible (issue 7, benchmark 1)\n\n\
         Machine: {machine}.\n\n\
         {setup} Rotor and the floor alternate for {} rounds; every run sets a fresh password \
         on all {accounts_total} accounts, and after each run the first and last account of the \
         first, middle and last host log in with their new password. Rotor's time is measured \
         inside the controller container from the first request to the last answer (each \
         answer means every account of that host was confirmed and committed); the floor's \
         inside the site's probe container; Ansible's ({ansible_line}, run from the build \
         machine, Python and `mgmt ALL=(ALL) NOPASSWD: ALL` added to the hosts for it) is the \
         whole `ansible-playbook` run.\n\n{}\n\
         Rotor / floor = **{rotor_over_floor:.2}×** (target ≤ 1.10×); Ansible / Rotor = \
         **{:.1}×**; Ansible / floor = {:.1}×. Load average after: {}.\n",
        options.rounds,
        table(&["run", "wall times (s)", "median (s)"], &rows),
        ratio(ansible_median, rotor_median),
        ratio(ansible_median, floor_median),
        load_average(),
    );
    write_section("fleet", &fleet_body)?;
    println!("{fleet_body}");
    if let Ok((controller, agent)) = fleet.logs() {
        let dir = std::env::temp_dir().join("rotor-bench-logs");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("controller.log"), controller)?;
        std::fs::write(dir.join("agent.log"), agent)?;
        eprintln!(
            "rotor-bench: controller and agent logs kept in {}",
            dir.display()
        );
    }
    Ok(())
}

fn otp_benchmark(options: &Options, profile: &str) -> Result<()> {
    let machine = machine();
    eprintln!(
        "rotor-bench: OTP latency, {} logins of each kind",
        options.logins
    );
    let measured = otp::run(options.logins)?;
    let row = |label: &str, values: &[f64]| -> Vec<String> {
        vec![
            label.to_string(),
            values.len().to_string(),
            format!("{:.1}", percentile(values, 50.0).unwrap_or(f64::NAN)),
            format!("{:.1}", percentile(values, 99.0).unwrap_or(f64::NAN)),
        ]
    };
    let baseline = millis_of(&measured.baseline_password, "password");
    let otp_ms = millis_of(&measured.with_helper, "otp");
    let fallthrough = millis_of(&measured.with_helper, "password");
    let helper = millis_of(&measured.helper_alone, "helper");
    let p50 = |values: &[f64]| percentile(values, 50.0).unwrap_or(f64::NAN);
    let added = p50(&otp_ms) - p50(&baseline);
    let body = format!(
        "## OTP login latency (issue 8)\n\n\
         Machine: {machine}. Rotor binaries: {profile} profile.\n\n\
         One harness host (Debian 12, sshd with PAM) with `rotor-agent otp-verify` as its \
         `pam_exec` helper (`sufficient` stack, before `common-auth`), the controller in its own \
         container. Each login is `sshpass -e ssh … true` from the site's probe container, \
         timed there, one at a time. The baseline is the account's password before the helper \
         is installed; then OTP logins (a fresh OTP each) alternate with password logins, which \
         now run the helper first and fall through to pam_unix. \"helper alone\" is \
         `otp-verify` run inside the host with pam_exec's environment and a fresh OTP on stdin \
         (process start, QUIC to the controller, verify-and-consume).\n\n{}\n\
         Added latency at p50, OTP login − baseline password login: **{added:.1} ms** (target \
         < 15 ms). Load average after: {}.\n",
        table(
            &["login", "samples", "p50 (ms)", "p99 (ms)"],
            &[
                row("password, no helper (baseline)", &baseline),
                row("OTP through the helper", &otp_ms),
                row("password, helper installed (falls through)", &fallthrough),
                row("helper alone (inside the host)", &helper),
            ],
        ),
        load_average(),
    );
    write_section("otp-latency", &body)?;
    println!("{body}");
    Ok(())
}
