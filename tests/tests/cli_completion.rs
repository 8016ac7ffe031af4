//! Issue 21 item 5, shell completions: the script `rotor completion bash` prints (the built
//! binary's), loaded into a real bash, registers `_rotor` for `rotor` (`complete -p`) and
//! completes, for every row of the CLI's command table, its subcommands and its flags (what
//! `compgen` would offer at the prompt), and file names after a flag that takes a value.

mod support;

use std::process::Command;

use anyhow::{Context, Result, bail};
use rotor_controller::cli::commands::{COMMANDS, subcommands_of};
use support::binary;

/// Runs `script` in bash after loading `rotor completion bash`; answers stdout.
fn bash_with_completion(script: &str) -> Result<String> {
    let rotor = binary("rotor")?;
    let full = format!(
        "source <(\"$0\" completion bash) || exit 9\n\
         complete_at() {{ COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _rotor; printf '%s\\n' \"${{COMPREPLY[@]}}\"; }}\n\
         {script}"
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&full)
        .arg(&rotor)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running bash")?;
    if !output.status.success() {
        bail!(
            "bash failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

#[test]
fn bash_registers_the_completion_for_rotor() -> Result<()> {
    let registered = bash_with_completion("complete -p rotor")?;
    assert!(
        registered.contains("-F _rotor") && registered.trim_end().ends_with(" rotor"),
        "{registered}"
    );
    Ok(())
}

#[test]
fn bash_completes_every_command_subcommand_and_flag() -> Result<()> {
    // One bash for all: a line per row, `<row words>|<what completes after them>`.
    let mut script = String::new();
    for command in COMMANDS {
        let words = command.words.join(" ");
        script.push_str(&format!(
            "printf '%s|' '{words}'; complete_at rotor {words} '' | tr '\\n' ' '; echo\n"
        ));
    }
    script.push_str("printf '%s|' ''; complete_at rotor '' | tr '\\n' ' '; echo\n");
    let answers = bash_with_completion(&script)?;
    let offered = |words: &str| -> Vec<String> {
        answers
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{words}|")))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect()
    };

    let top = offered("");
    for first in subcommands_of(&[]) {
        assert!(
            top.iter().any(|word| word == first),
            "`rotor <TAB>` lacks {first}: {top:?}"
        );
    }
    for command in COMMANDS {
        let words = command.words.join(" ");
        let after = offered(&words);
        for sub in subcommands_of(command.words) {
            assert!(
                after.iter().any(|word| word == sub),
                "`rotor {words} <TAB>` lacks {sub}: {after:?}"
            );
        }
        for flag in command.flags {
            let spelled = format!("-{}", flag.name);
            assert!(
                after.contains(&spelled),
                "`rotor {words} <TAB>` lacks {spelled}: {after:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn bash_completes_a_prefix_and_files_after_a_value_flag() -> Result<()> {
    let answers = bash_with_completion(
        "complete_at rotor tok; echo ---; complete_at rotor token create -po; echo ---; \
         complete_at rotor operator init -config Carg",
    )?;
    let parts: Vec<&str> = answers.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{answers}");
    assert_eq!(parts[0].trim(), "token");
    assert_eq!(parts[1].trim(), "-policy");
    assert_eq!(parts[2].trim(), "Cargo.toml", "a file in tests/");
    Ok(())
}
