//! `rotor rotation watch [-mount=os] [-interval=1s] ID`: follows a fleet rotation started with
//! `rotor write os/rotate ... dry_run=false` until it ends, as a one-line progress bar on a
//! terminal and as one plain line per change otherwise (logs, CI, pipes).
//!
//! Owns polling `<mount>/rotations/<id>` and drawing what it answers; [`Progress`] and the
//! renderers are pure functions of that answer. Must not decide anything about the run: the
//! controller runs it and its record is the only truth shown. Exit code 3 (via
//! [`RunDidNotSucceed`]) when the run stopped, was interrupted or any account failed.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::client::Client;
use super::flags::{self, FlagSpec, Parsed};

pub(super) const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "mount",
        aliases: &[],
        takes_value: true,
        help: "the OS engine's mount (default os)",
    },
    FlagSpec {
        name: "interval",
        aliases: &[],
        takes_value: true,
        help: "how often to read the run's progress, like 1s or 500ms (default 1s)",
    },
    FlagSpec {
        name: "address",
        aliases: &[],
        takes_value: true,
        help: "server address (default $ROTOR_ADDR)",
    },
];

pub const ROTATION_HELP: &str = "Usage: rotor rotation watch [-mount=os] [-interval=1s] ID

Follows a fleet rotation in waves until it ends. Start one with
    rotor write os/rotate host='web-*' account='app*' dry_run=false
(dry_run=true, the default, answers the plan only) and watch the id it prints:
    rotor rotation watch RUN_ID

On a terminal it draws one progress bar line (hosts done of planned, hosts failed, hosts
not attempted after a stop, the wave running); otherwise it prints one line each time the progress changes. At the end it
lists every account: succeeded (with its new version), failed (with why) or not_attempted
(left untouched when the failure threshold stopped the run).

Exit codes: 0 every planned account succeeded; 3 the run stopped on failures, was
interrupted, or an account failed; 2 the server refused; 1 usage or connection errors.
The run itself is also readable with `rotor read os/rotations/RUN_ID`.
";

/// The watched run ended without every account succeeding; `main` exits 3 on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunDidNotSucceed(pub String);

/// Where a run stands, read from one answer of `<mount>/rotations/<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub state: String,
    pub hosts_planned: usize,
    /// Hosts that ran to an end: every account succeeded, failed or was interrupted.
    pub hosts_done: usize,
    /// Hosts with at least one failed account.
    pub hosts_failed: usize,
    /// Hosts a stop left untouched: not done, so a stopped run never draws a full bar.
    pub hosts_not_attempted: usize,
    pub accounts_planned: u64,
    pub accounts_succeeded: u64,
    pub accounts_failed: u64,
    pub accounts_not_attempted: u64,
    /// 1-based, for people.
    pub wave: u64,
    pub wave_count: u64,
    pub stop_reason: Option<String>,
}

fn account_state(account: &Value) -> &str {
    account["state"].as_str().unwrap_or("unknown")
}

fn hosts(data: &Value) -> impl Iterator<Item = (usize, &Value)> {
    data["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(wave, hosts)| {
            hosts
                .as_array()
                .into_iter()
                .flatten()
                .map(move |host| (wave, host))
        })
}

fn accounts_of(host: &Value) -> impl Iterator<Item = &Value> {
    host["accounts"].as_array().into_iter().flatten()
}

impl Progress {
    pub fn from_run(data: &Value) -> Progress {
        let count = |name: &str| data[name].as_u64().unwrap_or(0);
        let (mut hosts_planned, mut hosts_done, mut hosts_failed, mut hosts_not_attempted) =
            (0, 0, 0, 0);
        for (_, host) in hosts(data) {
            hosts_planned += 1;
            if accounts_of(host).all(|account| account_state(account) == "not_attempted") {
                hosts_not_attempted += 1;
            } else if accounts_of(host).all(|account| {
                matches!(
                    account_state(account),
                    "succeeded" | "failed" | "not_attempted" | "interrupted"
                )
            }) {
                hosts_done += 1;
            }
            if accounts_of(host).any(|account| account_state(account) == "failed") {
                hosts_failed += 1;
            }
        }
        Progress {
            state: data["state"].as_str().unwrap_or("unknown").to_string(),
            hosts_planned,
            hosts_done,
            hosts_failed,
            hosts_not_attempted,
            accounts_planned: count("planned"),
            accounts_succeeded: count("succeeded"),
            accounts_failed: count("failed"),
            accounts_not_attempted: count("not_attempted"),
            wave: count("current_wave") + 1,
            wave_count: count("wave_count"),
            stop_reason: data["stop_reason"].as_str().map(String::from),
        }
    }

    pub fn finished(&self) -> bool {
        self.state != "running"
    }

