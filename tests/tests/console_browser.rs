//! The web console (issue 22) in a real browser: Debian's headless Chromium driven over
//! WebDriver by chromedriver, against a controller and an agent in containers and two real
//! sshd hosts of one site.
//!
//! Proves, through what the browser renders: sign-in with a token (the session cookie is not
//! readable by scripts); the overview's counts equal what the API answers; an account whose
//! password was changed behind Rotor's back is found out of sync from the console (verify),
//! shown first with its reason, reconciled from the console and in sync again (the new
//! password proved by an SSH login); a fleet rotation planned (dry run) and started from the
//! console, watched until it completes (the page's own script refreshes it) with every
//! password proved by SSH, and another stopped from the console while its canary rotates (the
//! other host never started, its passwords proved unchanged); a lease (an SSH OTP) listed per
//! engine and revoked from the console; a token whose policy denies `mgmt-*` never gets
//! those passwords on any page, even by forging the reveal form; stored markup in a policy
//! name, a site, a host's `passwd_prompts` and an error echoed from a host is rendered as
//! text; the console's security headers. Screenshots of the main pages are written to a folder printed at the end.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rotor_tests::browser::{Browser, require_chromium, server_key_pin};
use rotor_tests::prelude::*;
use serde_json::Value;

const HOSTS: [&str; 2] = ["ui-1", "ui-2"];
const CHILDREN: [&str; 2] = ["app1", "app2"];
const PARENT: &str = "mgmt-admin";

fn initial(host: &str, account: &str) -> String {
    format!("{account}-{host}-Initial-1")
}

fn creds(rotor: &Rotor, host: &str, account: &str) -> Result<String> {
    let answer = rotor.cli_json(&["read", &format!("os/hosts/{host}/accounts/{account}/creds")])?;
    Ok(answer["data"]["password"]
        .as_str()
        .context("no password in creds")?
        .to_string())
}

fn status(rotor: &Rotor, host: &str, account: &str) -> Result<Value> {
    Ok(rotor.cli_json(&["read", &format!("os/hosts/{host}/accounts/{account}")])?["data"].clone())
}

/// Where screenshots go: `$ROTOR_CACHE/console-screenshots/<run>`, else beside the binaries.
fn screenshot_folder(run: &str) -> Result<PathBuf> {
    let base = match std::env::var("ROTOR_CACHE") {
        Ok(cache) => PathBuf::from(cache),
        Err(_) => std::env::current_exe()?
            .parent()
            .and_then(|deps| deps.parent())
            .context("test binary has no target directory")?
            .to_path_buf(),
    };
    Ok(base.join("console-screenshots").join(run))
}

/// The console's headers on `path`, read with curl pinned to the controller's key.
fn headers_of(api: &str, pin: &str, path: &str) -> Result<String> {
    let output = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--pinnedpubkey",
            &format!("sha256//{pin}"),
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .arg(format!("{api}{path}"))
        .output()
        .context("running curl")?;
    if !output.status.success() {
        bail!("curl {path}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_ascii_lowercase())
}

fn sign_in(browser: &Browser, api: &str, token: &str) -> Result<()> {
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/login"))?;
        if signed_in_already(browser)? {
            // An earlier attempt signed in; only its answer was lost.
            return Ok(());
        }
        browser.type_into("#token", token)?;
        browser.click("#sign-in-button")?;
        browser.wait_for(
            "the overview after sign-in",
            Duration::from_secs(30),
            || {
                Ok(browser.current_url()?.ends_with("/ui/")
                    && !browser.find_all("#status-counts")?.is_empty())
            },
        )
    })
}

/// Whether the sign-in page sent the browser on to the overview (a session exists).
fn signed_in_already(browser: &Browser) -> Result<bool> {
    Ok(browser.current_url()?.ends_with("/ui/") && !browser.find_all("#status-counts")?.is_empty())
}

/// The number the element `css` shows first (`3`, or `3 connected`).
fn number(browser: &Browser, css: &str) -> Result<u64> {
    let text = browser.text(css)?;
    text.split_whitespace()
        .next()
        .unwrap_or("")
        .parse()
        .with_context(|| format!("{css} shows {text:?}, not a number"))
}

