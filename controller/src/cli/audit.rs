//! `rotor audit enable | list | disable`, as `vault audit` does.
//!
//! Owns turning these commands into `sys/audit` requests and printing Vault's lines. Must not
//! judge devices or options: the server does (and refuses `log_raw`).

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::client::Client;
use super::flags::{self, FlagSpec};
use super::output::{self, Format};

pub(super) const ENABLE_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "path",
        aliases: &[],
        takes_value: true,
        help: "where to enable the device (default: the type's name)",
    },
    FlagSpec {
        name: "description",
        aliases: &[],
        takes_value: true,
        help: "what the device is for",
    },
    FlagSpec {
        name: "local",
        aliases: &[],
        takes_value: false,
        help: "accepted for Vault compatibility (Rotor does not replicate)",
    },
    flags::ADDRESS,
];

pub(super) const LIST_FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FlagSpec {
        name: "detailed",
        aliases: &[],
        takes_value: false,
        help: "also print each device's options",
    },
    flags::ADDRESS,
];

pub(super) const DISABLE_FLAGS: &[FlagSpec] = &[flags::ADDRESS];

const AUDIT_HELP: &str = "Usage: rotor audit <subcommand> [flags] [args]

    enable [-path=PATH] TYPE [K=V...]   Enable an audit device: file (file_path=PATH|stdout|discard)
    list                                List enabled audit devices
    disable PATH                        Disable the device at PATH

    $ rotor audit enable file file_path=/var/log/rotor_audit.log

Each subcommand answers -h with its flags.
";

const ENABLE_USAGE: &str = "Usage: rotor audit enable [flags] TYPE [K=V...]

  Enables an audit device of TYPE (file) at -path, by default at the type's name. K=V are
  the device's options: file_path (a file, stdout or discard), mode (octal, default 0600).
  With a device enabled, a request that no device can record is refused.

      $ rotor audit enable file file_path=/var/log/rotor_audit.log
      $ rotor audit enable -path=file2 file file_path=stdout
";

const LIST_USAGE: &str = "Usage: rotor audit list [flags]

  Lists the enabled audit devices.
";

const DISABLE_USAGE: &str = "Usage: rotor audit disable [flags] PATH

  Disables the audit device at PATH.

      $ rotor audit disable file/
";

/// `rotor audit SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{AUDIT_HELP}");
    };
    match subcommand.as_str() {
        "enable" => enable(rest),
        "list" => list(rest),
        "disable" => disable(rest),
        "-h" | "-help" | "--help" | "help" => {
            print!("{AUDIT_HELP}");
            Ok(())
        }
        other => bail!("unknown audit subcommand '{other}'\n\n{AUDIT_HELP}"),
    }
}

fn enable(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(ENABLE_FLAGS, ENABLE_USAGE, args)?;
    let Some((device_type, pairs)) = parsed.positional.split_first() else {
        bail!("not enough arguments: TYPE is missing\n\n{ENABLE_USAGE}");
    };
    let path = parsed.value("path").unwrap_or(device_type);
    let path = format!("{}/", path.trim_matches('/'));
    let options = super::parse_pairs(pairs)?;
    let mut body = Map::new();
    body.insert("type".into(), json!(device_type));
    body.insert("options".into(), Value::Object(options));
    if let Some(description) = parsed.value("description") {
        body.insert("description".into(), json!(description));
    }
    if parsed.is_set("local") {
        body.insert("local".into(), json!(true));
    }
    let client = Client::from_env(parsed.value("address"))?;
    let answer = client.call("POST", &format!("sys/audit/{path}"), Some(&body))?;
    super::secrets::print_warnings(&answer);
    println!("Success! Enabled the {device_type} audit device at: {path}");
    Ok(())
}

fn list(args: &[String]) -> Result<()> {
    let listing = super::secrets::Listing::fetch(
        args,
        LIST_FLAGS,
        LIST_USAGE,
        "rotor audit list",
        "sys/audit",
    )?;
    match listing.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&listing.entries)?),
        Format::Raw => println!("{}", listing.answer),
        Format::Table if listing.entries.is_empty() => println!("No audit devices are enabled."),
        Format::Table => print!("{}", devices_table(&listing.entries, listing.detailed)),
    }
    Ok(())
}

/// Vault's `audit list` table, sorted by path.
fn devices_table(devices: &Map<String, Value>, detailed: bool) -> String {
    let mut paths: Vec<&String> = devices.keys().collect();
    paths.sort();
    let rows: Vec<Vec<String>> = paths
        .into_iter()
        .map(|path| {
            let device = &devices[path];
            let text = |key: &str| {
                device
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let mut row = vec![path.clone(), text("type"), text("description")];
            if detailed {
                let local = device.get("local").and_then(Value::as_bool) == Some(true);
                row.push(if local { "local" } else { "replicated" }.into());
                let options: Vec<String> = device
                    .get("options")
                    .and_then(Value::as_object)
                    .map(|options| {
                        let mut pairs: Vec<String> = options
                            .iter()
                            .map(|(key, value)| {
                                format!("{key}={}", value.as_str().unwrap_or_default())
                            })
                            .collect();
                        pairs.sort();
                        pairs
                    })
                    .unwrap_or_default();
                row.push(options.join(" "));
            }
            row
        })
        .collect();
    let header: &[&str] = if detailed {
        &["Path", "Type", "Description", "Replication", "Options"]
    } else {
        &["Path", "Type", "Description"]
    };
    output::columns(header, &rows)
}

fn disable(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(DISABLE_FLAGS, DISABLE_USAGE, args)?;
    let path = match parsed.positional.as_slice() {
        [path] if !path.trim().is_empty() => format!("{}/", path.trim().trim_matches('/')),
        _ => bail!("rotor audit disable takes one PATH\n\n{DISABLE_USAGE}"),
    };
    let client = Client::from_env(parsed.value("address"))?;
    client.call("DELETE", &format!("sys/audit/{path}"), None)?;
    println!("Success! Disabled audit device (if it was enabled) at: {path}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_devices_with_options_when_detailed() {
        let devices = json!({
            "file/": {"type": "file", "description": "", "options": {"file_path": "/var/log/a.log"}},
        });
        let devices = devices.as_object().expect("object");
        assert_eq!(
            devices_table(devices, false),
            "Path     Type    Description\n\
             ----     ----    -----------\n\
             file/    file\n"
        );
        assert!(
            devices_table(devices, true).contains("replicated     file_path=/var/log/a.log"),
            "{}",
            devices_table(devices, true)
        );
    }
}
