//! The one set of rules for names and addresses that arrive from outside: object names that
//! become path segments (hosts, accounts, roles, policies, mount segments), Linux account
//! names, and the address of a host to connect to.
//!
//! Pure checks: no IO, no DNS resolution, no logging. An error never echoes a rejected value
//! in full: it is quoted, escaped and shortened by [`quote_for_message`], so a 64 KiB value or
//! one holding a newline cannot flood or forge a log line.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Longest object name, in bytes (every allowed character is one byte).
pub const MAX_OBJECT_NAME_LEN: usize = 128;

/// Longest Linux account name, in bytes (shadow-utils' `LOGIN_NAME_MAX` is 32 with the NUL
/// on some systems; 32 is what `useradd` takes everywhere Rotor runs).
pub const MAX_USERNAME_LEN: usize = 32;

/// Longest DNS host name, without the optional trailing dot (RFC 1035 §2.3.4).
pub const MAX_HOST_NAME_LEN: usize = 253;

/// Longest label of a DNS host name (RFC 1035 §2.3.4).
pub const MAX_HOST_LABEL_LEN: usize = 63;

/// Characters shown of a rejected value in a message, before it is cut with `…`.
const SHOWN_CHARACTERS: usize = 40;

/// What object names are, for messages.
const OBJECT_NAME_RULE: &str =
    "use 1 to 128 of the characters a-z, A-Z, 0-9, '-', '_', '.' and '@', other than '.' or '..'";

/// What Linux account names are, for messages.
const USERNAME_RULE: &str = "names match ^[a-z_][a-z0-9_.-]{0,31}$";

/// What host addresses are, for messages.
const ADDRESS_RULE: &str = "use a DNS name (labels of a-z, A-Z, 0-9 and '-', at most 253 characters), an IPv4 address or an IPv6 address (brackets allowed)";

/// A possibly hostile string made safe for a message: escaped (`\n`, `\0`, …), quoted, and
/// cut to 40 characters with `…`.
pub fn quote_for_message(text: &str) -> String {
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > SHOWN_CHARACTERS {
        let cut: String = escaped.chars().take(SHOWN_CHARACTERS).collect();
        format!("\"{cut}…\"")
    } else {
        format!("\"{escaped}\"")
    }
}

/// A character in a message: `'/'`, `'\0'`, `' '`.
fn quote_character(character: char) -> String {
    format!("'{}'", character.escape_debug())
}

/// What is wrong with an object name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_OBJECT_NAME_LEN`] bytes.
    TooLong {
        /// Length of the rejected name, in bytes.
        length: usize,
    },
    /// The name is `.` or `..`: HTTP clients (curl, hvac) resolve them as path steps, so the
    /// object could never be read or deleted again.
    DotSegment,
    /// The name holds a character outside the allowed set (`/`, a space, a control
    /// character, anything not ASCII …).
    ForbiddenCharacter {
        /// The first such character.
        character: char,
    },
}

impl fmt::Display for NameProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => formatter.write_str("it is empty"),
            NameProblem::TooLong { length } => write!(
                formatter,
                "it is {length} bytes long, longer than {MAX_OBJECT_NAME_LEN}"
            ),
            NameProblem::DotSegment => formatter.write_str(
                "'.' and '..' are path steps to clients, so the object could not be read or deleted",
            ),
            NameProblem::ForbiddenCharacter { character } => {
                write!(formatter, "it contains {}", quote_character(*character))
            }
        }
    }
}

/// An object name that cannot be a path segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} name {shown} is invalid: {problem}; {OBJECT_NAME_RULE}")]
pub struct InvalidName {
    /// What the name names (`host`, `account`, `role` …).
    pub kind: &'static str,
    /// The name, as [`quote_for_message`] shows it.
    pub shown: String,
    /// What is wrong with it.
    pub problem: NameProblem,
}

fn is_object_name_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.' | '@')
}

/// Checks a name that becomes one segment of an API path (`os/hosts/<name>`): 1 to 128 of
/// `a-z A-Z 0-9 - _ . @`, and not `.` or `..`. Anything else (`/`, whitespace, NUL and other
/// control characters, non-ASCII) is refused. `kind` says what the name names, in messages.
pub fn validate_object_name(kind: &'static str, name: &str) -> Result<(), InvalidName> {
    let invalid = |problem| InvalidName {
        kind,
        shown: quote_for_message(name),
        problem,
    };
    if name.is_empty() {
        return Err(invalid(NameProblem::Empty));
    }
    if let Some(character) = name.chars().find(|c| !is_object_name_character(*c)) {
        return Err(invalid(NameProblem::ForbiddenCharacter { character }));
    }
    if name.len() > MAX_OBJECT_NAME_LEN {
        return Err(invalid(NameProblem::TooLong { length: name.len() }));
    }
    if name == "." || name == ".." {
        return Err(invalid(NameProblem::DotSegment));
    }
    Ok(())
}

