//! `rotor login` and `rotor token create | lookup | renew | revoke`, as `vault` spells them.
//!
//! Owns turning these commands' flags into `auth/token/...` requests and showing the
//! answers; `login` checks the token with the server before keeping it in `~/.rotor-token`
//! (0600). Must not print a token anywhere but stdout of the command that created it, and
//! must not hold any token logic (the server decides everything).

use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

use super::client::{self, Client};
use super::flags::{self, FlagSpec, Parsed};
use super::output::{self, Format};

const FIELD: FlagSpec = FlagSpec {
    name: "field",
    aliases: &[],
    takes_value: true,
    help: "print only this field, raw",
};
const ADDRESS: FlagSpec = FlagSpec {
    name: "address",
    aliases: &[],
    takes_value: true,
    help: "server address (default $ROTOR_ADDR)",
};
const ACCESSOR: FlagSpec = FlagSpec {
    name: "accessor",
    aliases: &[],
    takes_value: false,
    help: "the argument is an accessor, not a token",
};

pub(super) const LOGIN_FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FIELD,
    ADDRESS,
    FlagSpec {
        name: "no-store",
        aliases: &[],
        takes_value: false,
        help: "check the token but do not keep it in ~/.rotor-token",
    },
];

pub(super) const CREATE_FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FIELD,
    ADDRESS,
    FlagSpec {
        name: "policy",
        aliases: &[],
        takes_value: true,
        help: "a policy of the new token (repeat for several; default: the caller's)",
    },
    FlagSpec {
        name: "ttl",
        aliases: &[],
        takes_value: true,
        help: "time to live, like 1h or 30m",
    },
    FlagSpec {
        name: "explicit-max-ttl",
        aliases: &[],
        takes_value: true,
        help: "a hard limit renewals cannot pass",
    },
    FlagSpec {
        name: "period",
        aliases: &[],
        takes_value: true,
        help: "make a periodic token (root or sudo)",
    },
    FlagSpec {
        name: "renewable",
        aliases: &[],
        takes_value: true,
        help: "whether the token may be renewed (default true)",
    },
    FlagSpec {
        name: "use-limit",
        aliases: &["num-uses"],
        takes_value: true,
        help: "how many requests the token may make (0: unlimited)",
    },
    FlagSpec {
        name: "display-name",
        aliases: &[],
        takes_value: true,
        help: "a name for logs",
    },
    FlagSpec {
        name: "metadata",
        aliases: &[],
        takes_value: true,
        help: "key=value metadata (repeat for several)",
    },
    FlagSpec {
        name: "orphan",
        aliases: &[],
        takes_value: false,
        help: "create a token without a parent (root or sudo)",
    },
    FlagSpec {
        name: "no-default-policy",
        aliases: &[],
        takes_value: false,
        help: "do not add the default policy",
    },
    FlagSpec {
        name: "id",
        aliases: &[],
        takes_value: true,
        help: "the token's value (root only)",
    },
];

pub(super) const LOOKUP_FLAGS: &[FlagSpec] = &[flags::FORMAT, FIELD, ADDRESS, ACCESSOR];

pub(super) const RENEW_FLAGS: &[FlagSpec] = &[
    flags::FORMAT,
    FIELD,
    ADDRESS,
    ACCESSOR,
    FlagSpec {
        name: "increment",
        aliases: &["i"],
        takes_value: true,
        help: "the new TTL asked for, like 1h",
    },
];

pub(super) const REVOKE_FLAGS: &[FlagSpec] = &[
    ADDRESS,
    ACCESSOR,
    FlagSpec {
        name: "self",
        aliases: &[],
        takes_value: false,
        help: "revoke the token in use",
    },
    FlagSpec {
        name: "mode",
        aliases: &[],
        takes_value: true,
        help: "orphan: revoke only this token, its children become orphans",
    },
];

const LOGIN_USAGE: &str = "Usage: rotor login [flags] [TOKEN | -]

    Checks TOKEN with the server and keeps it in ~/.rotor-token, used when ROTOR_TOKEN is
    unset. Without TOKEN (or with -) it is read from stdin.
";

const TOKEN_HELP: &str = "Usage: rotor token <subcommand> [flags] [args]

    create [-policy=NAME ...] [-ttl=1h] [-use-limit=N] [-orphan] ...
    lookup [TOKEN | -accessor ACCESSOR]     (no argument: the token in use)
    renew [-increment=1h] [TOKEN | -accessor ACCESSOR]
    revoke [TOKEN | -accessor ACCESSOR | -self] [-mode=orphan]
