//! `rotor secrets enable | list | disable`, as `vault secrets` does (and `rotor mount TYPE`,
//! the older spelling the SSH reference uses).
//!
//! Owns turning these commands into `sys/mounts` requests and printing Vault's lines. Must
//! not judge types or paths: the server does, and says what is wrong.

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value, json};

use super::client::Client;
use super::flags::{self, FlagSpec, Parsed};
use super::output::{self, Format};

pub(super) const ENABLE_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "path",
        aliases: &[],
        takes_value: true,
        help: "where to mount the engine (default: the type's name)",
    },
    FlagSpec {
        name: "description",
        aliases: &[],
        takes_value: true,
        help: "what the mount is for",
    },
    FlagSpec {
        name: "plugin-name",
        aliases: &[],
        takes_value: true,
        help: "the engine's name when TYPE is `plugin`",
    },
    FlagSpec {
        name: "local",
        aliases: &[],
        takes_value: false,
        help: "accepted for Vault compatibility (Rotor does not replicate)",
    },
    FlagSpec {
        name: "seal-wrap",
        aliases: &[],
        takes_value: false,
        help: "accepted for Vault compatibility (Rotor seals every secret value)",
    },
    flags::ADDRESS,
];

pub(super) const LIST_FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FlagSpec {
        name: "detailed",
        aliases: &[],
        takes_value: false,
        help: "also print each mount's accessor and options",
    },
    flags::ADDRESS,
];

pub(super) const DISABLE_FLAGS: &[FlagSpec] = &[flags::ADDRESS];

const SECRETS_HELP: &str = "Usage: rotor secrets <subcommand> [flags] [args]

    enable [-path=PATH] TYPE   Mount an engine: os (also vault-plugin-secrets-os) or ssh
    list                       List mounted engines
    disable PATH               Unmount the engine at PATH

    $ rotor secrets enable -path=os vault-plugin-secrets-os
    $ rotor secrets list

Each subcommand answers -h with its flags.
";

const ENABLE_USAGE: &str = "Usage: rotor secrets enable [flags] TYPE

  Mounts a secrets engine of TYPE (os, vault-plugin-secrets-os, ssh) at -path, by default
  at the type's name. os/ and ssh/ are mounted when the server is initialised: enabling the
  same type there again changes nothing.

      $ rotor secrets enable -path=os vault-plugin-secrets-os
      $ rotor secrets enable ssh
";

const LIST_USAGE: &str = "Usage: rotor secrets list [flags]

  Lists the mounted secrets engines.
";

const DISABLE_USAGE: &str = "Usage: rotor secrets disable [flags] PATH

  Unmounts the secrets engine at PATH.

      $ rotor secrets disable os/
";

/// One positional argument, or the usage.
pub(super) fn single_argument(parsed: &Parsed, what: &str, usage: &str) -> Result<String> {
    match parsed.positional.as_slice() {
        [value] if !value.trim().is_empty() => Ok(value.trim().to_string()),
        [] => bail!("not enough arguments: {what} is missing\n\n{usage}"),
        more => bail!(
            "too many arguments (expected 1, got {}): flags go before {what}\n\n{usage}",
            more.len()
        ),
    }
}

/// `rotor secrets SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{SECRETS_HELP}");
    };
    match subcommand.as_str() {
        "enable" => enable(rest),
        "list" => list(rest),
        "disable" => disable(rest),
        "-h" | "-help" | "--help" | "help" => {
            print!("{SECRETS_HELP}");
            Ok(())
        }
        other => bail!("unknown secrets subcommand '{other}'\n\n{SECRETS_HELP}"),
    }
}

/// `rotor secrets enable [flags] TYPE` (also `rotor mount TYPE`).
pub fn enable(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(ENABLE_FLAGS, ENABLE_USAGE, args)?;
    let mut engine_type = single_argument(&parsed, "TYPE", ENABLE_USAGE)?;
    if engine_type == "plugin" {
        engine_type = parsed
            .value("plugin-name")
            .map(str::to_string)
            .ok_or_else(|| anyhow!("TYPE plugin needs -plugin-name=NAME"))?;
    }
    let path = parsed.value("path").unwrap_or(&engine_type);
    let path = format!("{}/", path.trim_matches('/'));
    let mut body = Map::new();
    body.insert("type".into(), json!(engine_type));
    if let Some(description) = parsed.value("description") {
        body.insert("description".into(), json!(description));
    }
    for flag in ["local", "seal-wrap"] {
        if parsed.is_set(flag) {
            body.insert(flag.replace('-', "_"), json!(true));
        }
    }
    let client = Client::from_env(parsed.value("address"))?;
    let answer = client.call("POST", &format!("sys/mounts/{path}"), Some(&body))?;
    print_warnings(&answer);
    println!("Success! Enabled the {engine_type} secrets engine at: {path}");
    Ok(())
}

