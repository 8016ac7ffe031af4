//! OS engine, end to end: fleet rotation in waves (`os/rotate`, `os/rotations/:id`, issue 7)
//! on five real hosts of one site behind one agent, followed with `rotor rotation watch`.
//!
//! Proves that a dry run only plans (and its host and account globs really filter), that a run
//! rotates the canary before anything else, that a failure past the threshold stops it with the
//! hosts not started reported `not_attempted` and still on their old passwords, that a run cut
//! by a controller restart reads `interrupted`, and that bad selectors and options are 400s
//! saying what is wrong. A second scenario, two sites with an agent each, proves the host cap
//! is per site: never two hosts of one site at once, while sites rotate side by side. Every
//! password claim is a login on the host. Owns only these scenarios; the harness owns
//! containers and logins.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rotor_tests::prelude::*;
use serde_json::Value;

/// The hosts the selector `wave-*` takes, in the order the plan sorts them.
const WAVE_HOSTS: [&str; 4] = ["wave-1", "wave-2", "wave-3", "wave-4"];
/// A host of the same site that `wave-*` must leave alone.
const OUTSIDER: &str = "edge-1";
/// The canary's chpasswd: sleeps first, so the run is observably in its canary wave.
const SLOW_CHPASSWD: &str = "/usr/local/sbin/slow-chpasswd";

/// The id a started run answers.
fn run_id(started: &Value) -> Result<String> {
    Ok(started["data"]["id"]
        .as_str()
        .with_context(|| format!("a started run answers its id: {started}"))?
        .to_string())
}

fn initial_password(host: &str, account: &str) -> String {
    format!("{account}-{host}-Initial-1")
}

fn creds(rotor: &Rotor, host: &str, account: &str) -> Result<(String, u64)> {
    let answer = rotor.cli_json(&["read", &format!("os/hosts/{host}/accounts/{account}/creds")])?;
    Ok((
        answer["data"]["password"]
            .as_str()
            .context("no password in creds")?
            .to_string(),
        answer["data"]["version"]
            .as_u64()
            .context("no version in creds")?,
    ))
}

/// Registers the host and its accounts: `mgmt` (the parent, never rotated here), `app1` and
/// `app2` (its children, rotated with `sudo chpasswd` through it).
fn register(rotor: &Rotor, site: &Site, host: &Host, chpasswd: Option<&str>) -> Result<()> {
    let name = host.name();
    let chpasswd_field = chpasswd.map(|command| format!("chpasswd_command={command}"));
    let extra: Vec<&str> = chpasswd_field.iter().map(String::as_str).collect();
    rotor.register_os_host(site, host, &extra)?;
    rotor.write_os_parent(name, "mgmt", "Mgmt-initial-1")?;
    let accounts = format!("os/hosts/{name}/accounts");
    for account in ["app1", "app2"] {
        rotor.cli(&[
            "write",
            &format!("{accounts}/{account}"),
            &format!("username={account}"),
            &format!("password={}", initial_password(name, account)),
            "parent_ref=mgmt",
            "disable_automated_rotation=true",
        ])?;
    }
    Ok(())
}