/// What is wrong with a Linux account name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_USERNAME_LEN`] bytes.
    TooLong {
        /// Length of the rejected name, in bytes.
        length: usize,
    },
    /// The name starts with something other than `a-z` or `_` (a digit, `-`, an upper-case
    /// letter …).
    BadFirstCharacter {
        /// The first character.
        character: char,
    },
    /// The name holds a character outside `a-z 0-9 _ . -`.
    ForbiddenCharacter {
        /// The first such character.
        character: char,
    },
}

impl fmt::Display for UsernameProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsernameProblem::Empty => formatter.write_str("it is empty"),
            UsernameProblem::TooLong { length } => write!(
                formatter,
                "it is {length} bytes long, longer than {MAX_USERNAME_LEN}"
            ),
            UsernameProblem::BadFirstCharacter { character } => write!(
                formatter,
                "it starts with {}, not a-z or _",
                quote_character(*character)
            ),
            UsernameProblem::ForbiddenCharacter { character } => write!(
                formatter,
                "it contains {}; only a-z, 0-9, _, . and - are allowed",
                quote_character(*character)
            ),
        }
    }
}

/// A name that is not a Linux account name Rotor will put on a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("username {shown} is not a valid Linux account name ({problem}); {USERNAME_RULE}")]
pub struct InvalidUsername {
    /// The name, as [`quote_for_message`] shows it.
    pub shown: String,
    /// What is wrong with it.
    pub problem: UsernameProblem,
}

/// Checks a Linux account name, `^[a-z_][a-z0-9_.-]{0,31}$`: safe on a command line, in a
/// `chpasswd` line, in PAM's `PAM_USER` and in a log.
pub fn validate_username(username: &str) -> Result<(), InvalidUsername> {
    let invalid = |problem| InvalidUsername {
        shown: quote_for_message(username),
        problem,
    };
    let mut characters = username.chars();
    let Some(first) = characters.next() else {
        return Err(invalid(UsernameProblem::Empty));
    };
    if !(first.is_ascii_lowercase() || first == '_') {
        return Err(invalid(UsernameProblem::BadFirstCharacter {
            character: first,
        }));
    }
    let allowed = |c: &char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(*c);
    if let Some(character) = characters.find(|c| !allowed(c)) {
        return Err(invalid(UsernameProblem::ForbiddenCharacter { character }));
    }
    if username.len() > MAX_USERNAME_LEN {
        return Err(invalid(UsernameProblem::TooLong {
            length: username.len(),
        }));
    }
    Ok(())
}

/// A host to connect to, as [`parse_host_address`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddress {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, as written (`localhost`, `web-03.example.com`).
    Name(String),
}

/// The form to store and connect to: an IPv6 address without brackets (`fd00::7`), a
/// name as written.
impl fmt::Display for HostAddress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostAddress::Ip(ip) => write!(formatter, "{ip}"),
            HostAddress::Name(name) => formatter.write_str(name),
        }
    }
}

/// What is wrong with a host address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressProblem {
    /// The address is empty.
    Empty,
    /// The name is longer than [`MAX_HOST_NAME_LEN`] bytes.
    TooLong {
        /// Length of the rejected address, in bytes.
        length: usize,
    },
    /// A character no host name or IP address holds (whitespace, NUL, `/`, `_`, …).
    ForbiddenCharacter {
        /// The first such character.
        character: char,
    },
    /// Two dots in a row, or a dot at the start: an empty label.
    EmptyLabel,
    /// A label longer than [`MAX_HOST_LABEL_LEN`] bytes.
    LabelTooLong,
    /// A label starting or ending with `-`.
    LabelHyphen,
    /// Dotted digits that are not an IPv4 address (`10.0.0.256`, `1.2.3`): a name's last
    /// label is never all digits.
    NumericName,
    /// In brackets, but not an IPv6 address.
    BracketsWithoutIpv6,
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressProblem::Empty => formatter.write_str("it is empty"),
            AddressProblem::TooLong { length } => write!(
                formatter,
                "it is {length} bytes long, longer than {MAX_HOST_NAME_LEN}"
            ),
            AddressProblem::ForbiddenCharacter { character } => {
                write!(formatter, "it contains {}", quote_character(*character))
            }
            AddressProblem::EmptyLabel => {
                formatter.write_str("it has an empty label (two dots in a row, or a leading dot)")
            }
            AddressProblem::LabelTooLong => write!(
                formatter,
                "a label is longer than {MAX_HOST_LABEL_LEN} characters"
            ),
            AddressProblem::LabelHyphen => formatter.write_str("a label starts or ends with '-'"),
            AddressProblem::NumericName => {
                formatter.write_str("it looks like an IPv4 address but is not one")
            }
            AddressProblem::BracketsWithoutIpv6 => {
                formatter.write_str("only an IPv6 address goes in brackets")
            }
        }
    }
}

