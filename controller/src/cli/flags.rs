//! Go-style flags as Vault's CLI takes them: `-name=value`, `-name value`, `--name`, boolean
//! `-f`; flags end at the first positional argument or `--`.
//!
//! Owns parsing against a declared list of flags; unknown flags are errors that list the
//! known ones; `-h`/`-help`/`--help` print a command's usage and that same list
//! ([`parse_or_help`]). Must not know what any flag means.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub name: &'static str,
    /// Other spellings (`f` for `force`).
    pub aliases: &'static [&'static str],
    pub takes_value: bool,
    pub help: &'static str,
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// The last value of each flag.
    pub values: HashMap<&'static str, String>,
    /// Every value of each flag, in order (for repeatable flags such as `-policy`).
    pub repeated: HashMap<&'static str, Vec<String>>,
    pub positional: Vec<String>,
}

impl Parsed {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
    /// Every value given for a repeatable flag, in order (empty when not given).
    pub fn values_of(&self, name: &str) -> Vec<&str> {
        self.repeated
            .get(name)
            .map(|values| values.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
    pub fn is_set(&self, name: &str) -> bool {
        self.values
            .get(name)
            .is_some_and(|value| !matches!(value.as_str(), "false" | "0"))
    }
}

pub fn parse(specs: &[FlagSpec], args: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        if arg == "--" {
            parsed.positional.extend(args[index + 1..].iter().cloned());
            break;
        }
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            parsed.positional.extend(args[index..].iter().cloned());
            break;
        };
        if stripped.is_empty() {
            // A lone "-" is a positional (stdin).
            parsed.positional.extend(args[index..].iter().cloned());
            break;
        }
        let (name, inline_value) = match stripped.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (stripped, None),
        };
        let spec = specs
            .iter()
            .find(|spec| spec.name == name || spec.aliases.contains(&name))
            .ok_or_else(|| {
                let known: Vec<String> =
                    specs.iter().map(|spec| format!("-{}", spec.name)).collect();
                format!(
                    "flag provided but not defined: -{name} (known flags: {})",
                    known.join(", ")
                )
            })?;
        let value = if spec.takes_value {
            match inline_value {
                Some(value) => value,
                None => {
                    index += 1;
                    args.get(index)
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?
                }
            }
        } else {
            inline_value.unwrap_or_else(|| "true".into())
        };
        parsed
            .repeated
            .entry(spec.name)
            .or_default()
            .push(value.clone());
        parsed.values.insert(spec.name, value);
        index += 1;
    }
    Ok(parsed)
}

/// Whether the flags before the first positional argument ask for help (`-h`, `-help`,
/// `--help`), as Go's flag package answers them whatever the command declares. Values of
/// flags that take one are skipped, so `-path -h` is a path, not a request for help.
pub fn wants_help(specs: &[FlagSpec], args: &[String]) -> bool {
    let mut index = 0;
    while index < args.len() {
        let arg = args[index].as_str();
        if matches!(arg, "-h" | "-help" | "--h" | "--help") {
            return true;
        }
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return false;
        };
        if stripped.is_empty() || arg == "--" {
            return false;
        }
        let takes_separate_value = !stripped.contains('=')
            && specs.iter().any(|spec| {
                spec.takes_value && (spec.name == stripped || spec.aliases.contains(&stripped))
            });
        index += if takes_separate_value { 2 } else { 1 };
    }
    false
}

/// Answered by a command that printed its help because it was asked for: the command did
/// what was asked, so `cli::main` exits 0 and prints nothing more.
#[derive(Debug, thiserror::Error)]
#[error("help was shown")]
pub struct HelpShown;

/// The text `-h` prints: the command's usage lines, then the flags of its table.
pub fn help_text(usage_text: &str, specs: &[FlagSpec]) -> String {
    if specs.is_empty() {
        return usage_text.to_string();
    }
    format!("{usage_text}\nFlags:\n{}", usage(specs))
}