";

fn parse(specs: &[FlagSpec], usage: &str, args: &[String]) -> Result<Parsed> {
    flags::parse_or_help(specs, usage, args)
}

fn client(parsed: &Parsed) -> Result<Client> {
    Client::from_env(parsed.value("address"))
}

fn format(parsed: &Parsed) -> Result<Format> {
    Format::parse(parsed.value("format")).map_err(|e| anyhow!(e))
}

/// At most one positional argument.
fn single_argument<'a>(parsed: &'a Parsed, usage: &str) -> Result<Option<&'a str>> {
    match parsed.positional.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.as_str())),
        _ => bail!("too many arguments: {usage}"),
    }
}

/// Vault's token table: the `auth` block renamed `token`, `token_accessor`, ...
fn auth_rows(auth: &Value) -> Map<String, Value> {
    let mut rows = Map::new();
    let mut put = |key: &str, value: Option<&Value>| {
        rows.insert(key.into(), value.cloned().unwrap_or(Value::Null));
    };
    put("token", auth.get("client_token"));
    put("token_accessor", auth.get("accessor"));
    put("token_duration", auth.get("lease_duration"));
    put("token_renewable", auth.get("renewable"));
    put("token_policies", auth.get("token_policies"));
    put("identity_policies", Some(&json!([])));
    put("policies", auth.get("policies"));
    if let Some(meta) = auth.get("metadata").and_then(Value::as_object) {
        for (key, value) in meta {
            rows.insert(format!("token_meta_{key}"), value.clone());
        }
    }
    rows
}

/// Prints an answer that carries an `auth` block (create, renew, login).
fn print_auth(answer: &Value, format: Format, field: Option<&str>) -> Result<()> {
    let auth = answer
        .get("auth")
        .filter(|auth| !auth.is_null())
        .ok_or_else(|| anyhow!("the server's answer has no auth block"))?;
    let rows = auth_rows(auth);
    if let Some(name) = field {
        let value = rows
            .get(name)
            .or_else(|| auth.get(name))
            .ok_or_else(|| anyhow!("field '{name}' not present in the answer"))?;
        println!("{}", output::field(value));
        return Ok(());
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(answer)?),
        Format::Raw => println!("{answer}"),
        Format::Table => {
            let mut shown = json!({ "data": rows });
            if let Some(warnings) = answer.get("warnings") {
                shown["warnings"] = warnings.clone();
            }
            print!("{}", output::table(&shown));
        }
    }
    Ok(())
}

/// `rotor login [TOKEN | -]`: checks the token (lookup-self) and keeps it in
/// `~/.rotor-token`.
pub fn login(args: &[String]) -> Result<()> {
    let parsed = parse(LOGIN_FLAGS, LOGIN_USAGE, args)?;
    let format = format(&parsed)?;
    let given = single_argument(&parsed, "rotor login [TOKEN | -]")?;
    let token = match given {
        Some("-") | None => read_token_from_stdin()?,
        Some(token) => token.trim().to_string(),
    };
    if token.is_empty() {
        bail!("no token given: rotor login TOKEN (or - to read it from stdin)");
    }
    let client = client(&parsed)?.with_token(token.clone());
    let answer = client.call("GET", "auth/token/lookup-self", None)?;
    let data = answer
        .get("data")
        .cloned()
        .ok_or_else(|| anyhow!("the server's lookup-self answer has no data"))?;
    if !parsed.is_set("no-store") {
        store_token(&token)?;
    }
    let auth = json!({
        "client_token": token,
        "accessor": data.get("accessor"),
        "lease_duration": data.get("ttl"),
        "renewable": data.get("renewable"),
        "token_policies": data.get("policies"),
        "policies": data.get("policies"),
        "metadata": data.get("meta"),
    });
    let shown = json!({ "auth": auth, "warnings": answer.get("warnings") });
    if parsed.value("field").is_none() && format == Format::Table {
        if parsed.is_set("no-store") {
            println!("Success! The token is valid; it was not stored (-no-store).\n");
        } else {
            println!(
                "Success! You are now authenticated. The token information displayed below\nis already stored in the token file ({}). You do NOT need to run\n\"rotor login\" again. Future Rotor requests will automatically use this token\nwhen ROTOR_TOKEN and VAULT_TOKEN are unset.\n",
                client::token_file()
                    .map(|path| path.display().to_string())
                    .unwrap_or_else(|| "~/.rotor-token".into())
            );
        }
    }
    print_auth(&shown, format, parsed.value("field"))
}

