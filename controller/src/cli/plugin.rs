//! `rotor plugin register`, as the reference's setup runs it (`vault plugin register
//! -download -version=... secret vault-plugin-secrets-os`) before enabling the OS engine.
//!
//! Rotor runs no external plugins: its engines are built in. Registering a built-in engine's
//! name succeeds and changes nothing; any other name is refused, naming the built-in ones.
//! Owns only that answer; it sends nothing to the server.

use anyhow::{Result, anyhow, bail};

use super::flags::{self, FlagSpec};
use crate::engines::{KNOWN_TYPES, TYPE_ALIASES, canonical_type};

pub(super) const REGISTER_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "download",
        aliases: &[],
        takes_value: false,
        help: "accepted: built-in engines need no download",
    },
    FlagSpec {
        name: "version",
        aliases: &[],
        takes_value: true,
        help: "accepted: a built-in engine is the server's own version",
    },
    FlagSpec {
        name: "sha256",
        aliases: &[],
        takes_value: true,
        help: "accepted: there is no plugin binary to check",
    },
    FlagSpec {
        name: "command",
        aliases: &[],
        takes_value: true,
        help: "accepted: there is no plugin binary to run",
    },
    FlagSpec {
        name: "address",
        aliases: &[],
        takes_value: true,
        help: "accepted: nothing is sent to the server",
    },
];

const PLUGIN_HELP: &str = "Usage: rotor plugin register [flags] secret NAME

  Rotor's engines are built in; registering one of their names succeeds and changes
  nothing, so the reference's setup runs as printed:

      $ rotor plugin register -download -version=\"0.1.0-rc1+ent\" secret vault-plugin-secrets-os

  Then mount it: rotor secrets enable -path=os vault-plugin-secrets-os

Flags:
";

/// `rotor plugin SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{PLUGIN_HELP}{}", flags::usage(REGISTER_FLAGS));
    };
    match subcommand.as_str() {
        "register" => register(rest),
        "-h" | "-help" | "--help" | "help" => {
            print!("{PLUGIN_HELP}{}", flags::usage(REGISTER_FLAGS));
            Ok(())
        }
        other => bail!(
            "unknown plugin subcommand '{other}': Rotor's engines are built in; only `register` is accepted\n\n{PLUGIN_HELP}"
        ),
    }
}

fn register(args: &[String]) -> Result<()> {
    if flags::wants_help(REGISTER_FLAGS, args) {
        print!("{PLUGIN_HELP}{}", flags::usage(REGISTER_FLAGS));
        return Ok(());
    }
    let parsed = flags::parse(REGISTER_FLAGS, args)
        .map_err(|e| anyhow!("{e}\n\n{PLUGIN_HELP}{}", flags::usage(REGISTER_FLAGS)))?;
    let name = match parsed.positional.as_slice() {
        [kind, name] if kind == "secret" => name.as_str(),
        [kind, _] => {
            bail!("plugin type '{kind}': Rotor has built-in secrets engines only (type secret)")
        }
        _ => bail!("usage: rotor plugin register [flags] secret NAME"),
    };
    register_answer(name).map(|line| println!("{line}"))
}

/// What registering `name` answers: Vault's success line for a built-in engine.
fn register_answer(name: &str) -> Result<String> {
    let built_in = KNOWN_TYPES
        .iter()
        .any(|(kind, _)| *kind == canonical_type(name));
    if !built_in {
        let names: Vec<&str> = KNOWN_TYPES
            .iter()
            .map(|(kind, _)| *kind)
            .chain(TYPE_ALIASES.iter().map(|(alias, _)| *alias))
            .collect();
        bail!(
            "plugin '{name}' is not built into Rotor, and Rotor runs no external plugins; built-in engines: {}",
            names.join(", ")
        );
    }
    Ok(format!("Success! Registered plugin: {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_engines_register_and_others_are_refused() {
        assert_eq!(
            register_answer("vault-plugin-secrets-os").expect("built in"),
            "Success! Registered plugin: vault-plugin-secrets-os"
        );
        assert!(register_answer("ssh").is_ok());
        let error = register_answer("vault-plugin-secrets-kv")
            .expect_err("unknown")
            .to_string();
        assert!(
            error.contains("not built into Rotor") && error.contains("vault-plugin-secrets-os"),
            "{error}"
        );
    }
}