fn list(args: &[String]) -> Result<()> {
    let listing = Listing::fetch(
        args,
        LIST_FLAGS,
        LIST_USAGE,
        "rotor secrets list",
        "sys/mounts",
    )?;
    match listing.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&listing.entries)?),
        Format::Raw => println!("{}", listing.answer),
        Format::Table => print!("{}", mounts_table(&listing.entries, listing.detailed)),
    }
    Ok(())
}

/// What a `… list` command of mounts (secrets engines, auth methods, audit devices) read:
/// the answer of `GET path`, its `data` object, and how to print it.
pub(super) struct Listing {
    pub format: Format,
    pub detailed: bool,
    pub answer: Value,
    pub entries: Map<String, Value>,
}

impl Listing {
    /// Parses `command`'s flags (it takes no argument) and reads `path`.
    pub(super) fn fetch(
        args: &[String],
        flags: &[flags::FlagSpec],
        usage: &str,
        command: &str,
        path: &str,
    ) -> Result<Self> {
        let parsed = flags::parse_or_help(flags, usage, args)?;
        if let Some(extra) = parsed.positional.first() {
            bail!("unexpected argument '{extra}': {command} takes none");
        }
        let format = Format::parse(parsed.value("format")).map_err(|e| anyhow!(e))?;
        let client = Client::from_env(parsed.value("address"))?;
        let answer = client.call("GET", path, None)?;
        let entries = answer
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            format,
            detailed: parsed.is_set("detailed"),
            answer,
            entries,
        })
    }
}

/// Vault's `secrets list` table, sorted by path.
pub(super) fn mounts_table(mounts: &Map<String, Value>, detailed: bool) -> String {
    let mut paths: Vec<&String> = mounts.keys().collect();
    paths.sort();
    let text = |mount: &Value, key: &str| {
        mount
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let rows: Vec<Vec<String>> = paths
        .into_iter()
        .map(|path| {
            let mount = &mounts[path];
            let mut row = vec![path.clone(), text(mount, "type"), text(mount, "accessor")];
            if detailed {
                let local = mount.get("local").and_then(Value::as_bool) == Some(true);
                row.push(if local { "local" } else { "replicated" }.into());
                let seal_wrap = mount.get("seal_wrap").and_then(Value::as_bool) == Some(true);
                row.push(seal_wrap.to_string());
            }
            row.push(text(mount, "description"));
            row
        })
        .collect();
    let header: &[&str] = if detailed {
        &[
            "Path",
            "Type",
            "Accessor",
            "Replication",
            "Seal Wrap",
            "Description",
        ]
    } else {
        &["Path", "Type", "Accessor", "Description"]
    };
    output::columns(header, &rows)
}

fn disable(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(DISABLE_FLAGS, DISABLE_USAGE, args)?;
    let path = single_argument(&parsed, "PATH", DISABLE_USAGE)?;
    let path = format!("{}/", path.trim_matches('/'));
    let client = Client::from_env(parsed.value("address"))?;
    client.call("DELETE", &format!("sys/mounts/{path}"), None)?;
    println!("Success! Disabled the secrets engine (if it existed) at: {path}");
    Ok(())
}

/// The server's warnings, on stderr, so stdout holds only Vault's line.
pub(super) fn print_warnings(answer: &Value) {
    if let Some(warnings) = answer.get("warnings").and_then(Value::as_array) {
        eprint!("{}", output::warnings_text(warnings));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_mounts_sorted_as_vault_does() {
        let mounts = json!({
            "ssh/": {"type": "ssh", "accessor": "ssh_1", "description": ""},
            "os/": {"type": "os", "accessor": "os_2", "description": "hosts"},
        });
        let text = mounts_table(mounts.as_object().expect("object"), false);
        assert_eq!(
            text,
            "Path    Type    Accessor    Description\n\
             ----    ----    --------    -----------\n\
             os/     os      os_2        hosts\n\
             ssh/    ssh     ssh_1\n"
        );
    }
}
