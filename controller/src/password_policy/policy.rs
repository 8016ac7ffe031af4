//! Password policy documents: HCL as Vault writes it, parsed and validated.
//!
//! ```hcl
//! length = 20
//! rule "charset" {
//!   charset   = "abcdefghijklmnopqrstuvwxyz"
//!   min-chars = 1
//! }
//! ```
//!
//! Owns parsing and the write-time checks that refuse a policy no password can satisfy (or
//! that would hand a host an unusable password), each with a reason. Pure: no store, no
//! randomness. Must not generate passwords (`generate.rs` does).

use serde_json::Value;

/// Shortest password a policy may ask for (Vault's floor).
pub const MIN_LENGTH: usize = 4;
/// Longest password a policy may ask for: well past any host's needs, small enough that a
/// typo (`length = 20000`) is caught.
pub const MAX_LENGTH: usize = 256;
/// Most characters one rule's charset may hold.
const MAX_CHARSET_CHARS: usize = 1024;
/// Most rules one policy may hold.
const MAX_RULES: usize = 32;

/// One `rule "charset"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    /// The rule's characters, each once, in the order written.
    pub charset: Vec<char>,
    /// At least this many characters of a password come from `charset`.
    pub min_chars: usize,
}

/// A validated password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub rules: Vec<CharsetRule>,
}

/// Why a policy document was refused. Each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("failed to parse password policy: {0}")]
    Syntax(String),
    #[error("password policy has no 'length': add length = N ({MIN_LENGTH}-{MAX_LENGTH})")]
    MissingLength,
    #[error("'length' must be a whole number between {MIN_LENGTH} and {MAX_LENGTH}, got {0}")]
    LengthOutOfRange(String),
    #[error(
        "password policy has no rules: add at least one rule \"charset\" {{ charset = \"...\" }}"
    )]
    NoRules,
    #[error("password policy has {0} rules; at most {MAX_RULES} are allowed")]
    TooManyRules(usize),
    #[error("unexpected top-level \"{0}\": a password policy holds 'length' and rule blocks")]
    UnexpectedTopLevel(String),
    #[error("rule \"{0}\" is not supported: Rotor knows rule \"charset\"")]
    UnknownRule(String),
    #[error("rule {rule} (charset): {detail}")]
    BadRule { rule: usize, detail: String },
    #[error("rule {rule} (charset): the charset is empty; list the characters it may use")]
    EmptyCharset { rule: usize },
    #[error(
        "rule {rule} (charset): character {character:?} cannot be in a password (control characters and whitespace break chpasswd and passwd)"
    )]
    UnusableCharacter { rule: usize, character: char },
    #[error(
        "the rules' min-chars add up to {total}, more than length = {length}: no password can satisfy them"
    )]
    MinCharsExceedLength { total: usize, length: usize },
}