    /// Did the run end with every planned account rotated?
    pub fn succeeded(&self) -> bool {
        self.state == "completed" && self.accounts_succeeded == self.accounts_planned
    }

    /// One plain line: what changed is visible by comparing two of them.
    pub fn line(&self) -> String {
        format!(
            "{}: wave {}/{}, {}/{} hosts done, {} failed, {} not attempted (accounts: {} succeeded, {} failed, {} not attempted, of {})",
            self.state,
            self.wave,
            self.wave_count,
            self.hosts_done,
            self.hosts_planned,
            self.hosts_failed,
            self.hosts_not_attempted,
            self.accounts_succeeded,
            self.accounts_failed,
            self.accounts_not_attempted,
            self.accounts_planned,
        )
    }

    /// The terminal's bar, `width` cells wide, without the carriage return.
    pub fn bar(&self, width: usize) -> String {
        let filled = (self.hosts_done * width)
            .checked_div(self.hosts_planned)
            .unwrap_or(width)
            .min(width);
        format!(
            "[{}{}] {}/{} hosts  {} failed  {} not attempted  wave {}/{}  {}",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.hosts_done,
            self.hosts_planned,
            self.hosts_failed,
            self.hosts_not_attempted,
            self.wave,
            self.wave_count,
            self.state,
        )
    }
}

/// The end report, after the last progress line: why the run stopped, then one line per
/// account in plan order.
pub fn summary(data: &Value, progress: &Progress) -> String {
    let mut text = String::new();
    if let Some(reason) = &progress.stop_reason {
        text.push_str(&format!("stop reason: {reason}\n"));
    }
    for (wave, host) in hosts(data) {
        let host_name = host["host"].as_str().unwrap_or("?");
        for account in accounts_of(host) {
            let name = account["account"].as_str().unwrap_or("?");
            let state = account_state(account);
            let detail = match (account["version"].as_u64(), account["error"].as_str()) {
                (Some(version), _) => format!("  version {version}"),
                (None, Some(error)) => format!("  {error}"),
                (None, None) => String::new(),
            };
            text.push_str(&format!(
                "  wave {}  {host_name}  {name}  {state}{detail}\n",
                wave + 1
            ));
        }
    }
    text
}

fn parse_interval(parsed: &Parsed) -> Result<Duration> {
    let text = parsed.value("interval").unwrap_or("1s");
    let interval = humantime::parse_duration(text).map_err(|error| {
        anyhow!("-interval: '{text}' is not a duration like 1s or 500ms: {error}")
    })?;
    if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
        bail!("-interval: {text} must be between 100ms and 1h");
    }
    Ok(interval)
}

/// `rotor rotation SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{ROTATION_HELP}");
    };
    match subcommand.as_str() {
        "-h" | "-help" | "--help" | "help" => {
            print!("{}", flags::help_text(ROTATION_HELP, FLAGS));
            Ok(())
        }
        "watch" => watch(rest),
        other => bail!("unknown rotation subcommand '{other}'\n\n{ROTATION_HELP}"),
    }
}

