//! The `rotor` command line: `server`, `operator init`, Vault's generic verbs
//! `read | write | list | delete PATH [k=v ...]`, `path-help PATH`, and `login`, `token`,
//! `policy`, `lease`, `secrets`, `audit`, `plugin`, `rotation`, `ssh`, `completion`; every
//! command line is a row of `commands::COMMANDS`.
//!
//! Owns turning arguments into requests and answers into text, and the exit codes (0 ok,
//! 1 usage or local failure, 2 the server refused, 3 a watched fleet rotation did not
//! succeed). Must not hold server logic.

pub mod audit;
pub mod client;
pub mod commands;
pub mod completion;
pub mod flags;
#[cfg(test)]
mod help_tests;
pub mod lease;
pub mod output;
pub mod path_help;
pub mod plugin;
pub mod policy;
pub mod rotation;
pub mod secrets;
pub mod ssh;
pub mod token;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use client::{ApiFailure, Client};
use flags::FlagSpec;
use output::Format;

const HELP: &str = "Usage: rotor <command> [flags] [args]

Commands:
    server          Run the controller (-dev for an in-memory dev server, -config FILE)
    operator init   Create the seal key, the store, the CA and the root token (-config FILE)
    read PATH       Read data at PATH
    write PATH k=v  Write data to PATH (k=@file reads a file, k=- reads stdin; PATH - reads a JSON object)
    list PATH       List keys under PATH
    delete PATH     Delete data at PATH
    path-help PATH  Show a path's help: what it does, its fields and their types
    login TOKEN     Check TOKEN and keep it in ~/.rotor-token (used when ROTOR_TOKEN is unset)
    token           Create, look up, renew and revoke tokens (rotor token help)
    policy          Write, read, list and delete ACL policies (rotor policy help)
    lease           Look up, renew and revoke leases (rotor lease help)
    secrets         Enable, list and disable secrets engines (rotor secrets help)
    audit           Enable, list and disable audit devices (rotor audit help)
    plugin register Accepted for built-in engines (rotor plugin help)
    rotation        Watch a fleet rotation in waves: rotor rotation watch [-mount=os] ID
                    (start one with rotor write os/rotate ... dry_run=false; rotor rotation help)
    ssh             Log in with a one-time password: rotor ssh -role ROLE user@host
    completion      Print a bash or zsh completion script: rotor completion bash|zsh

Commands answer -h with their flags.
Environment: ROTOR_ADDR, ROTOR_TOKEN, ROTOR_CACERT (VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT as fallbacks).
Flags may be spelled -flag or --flag.
";

pub(super) const COMMON_FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FlagSpec {
        name: "field",
        aliases: &[],
        takes_value: true,
        help: "print only this field of the data, raw",
    },
    FlagSpec {
        name: "address",
        aliases: &[],
        takes_value: true,
        help: "server address (default $ROTOR_ADDR)",
    },
    FlagSpec {
        name: "force",
        aliases: &["f"],
        takes_value: false,
        help: "write even with no data",
    },
];

pub(super) const SERVER_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "dev",
        aliases: &[],
        takes_value: false,
        help: "run an in-memory dev server with a fresh CA and root token",
    },
    FlagSpec {
        name: "dev-root-token-id",
        aliases: &[],
        takes_value: true,
        help: "the dev server's root token",
    },
    FlagSpec {
        name: "dev-listen-address",
        aliases: &[],
        takes_value: true,
        help: "the dev server's API address (default 127.0.0.1:8200)",
    },
    FlagSpec {
        name: "dev-agent-address",
        aliases: &[],
        takes_value: true,
        help: "the dev server's agent (QUIC) address (default 127.0.0.1:8201)",
    },
    FlagSpec {
        name: "config",
        aliases: &[],
        takes_value: true,
        help: "configuration file (HCL)",
    },
    FlagSpec {
        name: "log-format",
        aliases: &[],
        takes_value: true,
        help: "standard or json",
    },
    FlagSpec {
        name: "log-level",
        aliases: &[],
        takes_value: true,
        help: "error, warn, info, debug or trace",
    },
];

const SERVER_USAGE: &str = "Usage: rotor server -dev [flags] | -config FILE [flags]

    -dev runs an in-memory server with a fresh CA and root token, and prints the exports
    that point the CLI at it (ROTOR_ADDR, ROTOR_CACERT, ROTOR_TOKEN) and the address agents
    enroll with (agents: host:port). -config FILE runs a configured server.