/// [`parse`], for commands whose help comes from their flag table: when the flags ask for
/// help, prints [`help_text`] to stdout and answers [`HelpShown`]; an invalid flag's error
/// carries the same text.
pub fn parse_or_help(
    specs: &[FlagSpec],
    usage_text: &str,
    args: &[String],
) -> anyhow::Result<Parsed> {
    if wants_help(specs, args) {
        print!("{}", help_text(usage_text, specs));
        return Err(HelpShown.into());
    }
    parse(specs, args)
        .map_err(|error| anyhow::anyhow!("{error}\n\n{}", help_text(usage_text, specs)))
}

/// `-format`, as every command that prints an answer takes it.
pub const FORMAT: FlagSpec = FlagSpec {
    name: "format",
    aliases: &[],
    takes_value: true,
    help: "output format: table or json",
};

/// `-address`, as every command that talks to the server takes it.
pub const ADDRESS: FlagSpec = FlagSpec {
    name: "address",
    aliases: &[],
    takes_value: true,
    help: "server address (default $ROTOR_ADDR)",
};

pub fn usage(specs: &[FlagSpec]) -> String {
    specs
        .iter()
        .map(|spec| {
            let value = if spec.takes_value { "=<value>" } else { "" };
            format!("  -{}{value}\n      {}\n", spec.name, spec.help)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "format",
            aliases: &[],
            takes_value: true,
            help: "",
        },
        FlagSpec {
            name: "force",
            aliases: &["f"],
            takes_value: false,
            help: "",
        },
    ];

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn both_spellings_and_positional_stop() {
        let parsed =
            parse(SPECS, &strings(&["--format=json", "-f", "os/x", "-a=b"])).expect("parse");
        assert_eq!(parsed.value("format"), Some("json"));
        assert!(parsed.is_set("force"));
        assert_eq!(parsed.positional, strings(&["os/x", "-a=b"]));
        let parsed = parse(SPECS, &strings(&["-format", "table", "p"])).expect("parse");
        assert_eq!(parsed.value("format"), Some("table"));
        let error = parse(SPECS, &strings(&["-bogus", "p"])).expect_err("unknown");
        assert!(
            error.contains("-bogus") && error.contains("-format"),
            "{error}"
        );
        assert!(parse(SPECS, &strings(&["-format"])).is_err());
    }

    #[test]
    fn help_is_asked_for_only_among_the_flags() {
        for asked in [&["-h"][..], &["--help"], &["-help"], &["-f", "-h", "os/x"]] {
            assert!(wants_help(SPECS, &strings(asked)), "{asked:?}");
        }
        for not_asked in [
            &["os/x", "-h"][..],
            &["-format", "-h"],
            &["--", "-h"],
            &["-", "-h"],
            &[],
        ] {
            assert!(!wants_help(SPECS, &strings(not_asked)), "{not_asked:?}");
        }
    }

    #[test]
    fn help_lists_the_table_it_parses_with() {
        let error = parse_or_help(SPECS, "Usage: x\n", &strings(&["--help"])).expect_err("help");
        assert!(error.downcast_ref::<HelpShown>().is_some());
        let text = help_text("Usage: x\n", SPECS);
        assert!(
            text.starts_with("Usage: x\n\nFlags:\n  -format=<value>"),
            "{text}"
        );
        let error = parse_or_help(SPECS, "Usage: x\n", &strings(&["-bogus"])).expect_err("bad");
        assert!(format!("{error}").contains("Usage: x"), "{error}");
    }

    #[test]
    fn repeated_flags_keep_every_value() {
        let parsed = parse(
            SPECS,
            &strings(&["-format=a", "--format", "b", "-format=c", "x"]),
        )
        .expect("parse");
        assert_eq!(parsed.values_of("format"), vec!["a", "b", "c"]);
        assert_eq!(parsed.value("format"), Some("c"));
        assert!(parsed.values_of("force").is_empty());
    }
}