fn read_token_from_stdin() -> Result<String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Token (will be hidden): ");
        let _ = std::io::stderr().flush();
        let _hidden = HiddenInput::start();
        let mut line = String::new();
        stdin.read_line(&mut line).context("reading the token")?;
        eprintln!();
        return Ok(line.trim().to_string());
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .context("reading the token from stdin")?;
    Ok(text.trim().to_string())
}

/// Turns the terminal's echo off while a token is typed (with `stty`, on the terminal that
/// is our stdin) and back on when dropped, also on an error.
struct HiddenInput;

impl HiddenInput {
    fn start() -> Self {
        Self::stty("-echo");
        Self
    }

    fn stty(setting: &str) {
        // Best effort: without stty the token is read visibly, as a plain prompt would.
        let _ = std::process::Command::new("stty")
            .arg(setting)
            .stdin(std::process::Stdio::inherit())
            .status();
    }
}

impl Drop for HiddenInput {
    fn drop(&mut self) {
        Self::stty("echo");
    }
}

/// Writes `~/.rotor-token` (0600) through a temporary file and a rename, so a reader never
/// sees half a token.
fn store_token(token: &str) -> Result<()> {
    let path = client::token_file()
        .ok_or_else(|| anyhow!("HOME is not set: cannot store the token (use ROTOR_TOKEN)"))?;
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("moving the token into {}", path.display()))?;
    Ok(())
}

/// `rotor token SUBCOMMAND ...`.
pub fn run(args: &[String]) -> Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        bail!("{TOKEN_HELP}");
    };
    match subcommand.as_str() {
        "create" => create(rest),
        "lookup" => lookup(rest),
        "renew" => renew(rest),
        "revoke" => revoke(rest),
        "-h" | "-help" | "--help" | "help" => {
            print!("{TOKEN_HELP}");
            Ok(())
        }
        other => bail!("unknown token subcommand '{other}'\n\n{TOKEN_HELP}"),
    }
}

fn create(args: &[String]) -> Result<()> {
    let parsed = parse(CREATE_FLAGS, TOKEN_HELP, args)?;
    let format = format(&parsed)?;
    if let Some(extra) = parsed.positional.first() {
        bail!("unexpected argument '{extra}': rotor token create takes only flags");
    }
    let mut body = Map::new();
    let policies: Vec<&str> = parsed
        .values_of("policy")
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|policy| !policy.is_empty())
        .collect();
    if !policies.is_empty() {
        body.insert("policies".into(), json!(policies));
    }
    for (flag, field) in [
        ("ttl", "ttl"),
        ("explicit-max-ttl", "explicit_max_ttl"),
        ("period", "period"),
        ("display-name", "display_name"),
        ("id", "id"),
    ] {
        if let Some(value) = parsed.value(flag) {
            body.insert(field.into(), json!(value));
        }
    }
    if let Some(value) = parsed.value("renewable") {
        let renewable: bool = value
            .parse()
            .map_err(|_| anyhow!("-renewable: '{value}' is not true or false"))?;
        body.insert("renewable".into(), json!(renewable));
    }
    if let Some(value) = parsed.value("use-limit") {
        let uses: u64 = value
            .parse()
            .map_err(|_| anyhow!("-use-limit: '{value}' is not a whole number"))?;
        body.insert("num_uses".into(), json!(uses));
    }
    if parsed.is_set("orphan") {
        body.insert("no_parent".into(), json!(true));
    }
    if parsed.is_set("no-default-policy") {
        body.insert("no_default_policy".into(), json!(true));
    }
    let mut meta = Map::new();
    for pair in parsed.values_of("metadata") {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("-metadata: '{pair}' is not key=value"))?;
        meta.insert(key.to_string(), json!(value));
    }
    if !meta.is_empty() {
        body.insert("meta".into(), Value::Object(meta));
    }
    let answer = client(&parsed)?.call("POST", "auth/token/create", Some(&body))?;
    print_auth(&answer, format, parsed.value("field"))
}