";

const INIT_USAGE: &str = "Usage: rotor operator init -config FILE

    Creates the seal key, the store, the CA and the root token of a configured server,
    once, and prints the root token.
";

pub(super) const INIT_FLAGS: &[FlagSpec] = &[FlagSpec {
    name: "config",
    aliases: &[],
    takes_value: true,
    help: "configuration file (HCL)",
}];

/// Runs the command line; answers the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let Some(command) = args.first().map(String::as_str) else {
        eprint!("{HELP}");
        return 1;
    };
    let rest = &args[1..];
    let outcome = match command {
        "server" => run_server(rest),
        "operator" => match rest.first().map(String::as_str) {
            Some("init") => {
                flags::parse_or_help(INIT_FLAGS, INIT_USAGE, &rest[1..]).and_then(|parsed| {
                    let path = parsed
                        .value("config")
                        .context("operator init needs -config FILE")?;
                    crate::server::operator_init(std::path::Path::new(path))
                })
            }
            Some("-h" | "-help" | "--help" | "help") => {
                print!("{}", flags::help_text(INIT_USAGE, INIT_FLAGS));
                return 0;
            }
            _ => Err(anyhow!("usage: rotor operator init -config FILE")),
        },
        "read" | "write" | "list" | "delete" => run_verb(command, rest),
        "path-help" => path_help::run(rest),
        "login" => token::login(rest),
        "token" => token::run(rest),
        "policy" => policy::run(rest),
        "lease" => lease::run(rest),
        // Vault's older spellings (`vault renew ID`, `vault revoke ID`).
        "renew" | "revoke" => {
            let mut lease_args = vec![command.to_string()];
            lease_args.extend_from_slice(rest);
            lease::run(&lease_args)
        }
        "secrets" => secrets::run(rest),
        // Vault's older spelling, which the SSH reference uses (`vault mount ssh`).
        "mount" => secrets::enable(rest),
        "audit" => audit::run(rest),
        "plugin" => plugin::run(rest),
        "rotation" => rotation::run(rest),
        "ssh" => ssh::run(rest),
        "completion" => completion::run(rest),
        "-h" | "-help" | "--help" | "help" => {
            print!("{HELP}");
            return 0;
        }
        "version" | "-version" | "--version" => {
            println!("Rotor v{}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        other => Err(anyhow!("unknown command '{other}'\n\n{HELP}")),
    };
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            if error.downcast_ref::<flags::HelpShown>().is_some() {
                0
            } else if error.downcast_ref::<ApiFailure>().is_some() {
                eprintln!("Error: {error}");
                2
            } else if error.downcast_ref::<rotation::RunDidNotSucceed>().is_some() {
                eprintln!("Error: {error}");
                3
            } else {
                eprintln!("Error: {error:#}");
                1
            }
        }
    }
}

fn init_logging(format: Option<&str>, level: Option<&str>) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::try_new(format!("{level},quinn=warn,rustls=warn"))
            .map_err(|e| anyhow!("invalid -log-level: {e}"))?,
        None => EnvFilter::try_from_env("ROTOR_LOG")
            .unwrap_or_else(|_| EnvFilter::new("info,quinn=warn,rustls=warn")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them: never into a file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format.unwrap_or("standard") {
        "json" => builder.json().init(),
        "standard" => builder.init(),
        other => bail!("invalid -log-format '{other}': use standard or json"),
    }
    Ok(())
}

fn run_server(args: &[String]) -> Result<()> {
    let parsed = flags::parse_or_help(SERVER_FLAGS, SERVER_USAGE, args)?;
    if let Some(extra) = parsed.positional.first() {
        bail!("unexpected argument '{extra}'");
    }
    let mode = if parsed.is_set("dev") {
        let address = |flag: &str, default: &str| -> Result<SocketAddr> {
            let text = parsed.value(flag).unwrap_or(default);
            text.parse()
                .map_err(|_| anyhow!("-{flag}: '{text}' is not an IP:port"))
        };
        crate::server::Mode::Dev(crate::server::DevOptions {
            root_token_id: parsed.value("dev-root-token-id").map(String::from),
            api_address: address("dev-listen-address", "127.0.0.1:8200")?,
            agent_address: address("dev-agent-address", "127.0.0.1:8201")?,
        })
    } else if let Some(path) = parsed.value("config") {
        crate::server::Mode::Config(PathBuf::from(path))
    } else {
        bail!("rotor server needs -dev or -config FILE");
    };
    let log_format = match &mode {
        crate::server::Mode::Config(path) => {
            parsed.value("log-format").map(String::from).or_else(|| {
                crate::config::load(path)
                    .ok()
                    .and_then(|settings| settings.log_format)
            })
        }
        crate::server::Mode::Dev(_) => parsed.value("log-format").map(String::from),
    };
    init_logging(log_format.as_deref(), parsed.value("log-level"))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(crate::server::run(mode))
}

