//! Issue 21, "The newcomer path is scripted as a test": a fresh clone of this commit, the
//! README's set-up commands read from the clone's README (exactly two, both scripts there
//! and valid bash), the first one run from the clone as printed and left running as a
//! newcomer would, then every command it prints under "Then try:" run with the `export`
//! lines it printed, each one checked, and finally Ctrl-C, after which nothing it started is
//! left. The second command is the whole suite, which this test is part of: it is checked
//! to exist and parse, not run from inside itself.
//!
//! The clone is of the committed HEAD: uncommitted changes are not in it. The demo uses this
//! build's binaries (`ROTOR_BIN_DIR`, which the README documents) instead of rebuilding them.

mod demo_common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use demo_common::{DEMO_TIMEOUT, assert_cleaned_up, interrupt, start_demo, this_checkout};
use rotor_tests::process::run_program;
use rotor_tests::skip_requested;

/// One suggested command; a fleet rotation of four accounts is the slowest, in seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn a_fresh_clone_follows_the_readme_and_every_suggested_command_works() -> Result<()> {
    if skip_requested("newcomer_path") {
        return Ok(());
    }
    let started = Instant::now();
    let scratch = tempfile::tempdir()?;
    let clone = scratch.path().join("rotor");
    fresh_clone(&this_checkout(), &clone)?;

    let commands = readme_setup_commands(&std::fs::read_to_string(clone.join("README.md"))?)?;
    assert_eq!(
        commands,
        ["bash scripts/demo.sh", "bash scripts/test.sh"],
        "the README's set-up block must hold exactly the two commands"
    );
    for script in ["scripts/demo.sh", "scripts/test.sh"] {
        let checked = Command::new("bash")
            .arg("-n")
            .arg(clone.join(script))
            .output()?;
        assert!(
            checked.status.success(),
            "{script} in the clone does not parse: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }

    // The first command, as printed, left running until Ctrl-C.
    let mut demo = start_demo(&clone, &[])?;
    let shown = demo.wait_for_output("`running until Ctrl-C`", DEMO_TIMEOUT, |output| {
        output.contains("running until Ctrl-C")
    });
    if let Err(error) = shown {
        let _ = interrupt(&mut demo);
        return Err(error);
    }
    eprintln!(
        "newcomer_path: the demo is up after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tried = try_every_suggestion(&demo.stdout(), &clone);
    let exit_code = interrupt(&mut demo)?;
    let stdout = demo.stdout();
    tried?;
    assert_eq!(
        exit_code,
        Some(130),
        "Ctrl-C ends the demo with 130:\n{stdout}\n{}",
        demo.stderr()
    );
    assert_cleaned_up(&stdout)?;
    eprintln!(
        "newcomer_path: clone, demo, every suggestion and the clean-up took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `git clone` of `checkout`, at its HEAD commit.
fn fresh_clone(checkout: &Path, clone: &Path) -> Result<()> {
    let head = git(checkout, &["rev-parse", "HEAD"])?;
    let checkout_text = checkout.to_string_lossy().to_string();
    let clone_text = clone.to_string_lossy().to_string();
    git(
        Path::new("/"),
        &[
            "clone",
            "--quiet",
            "--no-checkout",
            &checkout_text,
            &clone_text,
        ],
    )?;
    git(clone, &["checkout", "--quiet", head.trim()])?;
    Ok(())
}

fn git(directory: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(directory)
        .output()
        .context("running git")?;
    if !output.status.success() {
        bail!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// The commands of the first code block under `## Set up`, comments removed.
fn readme_setup_commands(readme: &str) -> Result<Vec<String>> {
    let section = readme
        .split("\n## Set up")
        .nth(1)
        .context("the README has no `## Set up` section")?;
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .context("the `## Set up` section has no ```sh block")?;
    Ok(block
        .lines()
        .map(|line| {
            line.split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .filter(|line| !line.is_empty())
        .collect())
}

/// Runs each command of the demo's "Then try:" block, with its `export` lines, in order;
/// `RUN_ID` is the id the fleet rotation before it printed.
fn try_every_suggestion(demo_output: &str, clone: &Path) -> Result<()> {
    let exports: Vec<&str> = demo_output
        .lines()
        .filter(|line| line.starts_with("export "))
        .collect();
    assert!(
        exports.iter().any(|line| line.starts_with("export PATH=")),
        "{demo_output}"
    );
    let suggestions = suggested_commands(demo_output)?;
    assert!(suggestions.len() >= 6, "{suggestions:#?}");
    let mut run_id: Option<String> = None;
    for suggestion in &suggestions {
        let command = match &run_id {
            Some(id) => suggestion.replace("RUN_ID", id),
            None if suggestion.contains("RUN_ID") => {
                bail!("`{suggestion}` needs a RUN_ID and no command before it printed one")
            }
            None => suggestion.clone(),
        };
        let script = format!("set -e\n{}\n{command}\n", exports.join("\n"));
        let mut shell = Command::new("bash");
        shell.arg("-c").arg(&script).current_dir(clone);
        let started = Instant::now();
        let output = run_program(shell, None, COMMAND_TIMEOUT)
            .with_context(|| format!("running `{command}`"))?;
        assert!(
            output.success(),
            "`{command}` failed ({}): {}",
            output.describe_exit(),
            output.diagnostics()
        );
        eprintln!(
            "newcomer_path: `{}` ok in {:.1} s",
            command.lines().next().unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
        check_answer(&command, &output.stdout)?;
        if command.contains("os/rotate") {
            // The answer is a `Key  Value` table; the run's id is the `id` row.
            let id = output.stdout.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("id")).then(|| words.next()).flatten()
            });
            run_id = Some(
                id.with_context(|| format!("`{command}` printed no id row:\n{}", output.stdout))?
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// What each kind of suggestion must show beyond exiting 0.
fn check_answer(command: &str, stdout: &str) -> Result<()> {
    // A login's proof is its exit status (the remote shell's), checked by the caller.
    let expected: &[&str] = if command.contains("sshpass") {
        &[]
    } else if command.contains("/creds") {
        &["password", "version"]
    } else if command.contains("/versions") {
        &["current_version", "versions"]
    } else if command.contains("rotation watch") {
        &["version"]
    } else {
        &[]
    };
    for text in expected {
        if !stdout.contains(text) {
            bail!("`{command}` printed no `{text}`:\n{stdout}");
        }
    }
    Ok(())
}

/// The commands after "Then try:", a line ending in `\` joined with the next.
fn suggested_commands(demo_output: &str) -> Result<Vec<String>> {
    let block = demo_output
        .split("Then try:\n")
        .nth(1)
        .context("the demo printed no `Then try:` block")?;
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in block.lines().skip_while(|line| line.trim().is_empty()) {
        if line.trim().is_empty() {
            break;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push_str("\\\n");
            continue;
        }
        pending.push_str(line);
        commands.push(std::mem::take(&mut pending));
    }
    Ok(commands)
}

#[test]
fn suggestions_are_read_with_their_continuation_lines() -> Result<()> {
    let output = "Then try:\n\nrotor read a   # one\nX=1 \\\n  rotor b\n\n[ 1.0s] running\n";
    assert_eq!(
        suggested_commands(output)?,
        ["rotor read a   # one", "X=1 \\\n  rotor b"]
    );
    Ok(())
}