impl PasswordPolicy {
    /// Parses and validates an HCL policy document.
    pub fn parse(text: &str) -> Result<Self, PasswordPolicyError> {
        // Vault's older HCL parser also takes a block's settings on one line
        // (`rule "charset" { charset = "abc" min-chars = 1 }`); HCL 2 wants one per line, so
        // such a document is read again with its settings split onto lines.
        let body = hcl::parse(text)
            .or_else(|error| hcl::parse(&one_setting_per_line(text)).map_err(|_| error))
            .map_err(|error| PasswordPolicyError::Syntax(error.to_string()))?;
        let mut length = None;
        for attribute in body.attributes() {
            match attribute.key() {
                "length" => length = Some(literal(attribute.expr())),
                other => return Err(PasswordPolicyError::UnexpectedTopLevel(other.into())),
            }
        }
        let mut rules = Vec::new();
        for block in body.blocks() {
            if block.identifier() != "rule" {
                return Err(PasswordPolicyError::UnexpectedTopLevel(
                    block.identifier().into(),
                ));
            }
            let number = rules.len() + 1;
            let [label] = block.labels() else {
                return Err(PasswordPolicyError::BadRule {
                    rule: number,
                    detail: "a rule takes exactly one type: rule \"charset\" { ... }".into(),
                });
            };
            if label.as_str() != "charset" {
                return Err(PasswordPolicyError::UnknownRule(label.as_str().into()));
            }
            if let Some(inner) = block.body().blocks().next() {
                return Err(PasswordPolicyError::BadRule {
                    rule: number,
                    detail: format!("unexpected block \"{}\"", inner.identifier()),
                });
            }
            let mut charset = None;
            let mut min_chars = None;
            for attribute in block.body().attributes() {
                let value = literal(attribute.expr());
                match attribute.key() {
                    "charset" => charset = Some(value),
                    "min-chars" | "min_chars" => min_chars = Some(value),
                    other => {
                        return Err(PasswordPolicyError::BadRule {
                            rule: number,
                            detail: format!(
                                "unknown setting \"{other}\"; a charset rule takes charset and min-chars"
                            ),
                        });
                    }
                }
            }
            rules.push(charset_rule(number, charset, min_chars)?);
        }
        let length = match length {
            None => return Err(PasswordPolicyError::MissingLength),
            Some(value) => whole_number(&value)
                .filter(|length| (MIN_LENGTH..=MAX_LENGTH).contains(length))
                .ok_or_else(|| PasswordPolicyError::LengthOutOfRange(describe(&value)))?,
        };
        Self::new(length, rules)
    }

    /// Validates a policy built in code (the OS engine's default).
    pub fn new(length: usize, rules: Vec<CharsetRule>) -> Result<Self, PasswordPolicyError> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(PasswordPolicyError::LengthOutOfRange(length.to_string()));
        }
        if rules.is_empty() {
            return Err(PasswordPolicyError::NoRules);
        }
        if rules.len() > MAX_RULES {
            return Err(PasswordPolicyError::TooManyRules(rules.len()));
        }
        for (index, rule) in rules.iter().enumerate() {
            check_charset(index + 1, &rule.charset)?;
        }
        let total = rules
            .iter()
            .fold(0usize, |sum, rule| sum.saturating_add(rule.min_chars));
        if total > length {
            return Err(PasswordPolicyError::MinCharsExceedLength { total, length });
        }
        Ok(Self { length, rules })
    }

    /// Every character any rule allows, each once, in the order first written.
    pub fn alphabet(&self) -> Vec<char> {
        let mut alphabet = Vec::new();
        for character in self.rules.iter().flat_map(|rule| rule.charset.iter()) {
            if !alphabet.contains(character) {
                alphabet.push(*character);
            }
        }
        alphabet
    }

    /// Whether `password` obeys the policy: its length, its alphabet, every rule's minimum.
    pub fn accepts(&self, password: &str) -> bool {
        let alphabet = self.alphabet();
        password.chars().count() == self.length
            && password.chars().all(|c| alphabet.contains(&c))
            && self.rules.iter().all(|rule| {
                password
                    .chars()
                    .filter(|c| rule.charset.contains(c))
                    .count()
                    >= rule.min_chars
            })
    }
}