fn watch(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(FLAGS, ROTATION_HELP, args)?;
    let id = match parsed.positional.as_slice() {
        [id] if !id.trim().is_empty() && !id.contains('/') => id.trim().to_string(),
        _ => bail!("usage: rotor rotation watch [-mount=os] [-interval=1s] ID"),
    };
    let mount = parsed.value("mount").unwrap_or("os").trim_matches('/');
    if mount.is_empty() {
        bail!("-mount: give the OS engine's mount, like os");
    }
    let interval = parse_interval(&parsed)?;
    let path = format!("{mount}/rotations/{id}");
    let client = Client::from_env(parsed.value("address"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    let mut last_line = String::new();
    let (data, progress) = runtime.block_on(async {
        loop {
            let answer = client.request("GET", &path, None).await?;
            let data = answer
                .get("data")
                .cloned()
                .ok_or_else(|| anyhow!("{path} answered no data: {answer}"))?;
            let progress = Progress::from_run(&data);
            if terminal {
                // `\r` back to the line's start, `ESC[K` clears what a longer line left.
                write!(stdout, "\r{}\x1b[K", progress.bar(30))?;
                stdout.flush()?;
            } else {
                let line = progress.line();
                if line != last_line {
                    writeln!(stdout, "{line}")?;
                    last_line = line;
                }
            }
            if progress.finished() {
                if terminal {
                    writeln!(stdout)?;
                }
                return Ok::<_, anyhow::Error>((data, progress));
            }
            tokio::time::sleep(interval).await;
        }
    })?;
    print!("{}", summary(&data, &progress));
    if progress.succeeded() {
        return Ok(());
    }
    Err(RunDidNotSucceed(match &progress.stop_reason {
        Some(reason) => format!("fleet rotation {id} {}: {reason}", progress.state),
        None => format!(
            "fleet rotation {id} ended {} with {} failed and {} not attempted of {} account(s)",
            progress.state,
            progress.accounts_failed,
            progress.accounts_not_attempted,
            progress.accounts_planned
        ),
    })
    .into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run_record(state: &str, states: &[(&str, &[&str])]) -> Value {
        let waves: Vec<Value> = states
            .iter()
            .map(|(host, accounts)| {
                json!([{
                    "host": host,
                    "site": "a",
                    "accounts": accounts.iter().enumerate().map(|(index, state)| json!({
                        "account": format!("app{}", index + 1),
                        "state": state,
                        "version": if *state == "succeeded" { json!(2) } else { Value::Null },
                        "error": if *state == "failed" { json!("sudo refused") } else { Value::Null },
                    })).collect::<Vec<_>>(),
                }])
            })
            .collect();
        let all: Vec<&str> = states.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        let count = |wanted: &str| all.iter().filter(|s| **s == wanted).count();
        json!({
            "state": state,
            "stop_reason": if state == "stopped" { json!("2 of 6 account(s) failed") } else { Value::Null },
            "current_wave": 1.min(states.len() - 1),
            "wave_count": states.len(),
            "planned": all.len(),
            "succeeded": count("succeeded"),
            "failed": count("failed"),
            "not_attempted": count("not_attempted"),
            "waves": waves,
        })
    }

    #[test]
    fn progress_counts_hosts_done_and_failed() {
        let data = run_record(
            "running",
            &[
                ("web-1", &["succeeded", "succeeded"]),
                ("web-2", &["failed", "running"]),
                ("web-3", &["pending", "pending"]),
            ],
        );
        let progress = Progress::from_run(&data);
        assert_eq!(progress.hosts_planned, 3);
        assert_eq!(progress.hosts_done, 1);
        assert_eq!(progress.hosts_failed, 1);
        assert_eq!(progress.wave, 2);
        assert!(!progress.finished());
        assert_eq!(
            progress.line(),
            "running: wave 2/3, 1/3 hosts done, 1 failed, 0 not attempted (accounts: 2 succeeded, 1 failed, 0 not attempted, of 6)"
        );
        assert_eq!(
            progress.bar(6),
            "[##----] 1/3 hosts  1 failed  0 not attempted  wave 2/3  running"
        );
    }

    #[test]
    fn a_stopped_run_is_finished_but_not_a_success_and_its_summary_names_every_account() {
        let data = run_record(
            "stopped",
            &[
                ("web-1", &["succeeded", "succeeded"]),
                ("web-2", &["failed", "failed"]),
                ("web-3", &["not_attempted", "not_attempted"]),
            ],
        );
        let progress = Progress::from_run(&data);
        assert!(progress.finished());
        assert!(!progress.succeeded());
        assert_eq!(progress.hosts_done, 2);
        assert_eq!(progress.hosts_not_attempted, 1);
        assert_eq!(
            progress.bar(6),
            "[####--] 2/3 hosts  1 failed  1 not attempted  wave 2/3  stopped"
        );
        let text = summary(&data, &progress);
        assert!(
            text.contains("stop reason: 2 of 6 account(s) failed"),
            "{text}"
        );
        assert!(
            text.contains("  wave 1  web-1  app1  succeeded  version 2\n"),
            "{text}"
        );
        assert!(
            text.contains("  wave 2  web-2  app2  failed  sudo refused\n"),
            "{text}"
        );
        assert!(
            text.contains("  wave 3  web-3  app1  not_attempted\n"),
            "{text}"
        );
    }

    #[test]
    fn a_completed_run_with_everything_rotated_succeeds() {
        let data = run_record("completed", &[("web-1", &["succeeded"])]);
        let progress = Progress::from_run(&data);
        assert!(progress.succeeded());
        assert_eq!(
            progress.bar(4),
            "[####] 1/1 hosts  0 failed  0 not attempted  wave 1/1  completed"
        );
        // An empty plan draws a full bar rather than dividing by zero.
        let empty = Progress::from_run(&json!({"state": "completed", "waves": []}));
        assert!(empty.bar(3).starts_with("[###]"));
    }

    #[test]
    fn intervals_are_bounded() {
        let parse = |text: &str| {
            let parsed = flags::parse(FLAGS, &[format!("-interval={text}")]).expect("flags");
            parse_interval(&parsed)
        };
        assert_eq!(parse("500ms").expect("ok"), Duration::from_millis(500));
        assert!(parse("1ms").is_err());
        assert!(parse("soon").is_err());
    }
}