/// Asserts `payload` is on the page as text and created no element matching `css`.
fn assert_rendered_as_text(browser: &Browser, payload: &str, css: &str) -> Result<()> {
    let text = browser.execute("return document.body.innerText;")?;
    let text = text.as_str().unwrap_or("");
    assert!(
        text.contains(payload),
        "{payload:?} is not shown as text on {}: {text}",
        browser.current_url()?
    );
    assert!(
        browser.find_all(css)?.is_empty(),
        "{payload:?} became markup ({css}) on {}",
        browser.current_url()?
    );
    Ok(())
}

#[test]
fn console_in_a_real_browser() -> Result<()> {
    if skip_requested("console_in_a_real_browser") {
        return Ok(());
    }
    let started = Instant::now();
    // Fail before any container starts when the browser is missing.
    require_chromium()?;
    let site = Site::new("ui")?;
    let mut hosts = Vec::new();
    for name in HOSTS {
        let mut builder = site.host(name).with_parent("mgmt", &initial(name, "mgmt"));
        for child in CHILDREN {
            builder = builder.with_user(child, &initial(name, child));
        }
        hosts.push(builder.start()?);
    }
    let rotor = Rotor::start(&[&site])?;
    for host in &hosts {
        rotor.register_os_host(&site, host, &[])?;
        let accounts = format!("os/hosts/{}/accounts", host.name());
        rotor.cli(&[
            "write",
            &format!("{accounts}/{PARENT}"),
            "username=mgmt",
            &format!("password={}", initial(host.name(), "mgmt")),
            "disable_automated_rotation=true",
        ])?;
        for child in CHILDREN {
            rotor.cli(&[
                "write",
                &format!("{accounts}/{child}"),
                &format!("username={child}"),
                &format!("password={}", initial(host.name(), child)),
                &format!("parent_ref={PARENT}"),
                "disable_automated_rotation=true",
            ])?;
        }
    }
    // A policy that may run the OS engine but not read or touch any mgmt-* account, and a
    // token holding it plus a policy name that is markup.
    rotor.cli(&[
        "write",
        "sys/policies/acl/console-ops",
        "policy=path \"os/*\" { capabilities = [\"create\", \"read\", \"update\", \"list\"] }\n\
         path \"os/hosts/+/accounts/mgmt-*\" { capabilities = [\"deny\"] }\n\
         path \"agents/*\" { capabilities = [\"read\", \"list\"] }\n\
         path \"sys/metrics\" { capabilities = [\"read\"] }",
    ])?;
    let created = rotor.cli_json(&[
        "write",
        "auth/token/create",
        "policies=console-ops,<b id=xss-policy>policy</b>",
        "display_name=ops",
    ])?;
    let limited_token = created["auth"]["client_token"]
        .as_str()
        .context("auth/token/create answered no client_token")?
        .to_string();
    let root_token = rotor.controller().root_token().to_string();

    let api = rotor.api_url()?;
    let pin = server_key_pin(api.trim_start_matches("https://"))?;
    let run_name = format!(
        "{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
        std::process::id()
    );
    let shots = screenshot_folder(&run_name)?;
    let browser = Browser::start(&pin, &shots)?;

    // Security headers on a page, the script and an unknown path.
    for path in ["/ui/login", "/ui/static/console.js", "/ui/nowhere"] {
        let headers = headers_of(&api, &pin, path)?;
        for expected in [
            "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self';",
            "frame-ancestors 'none'",
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "cache-control: no-store",
        ] {
            assert!(
                headers.contains(expected),
                "{path}: no {expected:?} in:\n{headers}"
            );
        }
        assert!(!headers.contains("unsafe-inline"), "{path}: {headers}");
    }

    // Sign in as root; the session cookie is not visible to scripts.
    browser.goto(&format!("{api}/ui/"))?;
    assert!(
        browser.current_url()?.ends_with("/ui/login"),
        "an anonymous visit goes to sign-in"
    );
    browser.screenshot("01-sign-in")?;
    // With the keyboard alone: the token field has the focus, Enter signs in.
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/login"))?;
        if signed_in_already(&browser)? {
            // An earlier attempt signed in; only its answer was lost.
            return Ok(());
        }
        assert_eq!(
            browser.focused_id()?,
            "token",
            "the sign-in page focuses the token field"
        );
        browser.type_into_focused(&format!("{root_token}\u{E007}"))?;
        browser.wait_for(
            "the overview after sign-in",
            Duration::from_secs(30),
            || {
                Ok(browser.current_url()?.ends_with("/ui/")
                    && !browser.find_all("#status-counts")?.is_empty())
            },
        )
    })?;
    assert_eq!(
        browser.execute("return document.cookie;")?,
        "",
        "the session cookie is HttpOnly"
    );
    assert!(
        !browser.source()?.contains(&root_token),
        "the token is never sent back to the browser"
    );

    // The overview's counts are what the API says.
    let mut in_sync = 0;
    for host in HOSTS {
        for account in [PARENT, CHILDREN[0], CHILDREN[1]] {
            if status(&rotor, host, account)?["status"] == "in_sync" {
                in_sync += 1;
            }
        }
    }
    assert_eq!(in_sync, 6);
    assert_eq!(number(&browser, "#count-all-in_sync")?, in_sync);
    assert_eq!(number(&browser, "#count-ui-in_sync")?, in_sync);
    assert_eq!(number(&browser, "#count-all-out_of_sync")?, 0);
    assert_eq!(
        number(&browser, "#agents-up-ui")?,
        1,
        "the site's agent is connected"
    );
    assert_eq!(number(&browser, "#agents-down-ui")?, 0);
    browser.screenshot("02-overview")?;

    // A password changed behind Rotor's back: verify from the console finds it out of sync.
    let host = &hosts[0];
    host.set_password("app1", "Changed-behind-1")?;
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/hosts/ui-1/accounts/app1"))?;
        browser.click("#verify")?;
        browser.wait_for("the verify outcome", Duration::from_secs(60), || {
            Ok(browser
                .text("#flash")
                .unwrap_or_default()
                .contains("out of sync"))
        })
    })?;
    let shown = browser.find("#account-status")?;
    assert_eq!(
        browser.attribute(&shown, "data-status")?.as_deref(),
        Some("out_of_sync")
    );
    assert_eq!(status(&rotor, "ui-1", "app1")?["status"], "out_of_sync");
    browser.screenshot("03-account-out-of-sync")?;

    // The overview lists it first, with its reason, and reconciles it.
    browser.goto(&format!("{api}/ui/"))?;
    assert_eq!(number(&browser, "#count-all-out_of_sync")?, 1);
    let first = browser.find("#attention tbody tr")?;
    assert_eq!(
        browser.attribute(&first, "data-account")?.as_deref(),
        Some("app1")
    );
    assert!(
        !browser.text("#attention .reason")?.is_empty(),
        "the reason is shown"
    );
    browser.screenshot("04-overview-out-of-sync")?;
    browser.click("#reconcile-ui-1-app1")?;
    let reconciled_in_page =
        browser.wait_for("the reconcile outcome", Duration::from_secs(60), || {
            Ok(browser
                .text("#flash")
                .unwrap_or_default()
                .contains("reconcile committed version"))
        });
    if reconciled_in_page.is_err() && browser.dropped_by_network_change()? {
        // The answer was lost on its way back (the reconcile itself may well have run): the
        // overview, loaded again, must show the outcome.
        browser.goto(&format!("{api}/ui/"))?;
    } else {
        reconciled_in_page?;
    }
    assert_eq!(status(&rotor, "ui-1", "app1")?["status"], "in_sync");
    assert_eq!(number(&browser, "#count-all-out_of_sync")?, 0);
    let reconciled = creds(&rotor, "ui-1", "app1")?;
    assert_password(host, "app1", &reconciled);
    assert_not_password(host, "app1", "Changed-behind-1");

    // A fleet rotation: the plan first, then the run, watched until it completes.
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/rotations"))?;
        browser.type_into("#plan-site", "ui")?;
        browser.type_into("#plan-account", "app*")?;
        browser.type_into("#plan-wave_size", "1")?;
        browser.click("#plan-button")?;
        browser.wait_for("the plan", Duration::from_secs(30), || {
            Ok(!browser.find_all("#plan-waves")?.is_empty())
        })
    })?;
    let summary = browser.text("#plan-summary")?;
    assert!(
        summary.contains("4 accounts on 2 hosts in 2 waves"),
        "{summary}"
    );
    browser.screenshot("05-rotation-plan")?;
    let before: Vec<String> = HOSTS
        .iter()
        .flat_map(|host| CHILDREN.map(|child| (host.to_string(), child)))
        .map(|(host, child)| creds(&rotor, &host, child))
        .collect::<Result<_>>()?;
    browser.click("#start-button")?;
    let run_page = browser.wait_for("the run page", Duration::from_secs(30), || {
        Ok(!browser.find_all("#run")?.is_empty())
    });
    if run_page.is_err() && browser.dropped_by_network_change()? {
        // The run may have started without its answer reaching the browser: open the one run.
        let runs = rotor.cli_json(&["list", "os/rotations"])?;
        let id = runs["data"]["keys"][0]
            .as_str()
            .context("no fleet rotation was started")?;
        browser.goto(&format!("{api}/ui/rotations/{id}"))?;
    } else {
        run_page?;
    }
    let run_url = browser.current_url()?;
    let run_id = run_url.rsplit('/').next().unwrap_or("").to_string();
    browser.screenshot("06-rotation-running")?;
    browser.wait_for(
        "the fleet rotation to complete in the page",
        Duration::from_secs(180),
        || {
            if browser.dropped_by_network_change()? {
                // The script's reload of the finished run was dropped: load it again (a GET).
                browser.goto(&run_url)?;
            }
            Ok(browser
                .text("#run-state")
                .unwrap_or_default()
                .contains("completed"))
        },
    )?;
    let run_state = browser.text("#run-state")?;
    assert!(run_state.contains("4 succeeded, 0 failed"), "{run_state}");
    browser.screenshot("07-rotation-done")?;
    let run = rotor.cli_json(&["read", &format!("os/rotations/{run_id}")])?;
    assert_eq!(run["data"]["state"], "completed", "{run}");
    assert_eq!(run["data"]["succeeded"], 4, "{run}");
    let mut index = 0;
    for (host_index, name) in HOSTS.iter().enumerate() {
        for child in CHILDREN {
            let now = creds(&rotor, name, child)?;
            assert_ne!(now, before[index], "{name}/{child} rotated");
            assert_password(&hosts[host_index], child, &now);
            index += 1;
        }
    }

    // Stored markup: a host's passwd_prompts (free text an operator writes) and an error a
    // host prints.
    let other = &hosts[1];
    other.exec(
        "printf '#!/bin/sh\\necho \"<b id=xss-host-error>host said no</b>: No such file or directory\" >&2\\nexit 127\\n' > /usr/local/sbin/xss-chpasswd \
         && chmod 755 /usr/local/sbin/xss-chpasswd \
         && echo 'mgmt ALL=(root) NOPASSWD: /usr/local/sbin/xss-chpasswd' > /etc/sudoers.d/xss && chmod 440 /etc/sudoers.d/xss",
    )?;
    rotor.cli(&[
        "write",
        "os/hosts/ui-2",
        "passwd_prompts={\"new_password_prompts\": [\"<b id=xss-prompts>New password:</b>\"]}",
    ])?;
    browser.goto(&format!("{api}/ui/hosts/ui-2/accounts/app2"))?;
    assert_rendered_as_text(
        &browser,
        "<b id=xss-prompts>New password:</b>",
        "#xss-prompts",
    )?;
    rotor.cli(&[
        "write",
        "os/hosts/ui-2",
        "passwd_prompts=",
        "chpasswd_command=/usr/local/sbin/xss-chpasswd",
    ])?;
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/hosts/ui-2/accounts/app2"))?;
        browser.click("#rotate")?;
        browser.wait_for(
            "the failed rotation's message",
            Duration::from_secs(60),
            || {
                Ok(browser
                    .text("#flash")
                    .unwrap_or_default()
                    .contains("host said no"))
            },
        )
    })?;
    assert_rendered_as_text(
        &browser,
        "<b id=xss-host-error>host said no</b>",
        "#xss-host-error",
    )?;
    browser.screenshot("08-account-host-error")?;
    browser.goto(&format!("{api}/ui/"))?;
    assert_rendered_as_text(
        &browser,
        "<b id=xss-host-error>host said no</b>",
        "#xss-host-error",
    )?;
    browser.screenshot("09-overview-rotation-failing")?;
    // A site that is markup, echoed in the API's refusal.
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/rotations"))?;
        browser.type_into("#plan-site", "<img src=x id=xss-site>")?;
        browser.click("#plan-button")?;
        browser.wait_for("the refusal", Duration::from_secs(30), || {
            Ok(!browser.find_all("#plan-error")?.is_empty())
        })
    })?;
    assert_rendered_as_text(&browser, "<img src=x id=xss-site>", "#xss-site")?;
    rotor.cli(&[
        "write",
        "os/hosts/ui-2",
        "chpasswd_command=/usr/sbin/chpasswd",
    ])?;

    // Stop a fleet rotation from the console: the canary (ui-1, whose chpasswd takes 6 s)
    // finishes, ui-2 is never started and keeps its passwords.
    hosts[0].exec(
        "printf '#!/bin/sh\\nsleep 6\\nexec /usr/sbin/chpasswd\\n' > /usr/local/sbin/slow-chpasswd \
         && chmod 755 /usr/local/sbin/slow-chpasswd \
         && echo 'mgmt ALL=(root) NOPASSWD: /usr/local/sbin/slow-chpasswd' > /etc/sudoers.d/slow && chmod 440 /etc/sudoers.d/slow",
    )?;
    rotor.cli(&[
        "write",
        "os/hosts/ui-1",
        "chpasswd_command=/usr/local/sbin/slow-chpasswd",
    ])?;
    let untouched: Vec<String> = CHILDREN
        .iter()
        .map(|child| creds(&rotor, "ui-2", child))
        .collect::<Result<_>>()?;
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/rotations"))?;
        browser.type_into("#plan-host", "ui-*")?;
        browser.type_into("#plan-account", "app*")?;
        browser.type_into("#plan-wave_size", "1")?;
        browser.click("#plan-button")?;
        browser.wait_for("the plan", Duration::from_secs(30), || {
            Ok(!browser.find_all("#start-button")?.is_empty())
        })
    })?;
    browser.click("#start-button")?;
    browser.wait_for(
        "the running run's stop button",
        Duration::from_secs(30),
        || Ok(!browser.find_all("#stop-button")?.is_empty()),
    )?;
    let stopped_url = browser.current_url()?;
    let stopped_id = stopped_url.rsplit('/').next().unwrap_or("").to_string();
    browser.click("#stop-button")?;
    browser.wait_for("the run to stop", Duration::from_secs(60), || {
        if browser.dropped_by_network_change()? {
            browser.goto(&stopped_url)?;
        }
        Ok(browser
            .text("#run-state")
            .unwrap_or_default()
            .contains("stopped"))
    })?;
    let reason = browser.text("#stop-reason")?;
    assert!(reason.contains("stopped by an operator"), "{reason}");
    browser.screenshot("10-rotation-stopped")?;
    let run = rotor.cli_json(&["read", &format!("os/rotations/{stopped_id}")])?;
    assert_eq!(run["data"]["state"], "stopped", "{run}");
    assert_eq!(run["data"]["succeeded"], 2, "the canary finished: {run}");
    assert_eq!(run["data"]["not_attempted"], 2, "{run}");
    for (child, password) in CHILDREN.iter().zip(&untouched) {
        assert_eq!(&creds(&rotor, "ui-2", child)?, password);
        assert_password(&hosts[1], child, password);
    }

    // A lease (an SSH OTP) is listed by engine and revoked from the console.
    rotor.cli(&[
        "write",
        "ssh/roles/console",
        "key_type=otp",
        "default_user=app1",
        "cidr_list=0.0.0.0/0",
    ])?;
    let issued = rotor.cli_json(&["write", "ssh/creds/console", "ip=192.0.2.7"])?;
    let lease_id = issued["lease_id"]
        .as_str()
        .context("ssh/creds answered no lease_id")?
        .to_string();
    browser.goto(&format!("{api}/ui/"))?;
    let by_engine = browser.text("#leases-by-engine")?;
    assert!(by_engine.contains("ssh"), "{by_engine}");
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/leases"))?;
        let listed = browser.text("#leases")?;
        assert!(listed.contains(&lease_id), "{listed}");
        browser.screenshot("10a-leases")?;
        browser.click("#revoke-0")?;
        browser.wait_for("the revocation", Duration::from_secs(30), || {
            Ok(browser
                .text("#flash")
                .unwrap_or_default()
                .contains("revoked"))
        })
    })?;
    assert!(
        !browser.find_all("#leases-none")?.is_empty(),
        "no lease is left"
    );
    let lookup = rotor.controller().cli_output(&[
        "write",
        "sys/leases/lookup",
        &format!("lease_id={lease_id}"),
    ])?;
    assert!(
        !lookup.success(),
        "the revoked lease is gone: {}",
        lookup.stdout
    );

    // The limited token: no mgmt-* password on any page, even through a forged reveal.
    browser.retrying_network_changes(|| {
        if browser.find_all("#sign-out")?.is_empty() {
            browser.goto(&format!("{api}/ui/"))?;
        }
        browser.click("#sign-out")?;
        browser.wait_for("the sign-in page", Duration::from_secs(30), || {
            Ok(browser.current_url()?.ends_with("/ui/login"))
        })
    })?;
    sign_in(&browser, &api, &limited_token)?;
    assert_rendered_as_text(&browser, "<b id=xss-policy>policy</b>", "#xss-policy")?;
    let secrets: Vec<String> = HOSTS
        .iter()
        .map(|host| creds(&rotor, host, PARENT))
        .collect::<Result<_>>()?;
    let mut pages = vec![
        format!("{api}/ui/"),
        format!("{api}/ui/accounts"),
        format!("{api}/ui/leases"),
        format!("{api}/ui/rotations"),
        format!("{api}/ui/rotations/{run_id}"),
    ];
    for host in HOSTS {
        pages.push(format!("{api}/ui/hosts/{host}/accounts/{PARENT}"));
        pages.push(format!("{api}/ui/accounts?q={host}"));
    }
    for page in &pages {
        browser.goto(page)?;
        let source = browser.source()?;
        for secret in &secrets {
            assert!(
                !source.contains(secret.as_str()),
                "a mgmt-* password is on {page}"
            );
        }
    }
    browser.goto(&format!("{api}/ui/accounts"))?;
    let hidden = browser.find_all("tr.account-row[data-status=hidden]")?;
    assert_eq!(
        hidden.len(),
        2,
        "both mgmt-* accounts are listed as not readable"
    );
    browser.screenshot("11-accounts-limited-token")?;
    browser.goto(&format!("{api}/ui/hosts/ui-1/accounts/{PARENT}"))?;
    assert!(!browser.find_all("#account-denied")?.is_empty());
    // Its own reveal works for app1 ...
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/hosts/ui-1/accounts/app1"))?;
        browser.click("#reveal")?;
        browser.wait_for("the revealed password", Duration::from_secs(30), || {
            Ok(!browser.find_all("#revealed-password")?.is_empty())
        })
    })?;
    assert_eq!(
        browser.text("#revealed-password")?,
        creds(&rotor, "ui-1", "app1")?
    );
    browser.screenshot("12-reveal")?;
    // ... and the same form pointed at mgmt-admin is refused by the API's ACL.
    browser.retrying_network_changes(|| {
        browser.goto(&format!("{api}/ui/hosts/ui-1/accounts/app1"))?;
        browser.execute(&format!(
            "var form = document.querySelector('form[action$=\"/reveal\"]'); form.action = '/ui/hosts/ui-1/accounts/{PARENT}/reveal'; form.submit(); return true;"
        ))?;
        browser.wait_for("the refused reveal", Duration::from_secs(30), || {
            Ok(browser
                .text("#flash")
                .unwrap_or_default()
                .contains("reveal refused: permission denied"))
        })
    })?;
    let source = browser.source()?;
    for secret in &secrets {
        assert!(
            !source.contains(secret.as_str()),
            "a forged reveal showed a mgmt-* password"
        );
    }

    println!(
        "console_in_a_real_browser: passed in {} s; screenshots of the console's pages are in {}",
        started.elapsed().as_secs(),
        shots.display()
    );
    Ok(())
}
