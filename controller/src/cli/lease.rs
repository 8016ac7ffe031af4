//! `rotor lease lookup | renew | revoke [-prefix] [-force]`, as `vault lease` does.
//!
//! Owns turning these commands into `sys/leases/...` requests. Must not hold lease logic:
//! the server's lease manager decides, and its errors (a failed revocation kept for retry)
//! are shown as they come.

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, json};

use super::client::Client;
use super::flags::{self, FlagSpec, Parsed};
use super::output::Format;

pub(super) const FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FlagSpec {
        name: "field",
        aliases: &[],
        takes_value: true,
        help: "print only this field, raw",
    },
    FlagSpec {
        name: "address",
        aliases: &[],
        takes_value: true,
        help: "server address (default $ROTOR_ADDR)",
    },
    FlagSpec {
        name: "increment",
        aliases: &["i"],
        takes_value: true,
        help: "renew: the new TTL asked for, like 1h",
    },
    FlagSpec {
        name: "prefix",
        aliases: &[],
        takes_value: false,
        help: "revoke: every lease whose id starts with the argument",
    },
    FlagSpec {
        name: "force",
        aliases: &["f"],
        takes_value: false,
        help: "revoke: forget the leases even when their revocation fails (needs -prefix)",
    },
];

const LEASE_HELP: &str = "Usage: rotor lease <subcommand> [flags] LEASE_ID

    lookup LEASE_ID
    renew [-increment=1h] LEASE_ID
    revoke LEASE_ID
    revoke -prefix PREFIX          (every lease under PREFIX; sudo)
    revoke -prefix -force PREFIX   (forget them even if revoking fails; sudo)
";

fn lease_argument(parsed: &Parsed, usage: &str) -> Result<String> {
    match parsed.positional.as_slice() {
        [id] if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => bail!("usage: {usage}"),
    }
}

/// `rotor lease SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{LEASE_HELP}");
    };
    if matches!(subcommand.as_str(), "-h" | "-help" | "--help" | "help") {
        print!("{LEASE_HELP}");
        return Ok(());
    }
    if flags::wants_help(FLAGS, rest) {
        print!("{LEASE_HELP}\nFlags:\n{}", flags::usage(FLAGS));
        return Ok(());
    }
    let parsed = flags::parse(FLAGS, rest).map_err(|e| anyhow!("{e}\n\n{LEASE_HELP}"))?;
    let format = Format::parse(parsed.value("format")).map_err(|e| anyhow!(e))?;
    let client = Client::from_env(parsed.value("address"))?;
    match subcommand.as_str() {
        "lookup" => {
            let id = lease_argument(&parsed, "rotor lease lookup LEASE_ID")?;
            let body = Map::from_iter([("lease_id".to_string(), json!(id))]);
            let answer = client.call("PUT", "sys/leases/lookup", Some(&body))?;
            super::print_answer(
                "read",
                "sys/leases/lookup",
                &answer,
                format,
                parsed.value("field"),
            )
        }
        "renew" => {
            let id = lease_argument(&parsed, "rotor lease renew [-increment=1h] LEASE_ID")?;
            let mut body = Map::from_iter([("lease_id".to_string(), json!(id))]);
            if let Some(increment) = parsed.value("increment") {
                body.insert("increment".into(), json!(increment));
            }
            let answer = client.call("PUT", "sys/leases/renew", Some(&body))?;
            super::print_answer(
                "read",
                "sys/leases/renew",
                &answer,
                format,
                parsed.value("field"),
            )
        }
        "revoke" => {
            let id = lease_argument(&parsed, "rotor lease revoke [-prefix [-force]] LEASE_ID")?;
            let prefix = parsed.is_set("prefix");
            if parsed.is_set("force") && !prefix {
                bail!("-force needs -prefix (Vault's rule: a forced revocation names a prefix)");
            }
            if prefix {
                let kind = if parsed.is_set("force") {
                    "revoke-force"
                } else {
                    "revoke-prefix"
                };
                client.call("PUT", &format!("sys/leases/{kind}/{id}"), None)?;
            } else {
                let body = Map::from_iter([("lease_id".to_string(), json!(id))]);
                client.call("PUT", "sys/leases/revoke", Some(&body))?;
            }
            println!("All revocation operations queued successfully!");
            Ok(())
        }
        other => bail!("unknown lease subcommand '{other}'\n\n{LEASE_HELP}"),
    }
}