/// `[[host, ...], ...]` of a plan or a run record's `waves`.
fn wave_hosts(data: &Value) -> Vec<Vec<String>> {
    data["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|wave| {
            wave.as_array()
                .into_iter()
                .flatten()
                .map(|host| host["host"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .collect()
}

/// `(host, account, state)` for every account of a run record, in plan order.
fn account_states(data: &Value) -> Vec<(String, String, String)> {
    let mut states = Vec::new();
    for host in data["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|wave| wave.as_array().into_iter().flatten())
    {
        for account in host["accounts"].as_array().into_iter().flatten() {
            states.push((
                host["host"].as_str().unwrap_or("?").to_string(),
                account["account"].as_str().unwrap_or("?").to_string(),
                account["state"].as_str().unwrap_or("?").to_string(),
            ));
        }
    }
    states
}

fn state_of(data: &Value, host: &str) -> Vec<String> {
    account_states(data)
        .into_iter()
        .filter(|(name, _, _)| name == host)
        .map(|(_, _, state)| state)
        .collect()
}

/// `rotor write os/rotate ...` must be refused with a 400 whose message holds `expected`.
fn assert_refused(rotor: &Rotor, arguments: &[&str], expected: &[&str]) -> Result<()> {
    let mut full = vec!["write", "os/rotate"];
    full.extend(arguments);
    let output = rotor.controller().cli_output(&full)?;
    if output.success() {
        bail!("`rotor {}` was accepted: {}", full.join(" "), output.stdout);
    }
    assert_eq!(output.exit_code, Some(2), "{}", output.stderr);
    assert!(output.stderr.contains("Code: 400"), "{}", output.stderr);
    for piece in expected {
        assert!(
            output.stderr.contains(piece),
            "`rotor {}`: `{piece}` missing from: {}",
            full.join(" "),
            output.stderr
        );
    }
    Ok(())
}

/// Lets `mgmt` run `sudo -n /usr/sbin/chpasswd` again (what the harness installs at start).
fn grant_sudo(host: &Host, command: &str, file: &str) -> Result<()> {
    host.exec(&format!(
        "set -e; echo 'mgmt ALL=(root) NOPASSWD: {command}' > /etc/sudoers.d/{file}.new; \
         visudo -cf /etc/sudoers.d/{file}.new; chmod 0440 /etc/sudoers.d/{file}.new; \
         mv /etc/sudoers.d/{file}.new /etc/sudoers.d/{file}"
    ))?;
    Ok(())
}

#[test]
fn waves_plan_canary_first_stop_on_failures_and_watch() -> Result<()> {
    if skip_requested("waves_plan_canary_first_stop_on_failures_and_watch") {
        return Ok(());
    }
    let site = Site::new("wv")?;
    let mut hosts = Vec::new();
    for name in WAVE_HOSTS.iter().chain([&OUTSIDER]) {
        hosts.push(
            site.host(name)
                .with_parent("mgmt", "Mgmt-initial-1")
                .with_user("app1", &initial_password(name, "app1"))
                .with_user("app2", &initial_password(name, "app2"))
                .start()?,
        );
    }
    let host = |name: &str| -> Result<&Host> {
        hosts
            .iter()
            .find(|host| host.name() == name)
            .with_context(|| format!("no host {name}"))
    };
    // The canary's chpasswd sleeps 4 s, so the run is seen mid-canary.
    let canary = host("wave-1")?;
    canary.exec(&format!(
        "printf '#!/bin/sh\\nsleep 4\\nexec /usr/sbin/chpasswd \"$@\"\\n' > {SLOW_CHPASSWD}; chmod 0755 {SLOW_CHPASSWD}"
    ))?;
    grant_sudo(canary, SLOW_CHPASSWD, "rotor-slow")?;
    let rotor = Rotor::start(&[&site])?;
    for host in &hosts {
        let chpasswd = (host.name() == "wave-1").then_some(SLOW_CHPASSWD);
        register(&rotor, &site, host, chpasswd)?;
    }

    // A dry run (the default) answers the plan: the host glob leaves edge-1 out, the account
    // glob leaves mgmt out, the canary comes first, then waves of wave_size.
    let plan = rotor.cli_json(&[
        "write",
        "os/rotate",
        "host=wave-*",
        "account=app*",
        "canary=1",
        "wave_size=2",
    ])?;
    let data = &plan["data"];
    assert_eq!(data["dry_run"], true, "{plan}");
    assert!(
        data.get("id").is_none(),
        "a dry run must not start a run: {plan}"
    );
    assert_eq!(data["hosts"], 4, "{plan}");
    assert_eq!(data["accounts"], 8, "{plan}");
    assert_eq!(
        wave_hosts(data),
        [vec!["wave-1"], vec!["wave-2", "wave-3"], vec!["wave-4"]],
        "{plan}"
    );
    for planned in data["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|wave| wave.as_array().into_iter().flatten())
    {
        assert_eq!(
            planned["accounts"],
            serde_json::json!(["app1", "app2"]),
            "{plan}"
        );
    }
    // A narrower account glob takes one account per host; a site alone takes everything there.
    let one = rotor.cli_json(&["write", "os/rotate", "host=wave-?", "account=app1"])?;
    assert_eq!(one["data"]["accounts"], 4, "{one}");
    assert_eq!(
        one["data"]["waves"][0][0]["accounts"],
        serde_json::json!(["app1"])
    );
    let whole_site = rotor.cli_json(&["write", "os/rotate", &format!("site={}", site.name())])?;
    assert_eq!(whole_site["data"]["hosts"], 5, "{whole_site}");
    assert_eq!(whole_site["data"]["accounts"], 15, "{whole_site}");
    assert_eq!(
        wave_hosts(&whole_site["data"])[0],
        ["edge-1"],
        "{whole_site}"
    );
    // Planning changed nothing.
    assert_eq!(
        creds(&rotor, "wave-1", "app1")?,
        (initial_password("wave-1", "app1"), 1)
    );

    // Bad input: 400s naming the field and the fix.
    assert_refused(
        &rotor,
        &["site=nowhere"],
        &["field 'site'", "'nowhere'", "wv"],
    )?;
    assert_refused(
        &rotor,
        &["host=wave-[12]"],
        &["field 'host'", "wave-[12]", "only *"],
    )?;
    assert_refused(
        &rotor,
        &["account=app{1,2}"],
        &["field 'account'", "app{1,2}"],
    )?;
    assert_refused(&rotor, &["host=wave-*", "canary=0"], &["field 'canary'"])?;
    assert_refused(
        &rotor,
        &["host=wave-*", "wave_size=-2"],
        &["field 'wave_size'"],
    )?;
    assert_refused(
        &rotor,
        &["host=wave-*", "failure_threshold=ten"],
        &["field 'failure_threshold'", "'ten'"],
    )?;
    assert_refused(
        &rotor,
        &["host=wave-*", "failure_threshold=150%"],
        &["field 'failure_threshold'", "percentage"],
    )?;
    assert_refused(&rotor, &["dry_run=true"], &["give at least one of"])?;
    assert_refused(
        &rotor,
        &["host=nothing-*", "dry_run=false"],
        &["matches no account"],
    )?;

    // wave-2's parent loses its sudo rule: its rotation fails for certain, changing nothing.
    host("wave-2")?.exec("rm -f /etc/sudoers.d/rotor-mgmt")?;
    let started = rotor.cli_json(&[
        "write",
        "os/rotate",
        "host=wave-*",
        "account=app*",
        "canary=1",
        "wave_size=2",
        "max_parallel_per_site=1",
        "failure_threshold=1",
        "dry_run=false",
    ])?;
    let id = run_id(&started)?;
    assert_eq!(started["data"]["state"], "running", "{started}");
    let run_path = format!("os/rotations/{id}");

    // Progress while it runs: the canary alone is rotating, every later host waits.
    let mut mid_canary = Value::Null;
    wait_until(
        "the canary wave-1 to be rotating",
        Duration::from_secs(10),
        || {
            let read = rotor.cli_json(&["read", &run_path])?;
            let rotating = state_of(&read["data"], "wave-1") == ["running", "running"];
            if rotating {
                mid_canary = read;
            }
            Ok(rotating)
        },
    )?;
    let data = &mid_canary["data"];
    assert_eq!(data["state"], "running", "{mid_canary}");
    assert_eq!(data["current_wave"], 0, "{mid_canary}");
    assert_eq!(data["running"], 2, "{mid_canary}");
    assert_eq!(data["pending"], 6, "{mid_canary}");
    for later in ["wave-2", "wave-3", "wave-4"] {
        assert_eq!(
            state_of(data, later),
            ["pending", "pending"],
            "{mid_canary}"
        );
    }

    // `rotor rotation watch`, not on a terminal: a line per change, the end report, exit 3.
    let watched = rotor
        .controller()
        .cli_output(&["rotation", "watch", "-interval=200ms", &id])?;
    eprintln!(
        "rotor rotation watch:\n{}{}",
        watched.stdout, watched.stderr
    );
    assert_eq!(watched.exit_code, Some(3), "{}", watched.stderr);
    assert!(watched.stderr.contains("stopped"), "{}", watched.stderr);
    let lines: Vec<&str> = watched.stdout.lines().collect();
    assert!(
        lines[0].starts_with("running: wave 1/3, 0/4 hosts done"),
        "{}",
        watched.stdout
    );
    let last_canary_line = lines
        .iter()
        .rposition(|line| line.contains("wave 1/3"))
        .context("no line shows the canary wave")?;
    let first_later_line = lines
        .iter()
        .position(|line| line.contains("wave 2/3"))
        .context("no line shows wave 2")?;
    assert!(
        last_canary_line < first_later_line,
        "wave 1 lines must all come before wave 2 lines:\n{}",
        watched.stdout
    );
    for expected in [
        "stopped: wave 2/3, 2/4 hosts done, 1 failed, 2 not attempted (accounts: 2 succeeded, 2 failed, 4 not attempted, of 8)",
        "stop reason: 2 of 8 account(s) failed, past the failure threshold of 1",
        "  wave 1  wave-1  app1  succeeded  version 2",
        "  wave 1  wave-1  app2  succeeded  version 2",
        "  wave 2  wave-2  app1  failed  ",
        "  wave 2  wave-3  app2  not_attempted",
        "  wave 3  wave-4  app1  not_attempted",
    ] {
        assert!(
            watched.stdout.contains(expected),
            "`{expected}` missing from:\n{}",
            watched.stdout
        );
    }

    // The final record says, host by host, what became of each account.
    let done = rotor.cli_json(&["read", &run_path])?;
    let data = &done["data"];
    assert_eq!(data["state"], "stopped", "{done}");
    assert_eq!(data["succeeded"], 2, "{done}");
    assert_eq!(data["failed"], 2, "{done}");
    assert_eq!(data["not_attempted"], 4, "{done}");
    assert!(data["finished_time"].is_string(), "{done}");
    assert_eq!(state_of(data, "wave-1"), ["succeeded", "succeeded"]);
    assert_eq!(state_of(data, "wave-2"), ["failed", "failed"]);
    assert_eq!(state_of(data, "wave-3"), ["not_attempted", "not_attempted"]);
    assert_eq!(state_of(data, "wave-4"), ["not_attempted", "not_attempted"]);
    let error = data["waves"][1][0]["accounts"][0]["error"]
        .as_str()
        .context("a failed account says why")?;
    assert!(error.contains("sudo"), "{done}");
    let listed = rotor.cli_json(&["list", "os/rotations"])?;
    assert!(
        listed
            .as_array()
            .is_some_and(|ids| ids.iter().any(|k| k == id.as_str())),
        "{listed}"
    );

    // On the hosts: the canary has the new passwords, the rest still have the old ones.
    for account in ["app1", "app2"] {
        let (password, version) = creds(&rotor, "wave-1", account)?;
        assert_eq!(version, 2);
        assert_password(canary, account, &password);
        assert_not_password(canary, account, &initial_password("wave-1", account));
        for untouched in ["wave-2", "wave-3", "wave-4", OUTSIDER] {
            let old = initial_password(untouched, account);
            assert_eq!(creds(&rotor, untouched, account)?, (old.clone(), 1));
            assert_password(host(untouched)?, account, &old);
        }
    }

    // With wave-2's sudo rule back, the same selector runs to the end and watch exits 0.
    grant_sudo(host("wave-2")?, "/usr/sbin/chpasswd", "rotor-mgmt")?;
    let started = rotor.cli_json(&[
        "write",
        "os/rotate",
        "host=wave-*",
        "account=app*",
        "wave_size=3",
        "dry_run=false",
    ])?;
    let id = run_id(&started)?;
    let watched = rotor
        .controller()
        .cli_output(&["rotation", "watch", "-interval=200ms", &id])?;
    eprintln!(
        "rotor rotation watch:\n{}{}",
        watched.stdout, watched.stderr
    );
    assert!(watched.success(), "{}{}", watched.stdout, watched.stderr);
    assert!(
        watched.stdout.contains(
            "completed: wave 2/2, 4/4 hosts done, 0 failed, 0 not attempted (accounts: 8 succeeded, 0 failed, 0 not attempted, of 8)"
        ),
        "{}",
        watched.stdout
    );
    for name in WAVE_HOSTS {
        for account in ["app1", "app2"] {
            let (password, version) = creds(&rotor, name, account)?;
            assert_eq!(
                version,
                if name == "wave-1" { 3 } else { 2 },
                "{name}/{account}"
            );
            assert_password(host(name)?, account, &password);
            assert_not_password(host(name)?, account, &initial_password(name, account));
        }
    }
    let outsider = host(OUTSIDER)?;
    assert_password(outsider, "app1", &initial_password(OUTSIDER, "app1"));

    // The controller dies during the canary: the run reads as interrupted after the restart,
    // the canary's account is left to the driver's recovery (it ends with a password that
    // logs in), and every later host is not_attempted and keeps the password it had.
    let before: Vec<(String, String)> = WAVE_HOSTS[1..]
        .iter()
        .map(|name| Ok((name.to_string(), creds(&rotor, name, "app1")?.0)))
        .collect::<Result<_>>()?;
    let started = rotor.cli_json(&[
        "write",
        "os/rotate",
        "host=wave-*",
        "account=app1",
        "dry_run=false",
    ])?;
    let id = run_id(&started)?;
    let run_path = format!("os/rotations/{id}");
    wait_until(
        "the canary wave-1 to be rotating",
        Duration::from_secs(10),
        || Ok(state_of(&rotor.cli_json(&["read", &run_path])?["data"], "wave-1") == ["running"]),
    )?;
    rotor.kill_controller()?;
    rotor.restart_controller()?;
    let interrupted = rotor.cli_json(&["read", &run_path])?;
    let data = &interrupted["data"];
    assert_eq!(data["state"], "interrupted", "{interrupted}");
    assert_eq!(state_of(data, "wave-1"), ["interrupted"], "{interrupted}");
    for (name, _) in &before {
        assert_eq!(state_of(data, name), ["not_attempted"], "{interrupted}");
    }
    let watched = rotor.controller().cli_output(&["rotation", "watch", &id])?;
    assert_eq!(
        watched.exit_code,
        Some(3),
        "{}{}",
        watched.stdout,
        watched.stderr
    );
    assert!(watched.stderr.contains("interrupted"), "{}", watched.stderr);
    wait_until(
        "the driver's recovery to settle wave-1/app1",
        Duration::from_secs(60),
        || {
            let read = rotor.cli_json(&["read", "os/hosts/wave-1/accounts/app1"])?;
            Ok(read["data"]["status"] == "in_sync")
        },
    )?;
    let (password, _) = creds(&rotor, "wave-1", "app1")?;
    assert_password(canary, "app1", &password);
    for (name, password) in &before {
        assert_password(host(name)?, "app1", password);
    }
    Ok(())
}

/// Two sites, one agent each, two hosts each, every rotation slowed to 3 s: with
/// `max_parallel_per_site=1` no poll of the run ever sees two hosts of one site rotating,
/// while hosts of different sites do rotate side by side (the cap is per site, not global),
/// and the run completes with every new password logging in.
#[test]
fn per_site_caps_bound_each_site_while_sites_rotate_side_by_side() -> Result<()> {
    if skip_requested("per_site_caps_bound_each_site_while_sites_rotate_side_by_side") {
        return Ok(());
    }
    let sites = [Site::new("pa")?, Site::new("pb")?];
    let mut hosts = Vec::new();
    for (site, prefix) in sites.iter().zip(["pa", "pb"]) {
        for index in 1..=2 {
            let name = format!("{prefix}-{index}");
            let host = site
                .host(&name)
                .with_parent("mgmt", "Mgmt-initial-1")
                .with_user("app1", &initial_password(&name, "app1"))
                .with_user("app2", &initial_password(&name, "app2"))
                .start()?;
            host.exec(&format!(
                "printf '#!/bin/sh\\nsleep 3\\nexec /usr/sbin/chpasswd \"$@\"\\n' > {SLOW_CHPASSWD}; chmod 0755 {SLOW_CHPASSWD}"
            ))?;
            grant_sudo(&host, SLOW_CHPASSWD, "rotor-slow")?;
            hosts.push((site, host));
        }
    }
    let rotor = Rotor::start(&[&sites[0], &sites[1]])?;
    for (site, host) in &hosts {
        register(&rotor, site, host, Some(SLOW_CHPASSWD))?;
    }

    let started = rotor.cli_json(&[
        "write",
        "os/rotate",
        "host=p*",
        "account=app1",
        "canary=1",
        "wave_size=3",
        "max_parallel_per_site=1",
        "dry_run=false",
    ])?;
    let id = run_id(&started)?;
    let run_path = format!("os/rotations/{id}");

    // Poll until the run ends, noting which hosts each poll saw rotating.
    let mut polls: Vec<Vec<String>> = Vec::new();
    let mut last = Value::Null;
    wait_until("the run to finish", Duration::from_secs(90), || {
        let read = rotor.cli_json(&["read", &run_path])?;
        let running: Vec<String> = account_states(&read["data"])
            .into_iter()
            .filter(|(_, _, state)| state == "running")
            .map(|(host, _, _)| host)
            .collect();
        polls.push(running);
        let finished = read["data"]["state"] != "running";
        last = read;
        Ok(finished)
    })?;
    eprintln!("polls: {polls:?}\nrun: {last}");
    let data = &last["data"];
    assert_eq!(data["state"], "completed", "{last}");
    assert_eq!(data["succeeded"], 4, "{last}");

    for running in &polls {
        for prefix in ["pa-", "pb-"] {
            let of_site = running
                .iter()
                .filter(|host| host.starts_with(prefix))
                .count();
            assert!(
                of_site <= 1,
                "two hosts of one site rotated at once under max_parallel_per_site=1: {running:?}"
            );
        }
    }
    assert!(
        polls.iter().any(|running| {
            running.iter().any(|host| host.starts_with("pa-"))
                && running.iter().any(|host| host.starts_with("pb-"))
        }),
        "hosts of the two sites never rotated side by side: {polls:?}"
    );
    for (_, host) in &hosts {
        let (password, version) = creds(&rotor, host.name(), "app1")?;
        assert_eq!(version, 2, "{}", host.name());
        assert_password(host, "app1", &password);
        assert_not_password(host, "app1", &initial_password(host.name(), "app1"));
        assert_password(host, "app2", &initial_password(host.name(), "app2"));
    }
    Ok(())
}
