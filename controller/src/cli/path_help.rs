//! `rotor path-help PATH`, as `vault path-help` does: asks `GET /v1/PATH?help=1` and prints
//! the path's help (its route, synopsis, fields with types and descriptions, description),
//! or with `-format=json` the whole answer (help text and OpenAPI document).
//!
//! Owns the command only. Must not render help itself: the server builds it from the path
//! table, so the CLI never disagrees with what the server accepts.

use std::io::Write;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::client::Client;
use super::flags::{self, FlagSpec};

pub(super) const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "format",
        aliases: &[],
        takes_value: true,
        help: "table (the help text, default) or json (the help and its OpenAPI document)",
    },
    FlagSpec {
        name: "address",
        aliases: &[],
        takes_value: true,
        help: "server address (default $ROTOR_ADDR)",
    },
];

pub const USAGE: &str = "Usage: rotor path-help [flags] PATH

  Shows the help of any API path, built by the server from its path table: the route it
  matches, what it does, and every field it takes with its type and description. PATH may
  name a concrete resource; it does not need to exist. Needs a valid token, and no policy
  on PATH.

      $ rotor path-help os/hosts/web-01
      $ rotor path-help sys/policies/acl/ops

Flags:
";

fn usage() -> String {
    format!("{USAGE}{}", flags::usage(FLAGS))
}

/// The request for `path`'s help (`PATH?help=1`, as Vault's client asks).
fn help_request_path(path: &str) -> String {
    format!("{}?help=1", path.trim_matches('/'))
}

/// The help text of a `?help=1` answer.
fn help_text(answer: &Value) -> Result<&str> {
    answer
        .get("help")
        .and_then(Value::as_str)
        .context("the server's answer has no help text")
}

pub fn run(args: &[String]) -> Result<()> {
    if matches!(
        args.first().map(String::as_str),
        Some("-h" | "-help" | "--help")
    ) {
        print!("{}", usage());
        return Ok(());
    }
    let parsed = flags::parse(FLAGS, args).map_err(|error| anyhow!("{error}\n\n{}", usage()))?;
    let [path] = parsed.positional.as_slice() else {
        bail!("path-help needs exactly one PATH\n\n{}", usage());
    };
    let json = match parsed.value("format").unwrap_or("table") {
        "table" => false,
        "json" => true,
        other => bail!("invalid -format '{other}': use table or json"),
    };
    let client = Client::from_env(parsed.value("address"))?;
    let answer = client.call("GET", &help_request_path(path), None)?;
    let text = if json {
        serde_json::to_string_pretty(&answer)?
    } else {
        help_text(&answer)?.to_string()
    };
    print_all(&text)
}

/// Prints `text` and a newline; a reader that stopped early (`| head`) is not an error.
fn print_all(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing the help to stdout")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_the_path_with_help_set() {
        assert_eq!(help_request_path("/os/hosts/x/"), "os/hosts/x?help=1");
    }

    #[test]
    fn prints_the_help_text_of_the_answer() {
        let answer = serde_json::json!({"help": "\nRequest: x\n", "openapi": {}});
        assert_eq!(help_text(&answer).expect("text"), "\nRequest: x\n");
        assert!(help_text(&serde_json::json!({"data": {}})).is_err());
    }
}
