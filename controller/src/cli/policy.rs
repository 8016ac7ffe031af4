//! `rotor policy write NAME FILE|- | read NAME | list | delete NAME`, as `vault policy` does.
//!
//! Owns reading the policy document (a file or stdin) and the `sys/policies/acl/` requests.
//! Must not parse or judge policies: the server validates them and says what is wrong.

use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

use super::client::Client;
use super::flags::{self, FlagSpec, Parsed};
use super::output::Format;

pub(super) const FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FlagSpec {
        name: "address",
        aliases: &[],
        takes_value: true,
        help: "server address (default $ROTOR_ADDR)",
    },
];

const POLICY_HELP: &str = "Usage: rotor policy <subcommand> [flags] [args]

    write NAME FILE     Upload a policy (HCL or JSON); FILE - reads stdin
    read NAME           Print a policy's document
    list                List policy names
    delete NAME         Delete a policy
";

fn parse(args: &[String]) -> Result<(Parsed, Format, Client)> {
    let parsed = flags::parse_or_help(FLAGS, POLICY_HELP, args)?;
    let format = Format::parse(parsed.value("format")).map_err(|e| anyhow!(e))?;
    let client = Client::from_env(parsed.value("address"))?;
    Ok((parsed, format, client))
}

/// The policy name, as the only positional argument.
fn name_argument(parsed: &Parsed, usage: &str) -> Result<String> {
    match parsed.positional.as_slice() {
        [name] if !name.trim().is_empty() => Ok(name.trim().to_string()),
        _ => bail!("usage: {usage}"),
    }
}

fn policy_path(name: &str) -> String {
    format!("sys/policies/acl/{name}")
}

/// `rotor policy SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{POLICY_HELP}");
    };
    match subcommand.as_str() {
        "write" => write(rest),
        "read" => read(rest),
        "list" => list(rest),
        "delete" => delete(rest),
        "-h" | "-help" | "--help" | "help" => {
            print!("{}", flags::help_text(POLICY_HELP, FLAGS));
            Ok(())
        }
        other => bail!("unknown policy subcommand '{other}'\n\n{POLICY_HELP}"),
    }
}

fn write(args: &[String]) -> Result<()> {
    let (parsed, _, client) = parse(args)?;
    let [name, source] = parsed.positional.as_slice() else {
        bail!("usage: rotor policy write NAME FILE (FILE - reads the policy from stdin)");
    };
    let text = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the policy from stdin")?;
        text
    } else {
        std::fs::read_to_string(source)
            .with_context(|| format!("reading the policy file {source}"))?
    };
    if text.trim().is_empty() {
        bail!("the policy document from {source} is empty");
    }
    let body = Map::from_iter([("policy".to_string(), Value::String(text))]);
    client.call("PUT", &policy_path(name), Some(&body))?;
    println!("Success! Uploaded policy: {name}");
    Ok(())
}

fn read(args: &[String]) -> Result<()> {
    let (parsed, format, client) = parse(args)?;
    let name = name_argument(&parsed, "rotor policy read NAME")?;
    let answer = client.call("GET", &policy_path(&name), None)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
        Format::Raw => println!("{answer}"),
        Format::Table => {
            let text = answer
                .pointer("/data/policy")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("the server's answer has no policy document"))?;
            println!("{}", text.trim_end());
        }
    }
    Ok(())
}

fn list(args: &[String]) -> Result<()> {
    let (parsed, format, client) = parse(args)?;
    if let Some(extra) = parsed.positional.first() {
        bail!("unexpected argument '{extra}': rotor policy list takes none");
    }
    let answer = client.call("LIST", "sys/policies/acl", None)?;
    let keys = answer
        .pointer("/data/keys")
        .cloned()
        .unwrap_or_else(|| json!([]));
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&keys)?),
        Format::Raw => println!("{keys}"),
        Format::Table => {
            for key in keys.as_array().into_iter().flatten() {
                println!("{}", key.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

fn delete(args: &[String]) -> Result<()> {
    let (parsed, _, client) = parse(args)?;
    let name = name_argument(&parsed, "rotor policy delete NAME")?;
    client.call("DELETE", &policy_path(&name), None)?;
    println!("Success! Deleted policy: {name}");
    Ok(())
}