/// Parses `k=v`, `k=@file`, `k=-` pairs into a JSON object.
fn parse_pairs(pairs: &[String]) -> Result<Map<String, Value>> {
    let mut data = Map::new();
    let mut stdin_used = false;
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid key/value pair '{pair}': expected key=value"))?;
        if key.is_empty() {
            bail!("invalid key/value pair '{pair}': the key is empty");
        }
        let value = if value == "-" {
            if stdin_used {
                bail!("only one value can come from stdin");
            }
            stdin_used = true;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            text.trim_end_matches('\n').to_string()
        } else if let Some(path) = value.strip_prefix('@') {
            std::fs::read_to_string(path).with_context(|| format!("reading {path} for '{key}'"))?
        } else {
            value.to_string()
        };
        data.insert(key.to_string(), Value::String(value));
    }
    Ok(data)
}

fn run_verb(verb: &str, args: &[String]) -> Result<()> {
    if flags::wants_help(COMMON_FLAGS, args) {
        let arguments = match verb {
            "write" => {
                "PATH [K=V...]  (K=@file reads a file, K=- reads stdin; PATH - reads a JSON object)"
            }
            _ => "PATH",
        };
        print!(
            "Usage: rotor {verb} [flags] {arguments}\n\nFlags:\n{}",
            flags::usage(COMMON_FLAGS)
        );
        return Ok(());
    }
    let parsed = flags::parse(COMMON_FLAGS, args).map_err(|e| anyhow!(e))?;
    let format = Format::parse(parsed.value("format")).map_err(|e| anyhow!(e))?;
    let (path, pairs) = parsed
        .positional
        .split_first()
        .ok_or_else(|| anyhow!("{verb} needs a PATH: rotor {verb} [flags] PATH"))?;
    let path = path.trim_matches('/').to_string();
    let body = if verb == "write" {
        let data = if pairs.len() == 1 && pairs[0] == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading JSON from stdin")?;
            match serde_json::from_str::<Value>(&text).context("stdin is not JSON")? {
                Value::Object(map) => map,
                _ => bail!("stdin must hold a JSON object"),
            }
        } else {
            parse_pairs(pairs)?
        };
        if data.is_empty() && !parsed.is_set("force") {
            bail!("must supply data or use -force");
        }
        Some(data)
    } else if !pairs.is_empty() && verb == "read" {
        // Vault's `read PATH k=v` sends them as query parameters; we send them as a body-less
        // read is all our paths need, so refuse instead of silently ignoring.
        bail!("read takes only a PATH");
    } else {
        None
    };
    let method = match verb {
        "read" => "GET",
        "write" => "POST",
        "list" => "LIST",
        _ => "DELETE",
    };
    let client = Client::from_env(parsed.value("address"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let answer = runtime.block_on(client.request(method, &path, body.as_ref()))?;
    print_answer(verb, &path, &answer, format, parsed.value("field"))
}

/// What `-field=NAME` prints: the data's field, raw (a string without quotes).
fn field_text(answer: &Value, name: &str, path: &str) -> Result<String> {
    answer
        .get("data")
        .and_then(|data| data.get(name))
        .map(output::field)
        .ok_or_else(|| {
            let present: Vec<&str> = answer
                .get("data")
                .and_then(Value::as_object)
                .map(|data| data.keys().map(String::as_str).collect())
                .unwrap_or_default();
            anyhow!(
                "field '{name}' not present in the answer from {path} (its fields: {})",
                if present.is_empty() {
                    "none".to_string()
                } else {
                    present.join(", ")
                }
            )
        })
}

fn print_answer(
    verb: &str,
    path: &str,
    answer: &Value,
    format: Format,
    field: Option<&str>,
) -> Result<()> {
    if let Some(name) = field {
        let value = field_text(answer, name, path)?;
        // Like vault: no trailing newline when piped, so `-field=x > file` holds the value.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            println!("{value}");
        } else {
            print!("{value}");
        }
        return Ok(());
    }
    if let Value::String(text) = answer {
        print!("{text}");
        return Ok(());
    }
    if matches!(format, Format::Raw) {
        println!("{answer}");
        return Ok(());
    }
    // An envelope with nothing but warnings (a raw body is shown as it came).
    let no_data = answer.get("request_id").is_some()
        && answer.get("data").is_none_or(Value::is_null)
        && answer.get("auth").is_none_or(Value::is_null)
        && answer
            .get("lease_id")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
    let table_without_data =
        no_data && format == Format::Table && matches!(verb, "write" | "delete");
    if answer.is_null() || table_without_data {
        match verb {
            "delete" => println!("{}", output::delete_success(path)),
            "write" => println!("Success! Data written to: {path}"),
            _ => bail!("no value found at {path}"),
        }
        // A write that answers only warnings (a host's site chosen for it) shows them too.
        if let Some(warnings) = answer.get("warnings").and_then(Value::as_array) {
            print!("{}", output::warnings_text(warnings));
        }
        return Ok(());
    }
    match (format, verb) {
        (Format::Json, "list") => {
            let keys = answer
                .pointer("/data/keys")
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            println!("{}", serde_json::to_string_pretty(&keys)?);
        }
        (Format::Json, _) => println!("{}", serde_json::to_string_pretty(answer)?),
        (Format::Table, "list") => {
            let keys = answer
                .pointer("/data/keys")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            print!("{}", output::keys_table(&keys));
        }
        (Format::Table, _) => print!("{}", output::table(answer)),
        (Format::Raw, _) => println!("{answer}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn at_file_values_are_read_from_the_file() {
        let directory =
            std::env::temp_dir().join(format!("rotor-cli-pairs-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("temp dir");
        let key_file = directory.join("id_rsa.pub");
        std::fs::write(&key_file, "ssh-rsa AAAAB3Nza user@box\n").expect("write key");
        let data = parse_pairs(&strings(&[
            &format!("public_key=@{}", key_file.display()),
            "valid_principals=a=b",
            "ttl=",
        ]))
        .expect("pairs");
        // The file as it is, trailing newline included, as vault sends it.
        assert_eq!(data["public_key"], "ssh-rsa AAAAB3Nza user@box\n");
        assert_eq!(data["valid_principals"], "a=b");
        assert_eq!(data["ttl"], "");

        let missing = directory.join("absent.pub");
        let error = parse_pairs(&strings(&[&format!("public_key=@{}", missing.display())]))
            .expect_err("a missing file");
        let text = format!("{error:#}");
        assert!(
            text.contains(&format!("reading {} for 'public_key'", missing.display())),
            "{text}"
        );
        for bad in ["public_key", "=value"] {
            assert!(parse_pairs(&strings(&[bad])).is_err(), "{bad}");
        }
        std::fs::remove_dir_all(&directory).expect("clean up");
    }

    #[test]
    fn field_prints_one_data_value_raw() {
        let answer = json!({
            "lease_id": "",
            "data": {
                "public_key": "ssh-rsa AAAA\n",
                "port": 22,
                "roles": ["otp_key_role"],
            },
        });
        assert_eq!(
            field_text(&answer, "public_key", "ssh/config/ca").expect("string"),
            "ssh-rsa AAAA\n"
        );
        assert_eq!(field_text(&answer, "port", "p").expect("number"), "22");
        assert_eq!(
            field_text(&answer, "roles", "p").expect("list"),
            r#"["otp_key_role"]"#
        );
        let error = field_text(&answer, "signed_key", "ssh/sign/my-role").expect_err("absent");
        assert_eq!(
            error.to_string(),
            "field 'signed_key' not present in the answer from ssh/sign/my-role (its fields: port, public_key, roles)"
        );
        let parsed = flags::parse(
            COMMON_FLAGS,
            &strings(&["-field=signed_key", "ssh/sign/my-role", "public_key=@k.pub"]),
        )
        .expect("flags");
        assert_eq!(parsed.value("field"), Some("signed_key"));
        assert_eq!(parsed.positional, ["ssh/sign/my-role", "public_key=@k.pub"]);
    }
}
