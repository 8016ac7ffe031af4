//! `rotor auth enable | list | disable`, as `vault auth` does, over `sys/auth`.
//!
//! Owns turning these commands into requests and printing Vault's lines. Must not judge
//! types or paths: the server does, and says what is wrong.

use anyhow::{Result, bail};
use serde_json::{Map, json};

use super::client::Client;
use super::flags::{self, FlagSpec};
use super::output::Format;
use super::secrets::{Listing, mounts_table, print_warnings, single_argument};

pub(super) const ENABLE_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "path",
        aliases: &[],
        takes_value: true,
        help: "where under auth/ to enable the method (default: the type's name)",
    },
    FlagSpec {
        name: "description",
        aliases: &[],
        takes_value: true,
        help: "what the method is for",
    },
    flags::ADDRESS,
];

pub(super) const LIST_FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FlagSpec {
        name: "detailed",
        aliases: &[],
        takes_value: false,
        help: "also print each method's replication and seal-wrap columns",
    },
    flags::ADDRESS,
];

pub(super) const DISABLE_FLAGS: &[FlagSpec] = &[flags::ADDRESS];

const AUTH_HELP: &str = "Usage: rotor auth <subcommand> [flags] [args]

    enable [-path=PATH] TYPE   Enable an auth method: approle or userpass
    list                       List auth methods (token/ is built in)
    disable PATH               Disable the method at PATH (its roles and users go with it)

    $ rotor auth enable approle
    $ rotor login -method=userpass username=alice

Each subcommand answers -h with its flags.
";

const ENABLE_USAGE: &str = "Usage: rotor auth enable [flags] TYPE

  Enables an auth method of TYPE (approle, userpass) at auth/<-path>/, by default at the
  type's name.

      $ rotor auth enable approle
      $ rotor auth enable -path=people userpass
";

const LIST_USAGE: &str = "Usage: rotor auth list [flags]

  Lists the enabled auth methods.
";

const DISABLE_USAGE: &str = "Usage: rotor auth disable [flags] PATH

  Disables the auth method at auth/PATH and deletes its roles, secret IDs and users; tokens
  it issued live on until revoked or expired.

      $ rotor auth disable approle/
";

/// `rotor auth SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{AUTH_HELP}");
    };
    match subcommand.as_str() {
        "enable" => enable(rest),
        "list" => list(rest),
        "disable" => disable(rest),
        "-h" | "-help" | "--help" | "help" => {
            print!("{AUTH_HELP}");
            Ok(())
        }
        other => bail!("unknown auth subcommand '{other}'\n\n{AUTH_HELP}"),
    }
}

fn enable(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(ENABLE_FLAGS, ENABLE_USAGE, args)?;
    let method = single_argument(&parsed, "TYPE", ENABLE_USAGE)?;
    let path = parsed.value("path").unwrap_or(&method);
    let path = format!("{}/", path.trim_matches('/'));
    let mut body = Map::new();
    body.insert("type".into(), json!(method));
    if let Some(description) = parsed.value("description") {
        body.insert("description".into(), json!(description));
    }
    let client = Client::from_env(parsed.value("address"))?;
    let answer = client.call("POST", &format!("sys/auth/{path}"), Some(&body))?;
    print_warnings(&answer);
    println!("Success! Enabled {method} auth method at: {path}");
    Ok(())
}

fn list(args: &[String]) -> Result<()> {
    let listing = Listing::fetch(args, LIST_FLAGS, LIST_USAGE, "rotor auth list", "sys/auth")?;
    match listing.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&listing.entries)?),
        Format::Raw => println!("{}", listing.answer),
        Format::Table => print!("{}", mounts_table(&listing.entries, listing.detailed)),
    }
    Ok(())
}

fn disable(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(DISABLE_FLAGS, DISABLE_USAGE, args)?;
    let path = single_argument(&parsed, "PATH", DISABLE_USAGE)?;
    let path = format!("{}/", path.trim_matches('/'));
    let client = Client::from_env(parsed.value("address"))?;
    client.call("DELETE", &format!("sys/auth/{path}"), None)?;
    println!("Success! Disabled the auth method (if it existed) at: {path}");
    Ok(())
}