/// A value that is neither a host name nor an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address {shown} is not a host name or IP address: {problem}; {ADDRESS_RULE}")]
pub struct InvalidAddress {
    /// The address, as [`quote_for_message`] shows it.
    pub shown: String,
    /// What is wrong with it.
    pub problem: AddressProblem,
}

/// Reads the address of a host to connect to: an IPv4 address, an IPv6 address (bare or in
/// brackets, without a zone), or a DNS host name of RFC 1123 labels (letters, digits and
/// `-`, 1 to 63 each, not starting or ending with `-`), at most 253 characters, optionally
/// ending with a dot. `localhost` is a name like any other. Nothing is resolved.
pub fn parse_host_address(text: &str) -> Result<HostAddress, InvalidAddress> {
    let invalid = |problem| InvalidAddress {
        shown: quote_for_message(text),
        problem,
    };
    if text.is_empty() {
        return Err(invalid(AddressProblem::Empty));
    }
    if let Some(inner) = text.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
            .map(|ip| HostAddress::Ip(IpAddr::V6(ip)))
            .ok_or_else(|| invalid(AddressProblem::BracketsWithoutIpv6));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(HostAddress::Ip(ip));
    }
    let name_character = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.');
    if let Some(character) = text.chars().find(|c| !name_character(c)) {
        return Err(invalid(AddressProblem::ForbiddenCharacter { character }));
    }
    let without_root = text.strip_suffix('.').unwrap_or(text);
    if without_root.len() > MAX_HOST_NAME_LEN {
        return Err(invalid(AddressProblem::TooLong { length: text.len() }));
    }
    for label in without_root.split('.') {
        if label.is_empty() {
            return Err(invalid(AddressProblem::EmptyLabel));
        }
        if label.len() > MAX_HOST_LABEL_LEN {
            return Err(invalid(AddressProblem::LabelTooLong));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(AddressProblem::LabelHyphen));
        }
    }
    let last_label = without_root.rsplit('.').next().unwrap_or(without_root);
    if last_label.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(AddressProblem::NumericName));
    }
    Ok(HostAddress::Name(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_refuse_dot_segments() {
        for dots in [".", ".."] {
            let error = validate_object_name("host", dots).expect_err("a path step");
            assert_eq!(error.problem, NameProblem::DotSegment, "{dots}");
            assert!(error.to_string().starts_with("host name \""), "{error}");
        }
        // Dots inside a name are fine.
        for good in ["...", "web.example", ".hidden", "a..b"] {
            assert_eq!(validate_object_name("host", good), Ok(()), "{good}");
        }
    }

    #[test]
    fn object_names_take_the_names_in_use() {
        for good in [
            "web",
            "web-1",
            "db_2",
            "Web03",
            "h00000",
            "a.password",
            "team@example",
            "ssh-client-signer",
            &"a".repeat(MAX_OBJECT_NAME_LEN),
        ] {
            assert_eq!(validate_object_name("host", good), Ok(()), "{good}");
        }
    }

    #[test]
    fn object_names_refuse_separators_whitespace_controls_and_length() {
        let problem = |name: &str| validate_object_name("account", name).map_err(|e| e.problem);
        assert_eq!(problem(""), Err(NameProblem::Empty));
        for (name, character) in [
            ("a/b", '/'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\0b", '\0'),
            ("a\nb", '\n'),
            ("é", 'é'),
            ("a:b", ':'),
            ("a%2fb", '%'),
        ] {
            assert_eq!(
                problem(name),
                Err(NameProblem::ForbiddenCharacter { character }),
                "{name:?}"
            );
        }
        assert_eq!(
            problem(&"a".repeat(MAX_OBJECT_NAME_LEN + 1)),
            Err(NameProblem::TooLong {
                length: MAX_OBJECT_NAME_LEN + 1
            })
        );
    }

    #[test]
    fn object_name_errors_say_which_name_what_is_wrong_and_what_is_allowed() {
        let error = validate_object_name("account", "a\0b").expect_err("NUL");
        assert_eq!(
            error.to_string(),
            "account name \"a\\0b\" is invalid: it contains '\\0'; use 1 to 128 of the characters a-z, A-Z, 0-9, '-', '_', '.' and '@', other than '.' or '..'"
        );
        // A huge name is not echoed in full.
        let error = validate_object_name("host", &"x".repeat(65536)).expect_err("long");
        assert!(error.to_string().len() < 300, "{error}");
        assert!(error.to_string().contains("65536 bytes"), "{error}");
    }

    #[test]
    fn usernames_follow_the_linux_rules() {
        for good in ["app1", "_svc", "a", "web-01.x_y", "root", &"a".repeat(32)] {
            assert_eq!(validate_username(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1app",
            "App",
            "aPP",
            "-rf",
            ".",
            "..",
            "a:b",
            "a/b",
            "a b",
            "a\nb",
            "a\0b",
            "a$",
            "é",
            &"a".repeat(33),
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        let error = validate_username("root\nx").expect_err("newline refused");
        assert!(error.to_string().contains(r#""root\nx""#), "{error}");
        assert!(error.to_string().contains("'\\n'"), "{error}");
        assert_eq!(
            validate_username("-rf").map_err(|e| e.problem),
            Err(UsernameProblem::BadFirstCharacter { character: '-' })
        );
        assert_eq!(
            validate_username(&"a".repeat(33)).map_err(|e| e.problem),
            Err(UsernameProblem::TooLong { length: 33 })
        );
    }

    #[test]
    fn addresses_are_ips_or_host_names() {
        let parsed = |text: &str| parse_host_address(text).map(|address| address.to_string());
        for (text, stored) in [
            ("localhost", "localhost"),
            ("web-03", "web-03"),
            ("web-03.example.com", "web-03.example.com"),
            ("web-03.example.com.", "web-03.example.com."),
            ("3com.example", "3com.example"),
            ("192.0.2.10", "192.0.2.10"),
            ("127.0.0.1", "127.0.0.1"),
            ("fd00::7", "fd00::7"),
            ("[fd00::7]", "fd00::7"),
            ("::1", "::1"),
        ] {
            assert_eq!(parsed(text), Ok(stored.to_string()), "{text}");
        }
        let label = "a".repeat(MAX_HOST_LABEL_LEN);
        let longest = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(longest.len(), MAX_HOST_NAME_LEN);
        assert!(parse_host_address(&longest).is_ok());
        assert!(parse_host_address(&format!("{longest}.")).is_ok());
        assert_eq!(
            parse_host_address(&format!("{longest}b")).map_err(|e| e.problem),
            Err(AddressProblem::TooLong {
                length: MAX_HOST_NAME_LEN + 1
            })
        );
    }

    #[test]
    fn addresses_refuse_nul_huge_values_and_malformed_names() {
        let problem = |text: &str| parse_host_address(text).map_err(|e| e.problem);
        assert_eq!(problem(""), Err(AddressProblem::Empty));
        assert_eq!(
            problem("10.0.0.1\0evil"),
            Err(AddressProblem::ForbiddenCharacter { character: '\0' })
        );
        let huge = "a".repeat(64 * 1024);
        assert_eq!(
            problem(&huge),
            Err(AddressProblem::TooLong { length: 64 * 1024 })
        );
        assert_eq!(
            problem(&format!("{}.example", "a".repeat(64))),
            Err(AddressProblem::LabelTooLong)
        );
        assert_eq!(problem("web..example"), Err(AddressProblem::EmptyLabel));
        assert_eq!(problem(".example"), Err(AddressProblem::EmptyLabel));
        assert_eq!(problem("-web.example"), Err(AddressProblem::LabelHyphen));
        assert_eq!(problem("web-.example"), Err(AddressProblem::LabelHyphen));
        assert_eq!(problem("10.0.0.256"), Err(AddressProblem::NumericName));
        assert_eq!(problem("1.2.3"), Err(AddressProblem::NumericName));
        assert_eq!(
            problem("[192.0.2.1]"),
            Err(AddressProblem::BracketsWithoutIpv6)
        );
        assert_eq!(
            problem("[fd00::7"),
            Err(AddressProblem::BracketsWithoutIpv6)
        );
        for (text, character) in [
            ("web 03", ' '),
            ("web_03", '_'),
            ("10.0.0.1:22", ':'),
            ("http://web", ':'),
            ("web/x", '/'),
            ("fe80::1%eth0", ':'),
            ("a\nb", '\n'),
        ] {
            assert_eq!(
                problem(text),
                Err(AddressProblem::ForbiddenCharacter { character }),
                "{text:?}"
            );
        }
        let error = parse_host_address(&huge).expect_err("huge");
        assert!(error.to_string().len() < 400, "{error}");
    }

    #[test]
    fn messages_quote_escape_and_shorten() {
        assert_eq!(quote_for_message("web"), "\"web\"");
        assert_eq!(quote_for_message("a\nb"), "\"a\\nb\"");
        let long = quote_for_message(&"x".repeat(100));
        assert_eq!(long, format!("\"{}…\"", "x".repeat(40)));
    }
}