/// Rewrites one-line blocks the way Vault's older parser read them: a newline after `{`,
/// around `}`, and between a value and the next setting on the same line. Strings and
/// comments are copied unchanged.
fn one_setting_per_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut chars = text.chars().peekable();
    // Whether the last token outside a string was a value (a string, number or bool), so an
    // identifier after it on the same line starts a new setting.
    let mut after_value = false;
    while let Some(character) = chars.next() {
        match character {
            '"' => {
                if after_value {
                    out.push('\n');
                }
                out.push('"');
                while let Some(inner) = chars.next() {
                    out.push(inner);
                    match inner {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                out.push(escaped);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                after_value = true;
            }
            '{' => {
                out.push_str("{\n");
                after_value = false;
            }
            '}' => {
                out.push_str("\n}\n");
                after_value = false;
            }
            '#' => {
                out.push('#');
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
                after_value = false;
            }
            digit if digit.is_ascii_digit() => {
                out.push(digit);
                while let Some(next) = chars.next_if(|c| c.is_ascii_digit() || *c == '.') {
                    out.push(next);
                }
                after_value = true;
            }
            start if start.is_alphabetic() || start == '_' => {
                if after_value {
                    out.push('\n');
                }
                let mut identifier = String::from(start);
                while let Some(next) =
                    chars.next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                {
                    identifier.push(next);
                }
                after_value = matches!(identifier.as_str(), "true" | "false");
                out.push_str(&identifier);
            }
            '\n' => {
                out.push('\n');
                after_value = false;
            }
            other => {
                out.push(other);
                if !other.is_whitespace() {
                    after_value = false;
                }
            }
        }
    }
    out
}

/// An HCL literal as a JSON value; anything else (a template, a reference) as its text, so
/// the error can quote it.
fn literal(expression: &hcl::Expression) -> Value {
    match expression {
        hcl::Expression::String(text) => Value::String(text.clone()),
        hcl::Expression::Number(number) => serde_json::to_value(number).unwrap_or(Value::Null),
        hcl::Expression::Bool(flag) => Value::Bool(*flag),
        other => Value::Array(vec![Value::String(other.to_string())]),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Array(items) => items
            .first()
            .and_then(Value::as_str)
            .unwrap_or("an expression")
            .to_string(),
        other => other.to_string(),
    }
}

fn whole_number(value: &Value) -> Option<usize> {
    match value {
        Value::Number(number) => number.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn charset_rule(
    rule: usize,
    charset: Option<Value>,
    min_chars: Option<Value>,
) -> Result<CharsetRule, PasswordPolicyError> {
    let text = match charset {
        None => return Err(PasswordPolicyError::EmptyCharset { rule }),
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(PasswordPolicyError::BadRule {
                rule,
                detail: format!(
                    "charset must be a quoted string (write \"$${{\" for a literal \"${{\"), got {}",
                    describe(&other)
                ),
            });
        }
    };
    let mut characters = Vec::new();
    for character in text.chars() {
        if !characters.contains(&character) {
            characters.push(character);
        }
    }
    let min_chars = match min_chars {
        None => 0,
        Some(value) => whole_number(&value).ok_or_else(|| PasswordPolicyError::BadRule {
            rule,
            detail: format!(
                "min-chars must be a whole number of 0 or more, got {}",
                describe(&value)
            ),
        })?,
    };
    Ok(CharsetRule {
        charset: characters,
        min_chars,
    })
}

fn check_charset(rule: usize, charset: &[char]) -> Result<(), PasswordPolicyError> {
    if charset.is_empty() {
        return Err(PasswordPolicyError::EmptyCharset { rule });
    }
    if charset.len() > MAX_CHARSET_CHARS {
        return Err(PasswordPolicyError::BadRule {
            rule,
            detail: format!(
                "the charset holds {} characters; at most {MAX_CHARSET_CHARS} are allowed",
                charset.len()
            ),
        });
    }
    if let Some(character) = charset.iter().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(PasswordPolicyError::UnusableCharacter {
            rule,
            character: *character,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAULT_EXAMPLE: &str = r#"
length = 20

rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 1
}
rule "charset" {
  charset = "!@#$%^&*"
  min-chars = 1
}
"#;

    #[test]
    fn parses_vaults_example() {
        let policy = PasswordPolicy::parse(VAULT_EXAMPLE).expect("valid");
        assert_eq!(policy.length, 20);
        assert_eq!(policy.rules.len(), 4);
        assert_eq!(
            policy.rules[3].charset,
            "!@#$%^&*".chars().collect::<Vec<_>>()
        );
        assert!(policy.rules.iter().all(|rule| rule.min_chars == 1));
        assert_eq!(policy.alphabet().len(), 26 + 26 + 10 + 8);
    }

    #[test]
    fn one_line_blocks_as_vaults_older_parser_reads_them() {
        let policy = PasswordPolicy::parse(
            "length = 20 # twenty\nrule \"charset\" { charset = \"a\\\"b{}#\" min-chars = 2 }\nrule \"charset\" { charset = \"0123456789\" min-chars = 1 } rule \"charset\" { charset = \"xyz\" }",
        )
        .expect("valid");
        assert_eq!(policy.length, 20);
        assert_eq!(policy.rules.len(), 3);
        assert_eq!(policy.rules[0].charset, vec!['a', '"', 'b', '{', '}', '#']);
        assert_eq!(policy.rules[0].min_chars, 2);
        assert_eq!(policy.rules[1].min_chars, 1);
        assert_eq!(policy.rules[2].min_chars, 0);
        // A document broken either way still gets HCL's own error.
        assert!(refusal("length = 8\nrule \"charset\" { charset = }").contains("failed to parse"));
    }

    #[test]
    fn charsets_are_deduplicated_and_min_chars_defaults_to_zero() {
        let policy = PasswordPolicy::parse(
            "length = 8\nrule \"charset\" { charset = \"aab\" }\nrule \"charset\" { charset = \"bc\" }",
        )
        .expect("valid");
        assert_eq!(policy.rules[0].charset, vec!['a', 'b']);
        assert_eq!(policy.rules[0].min_chars, 0);
        assert_eq!(policy.alphabet(), vec!['a', 'b', 'c']);
    }

    fn refusal(text: &str) -> String {
        PasswordPolicy::parse(text)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn impossible_policies_are_refused_with_a_reason() {
        let rule = "rule \"charset\" {\n  charset = \"abc\"\n  min-chars = 1\n}";
        assert!(refusal(rule).contains("no 'length'"));
        assert!(refusal(&format!("length = 0\n{rule}")).contains("between 4 and 256, got 0"));
        assert!(refusal(&format!("length = 257\n{rule}")).contains("got 257"));
        assert!(refusal(&format!("length = -3\n{rule}")).contains("got -3"));
        assert!(refusal(&format!("length = \"x\"\n{rule}")).contains("length"));
        assert!(refusal("length = 10").contains("no rules"));
        assert!(
            refusal("length = 10\nrule \"charset\" { charset = \"\" }")
                .contains("charset is empty")
        );
        assert!(refusal("length = 10\nrule \"charset\" { min-chars = 2 }").contains("empty"));
        assert_eq!(
            refusal(
                "length = 4\nrule \"charset\" {\n  charset = \"ab\"\n  min-chars = 3\n}\nrule \"charset\" {\n  charset = \"12\"\n  min-chars = 2\n}"
            ),
            "the rules' min-chars add up to 5, more than length = 4: no password can satisfy them"
        );
        assert!(refusal("length = 10\nrule \"charset\" { charset = \"ab c\" }").contains("' '"));
        assert!(
            refusal("length = 10\nrule \"charset\" { charset = \"ab\\nc\" }").contains("'\\n'")
        );
        assert!(
            refusal("length = 10\nrule \"charset\" {\n  charset = \"ab\"\n  min-chars = -1\n}")
                .contains("min-chars must be a whole number")
        );
        assert!(refusal("length = 10\nrule \"other\" { charset = \"ab\" }").contains("\"other\""));
        assert!(
            refusal("length = 10\nrule \"charset\" {\n  charset = \"ab\"\n  max-chars = 3\n}")
                .contains("unknown setting \"max-chars\"")
        );
        assert!(refusal("length = 10\nmax = 3\n").contains("unexpected top-level \"max\""));
        assert!(refusal("length = = 3").contains("failed to parse"));
    }

    #[test]
    fn accepts_checks_length_alphabet_and_minimums() {
        let policy = PasswordPolicy::parse(
            "length = 4\nrule \"charset\" {\n  charset = \"ab\"\n  min-chars = 1\n}\nrule \"charset\" {\n  charset = \"12\"\n  min-chars = 2\n}",
        )
        .expect("valid");
        assert!(policy.accepts("a12b"));
        assert!(!policy.accepts("ab1b"), "needs two digits");
        assert!(!policy.accepts("a12"), "too short");
        assert!(!policy.accepts("a12c"), "c is not allowed");
    }
}