fn lookup(args: &[String]) -> Result<()> {
    let parsed = parse(LOOKUP_FLAGS, TOKEN_HELP, args)?;
    let format = format(&parsed)?;
    let argument = single_argument(&parsed, "rotor token lookup [TOKEN | -accessor ACCESSOR]")?;
    let client = client(&parsed)?;
    let answer = match (argument, parsed.is_set("accessor")) {
        (None, true) => bail!("-accessor needs the accessor as its argument"),
        (None, false) => client.call("GET", "auth/token/lookup-self", None)?,
        (Some(accessor), true) => {
            let body = Map::from_iter([("accessor".to_string(), json!(accessor))]);
            client.call("POST", "auth/token/lookup-accessor", Some(&body))?
        }
        (Some(token), false) => {
            let body = Map::from_iter([("token".to_string(), json!(token))]);
            client.call("POST", "auth/token/lookup", Some(&body))?
        }
    };
    super::print_answer(
        "read",
        "auth/token/lookup",
        &answer,
        format,
        parsed.value("field"),
    )
}

fn renew(args: &[String]) -> Result<()> {
    let parsed = parse(RENEW_FLAGS, TOKEN_HELP, args)?;
    let format = format(&parsed)?;
    let argument = single_argument(
        &parsed,
        "rotor token renew [-increment=1h] [TOKEN | -accessor ACCESSOR]",
    )?;
    let mut body = Map::new();
    if let Some(increment) = parsed.value("increment") {
        body.insert("increment".into(), json!(increment));
    }
    let path = match (argument, parsed.is_set("accessor")) {
        (None, true) => bail!("-accessor needs the accessor as its argument"),
        (None, false) => "auth/token/renew-self",
        (Some(accessor), true) => {
            body.insert("accessor".into(), json!(accessor));
            "auth/token/renew-accessor"
        }
        (Some(token), false) => {
            body.insert("token".into(), json!(token));
            "auth/token/renew"
        }
    };
    let answer = client(&parsed)?.call("POST", path, Some(&body))?;
    print_auth(&answer, format, parsed.value("field"))
}

fn revoke(args: &[String]) -> Result<()> {
    let parsed = parse(REVOKE_FLAGS, TOKEN_HELP, args)?;
    let argument = single_argument(
        &parsed,
        "rotor token revoke [TOKEN | -accessor ACCESSOR | -self] [-mode=orphan]",
    )?;
    let orphan = match parsed.value("mode") {
        None | Some("") => false,
        Some("orphan") => true,
        Some(other) => bail!("-mode: '{other}' is not supported; use -mode=orphan or omit it"),
    };
    let mut body = Map::new();
    let path = match (argument, parsed.is_set("self"), parsed.is_set("accessor")) {
        (Some(_), true, _) => bail!("-self takes no argument: it revokes the token in use"),
        (None, true, _) if orphan => bail!("-mode=orphan cannot be combined with -self"),
        (None, true, _) => "auth/token/revoke-self",
        (None, false, _) => {
            bail!("rotor token revoke needs a TOKEN, -accessor ACCESSOR, or -self")
        }
        (Some(_), false, true) if orphan => {
            bail!("-mode=orphan needs the token itself, not its accessor")
        }
        (Some(accessor), false, true) => {
            body.insert("accessor".into(), json!(accessor));
            "auth/token/revoke-accessor"
        }
        (Some(token), false, false) => {
            body.insert("token".into(), json!(token));
            if orphan {
                "auth/token/revoke-orphan"
            } else {
                "auth/token/revoke"
            }
        }
    };
    client(&parsed)?.call("POST", path, Some(&body))?;
    println!("Success! Revoked token (if it existed)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_block_becomes_vaults_token_rows() {
        let auth = json!({
            "client_token": "rtr.x",
            "accessor": "acc",
            "lease_duration": 3600,
            "renewable": true,
            "policies": ["apps", "default"],
            "token_policies": ["apps", "default"],
            "metadata": {"team": "ops"},
        });
        let rows = auth_rows(&auth);
        assert_eq!(rows["token"], "rtr.x");
        assert_eq!(rows["token_accessor"], "acc");
        assert_eq!(rows["token_duration"], 3600);
        assert_eq!(rows["token_policies"], json!(["apps", "default"]));
        assert_eq!(rows["token_meta_team"], "ops");
    }
}
