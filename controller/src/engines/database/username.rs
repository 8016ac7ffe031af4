//! Usernames of dynamic roles: Vault's default shape `v-{display 8}-{role 8}-{random 20}-{unix}`
//! or a `username_template`, always within PostgreSQL's 63 bytes (NAMEDATALEN - 1).
//!
//! Unlike Vault (vault#326), fitting cuts the descriptive parts, never a random part, so two
//! names never collide because of truncation. Characters outside `[A-Za-z0-9_-]` in a display
//! or role name become `_`, so a name is always safe inside `"{{name}}"`. Pure: the caller
//! passes the random text and the time.

/// PostgreSQL truncates identifiers longer than this many bytes.
pub const MAX_NAME_BYTES: usize = 63;

/// Length of the random part of the default template.
pub const RANDOM_LEN: usize = 20;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    DisplayName,
    RoleName,
    /// `{{random N}}`.
    Random(usize),
    UnixTime,
    /// A truncated inner piece: `{{truncate N (.DisplayName)}}` is written as
    /// `{{.DisplayName | truncate N}}` here; both are accepted.
    Truncated(Box<Piece>, usize),
}

/// A parsed `username_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameTemplate {
    pieces: Vec<Piece>,
}

/// The default: `v-{{.DisplayName | truncate 8}}-{{.RoleName | truncate 8}}-{{random 20}}-{{unix_time}}`.
pub fn default_template() -> UsernameTemplate {
    UsernameTemplate {
        pieces: vec![
            Piece::Literal("v-".into()),
            Piece::Truncated(Box::new(Piece::DisplayName), 8),
            Piece::Literal("-".into()),
            Piece::Truncated(Box::new(Piece::RoleName), 8),
            Piece::Literal("-".into()),
            Piece::Random(RANDOM_LEN),
            Piece::Literal("-".into()),
            Piece::UnixTime,
        ],
    }
}

fn refused(problem: impl std::fmt::Display) -> String {
    format!(
        "field 'username_template': {problem}; use {{{{.DisplayName}}}}, {{{{.RoleName}}}}, {{{{random N}}}}, {{{{unix_time}}}}, optionally `| truncate N`, and at least one {{{{random N}}}} of 8 or more"
    )
}

fn parse_action(action: &str) -> Result<Piece, String> {
    let (inner, truncate) = match action.split_once('|') {
        Some((inner, filter)) => {
            let length = filter
                .trim()
                .strip_prefix("truncate")
                .map(str::trim)
                .and_then(|number| number.parse::<usize>().ok())
                .filter(|number| *number > 0)
                .ok_or_else(|| refused(format!("'{}' is not `truncate N`", filter.trim())))?;
            (inner.trim(), Some(length))
        }
        None => (action.trim(), None),
    };
    // Vault's spelling: `truncate 8 (.DisplayName)`.
    let (inner, truncate) = match inner.strip_prefix("truncate ") {
        Some(rest) if truncate.is_none() => {
            let (number, piece) = rest
                .trim()
                .split_once(' ')
                .ok_or_else(|| refused(format!("'{inner}' is not `truncate N (.Field)`")))?;
            let length = number
                .parse::<usize>()
                .ok()
                .filter(|number| *number > 0)
                .ok_or_else(|| refused(format!("'{number}' is not a length")))?;
            (
                piece
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .trim(),
                Some(length),
            )
        }
        _ => (inner, truncate),
    };
    let piece = match inner {
        ".DisplayName" => Piece::DisplayName,
        ".RoleName" => Piece::RoleName,
        "unix_time" => Piece::UnixTime,
        random if random.starts_with("random ") => {
            let length = random["random ".len()..]
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|length| (1..=MAX_NAME_BYTES).contains(length))
                .ok_or_else(|| refused(format!("'{random}' needs a length from 1 to 63")))?;
            Piece::Random(length)
        }
        other => return Err(refused(format!("'{{{{{other}}}}}' is not supported"))),
    };
    Ok(match truncate {
        Some(length) => Piece::Truncated(Box::new(piece), length),
        None => piece,
    })
}

impl UsernameTemplate {
    /// Parses a template; refuses one without enough randomness to keep names unique.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            match rest.find("{{") {
                Some(0) => {
                    let end = rest
                        .find("}}")
                        .ok_or_else(|| refused("a '{{' is not closed"))?;
                    pieces.push(parse_action(&rest[2..end])?);
                    rest = &rest[end + 2..];
                }
                Some(start) => {
                    pieces.push(Piece::Literal(rest[..start].to_string()));
                    rest = &rest[start..];
                }
                None => {
                    pieces.push(Piece::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        let random: usize = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Random(length) => *length,
                _ => 0,
            })
            .sum();
        if random < 8 {
            return Err(refused(
                "it has less than 8 random characters, so names could repeat",
            ));
        }
        if random > MAX_NAME_BYTES / 2 {
            return Err(refused("its random parts leave no room for the rest"));
        }
        for piece in &pieces {
            if let Piece::Literal(text) = piece
                && !text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(refused(format!(
                    "literal text '{text}' may hold only letters, digits, '-' and '_'"
                )));
            }
        }
        Ok(Self { pieces })
    }

    /// Renders a name for a role. `random` supplies random text of a given length.
    pub fn render(
        &self,
        display_name: &str,
        role_name: &str,
        unix_time: u64,
        mut random: impl FnMut(usize) -> String,
    ) -> String {
        // (text, may be cut)
        let mut parts: Vec<(String, bool)> = self
            .pieces
            .iter()
            .map(|piece| render_piece(piece, display_name, role_name, unix_time, &mut random))
            .collect();
        let mut total: usize = parts.iter().map(|(text, _)| text.len()).sum();
        while total > MAX_NAME_BYTES {
            // Cut the longest descriptive part by one character.
            let Some(longest) = parts
                .iter_mut()
                .filter(|(text, cuttable)| *cuttable && !text.is_empty())
                .max_by_key(|(text, _)| text.len())
            else {
                break;
            };
            longest.0.pop();
            total -= 1;
        }
        parts.into_iter().map(|(text, _)| text).collect()
    }
}

fn sanitized(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn render_piece(
    piece: &Piece,
    display_name: &str,
    role_name: &str,
    unix_time: u64,
    random: &mut impl FnMut(usize) -> String,
) -> (String, bool) {
    match piece {
        Piece::Literal(text) => (text.clone(), true),
        Piece::DisplayName => (sanitized(display_name), true),
        Piece::RoleName => (sanitized(role_name), true),
        Piece::UnixTime => (unix_time.to_string(), true),
        Piece::Random(length) => (random(*length), false),
        Piece::Truncated(inner, length) => {
            let (text, cuttable) = render_piece(inner, display_name, role_name, unix_time, random);
            (text.chars().take(*length).collect(), cuttable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(length: usize) -> String {
        "r".repeat(length)
    }

    #[test]
    fn the_default_matches_vaults_shape() {
        let name = default_template().render("token", "readonly", 1_515_625_519, fixed);
        assert_eq!(name, "v-token-readonly-rrrrrrrrrrrrrrrrrrrr-1515625519");
        let odd = default_template().render("a\"b c", "r'x", 1, fixed);
        assert_eq!(odd, "v-a_b_c-r_x-rrrrrrrrrrrrrrrrrrrr-1");
    }

    #[test]
    fn long_names_lose_description_never_randomness() {
        let template =
            UsernameTemplate::parse("{{.DisplayName}}-{{.RoleName}}-{{random 20}}").expect("parse");
        let display = "d".repeat(80);
        let role = "a-really-long-role-name-for-reporting-and-analytics";
        let mut draws = 0;
        let name = template.render(&display, role, 0, |length| {
            draws += 1;
            "0123456789abcdefghij"[..length].to_string()
        });
        assert_eq!(draws, 1);
        assert!(name.len() <= MAX_NAME_BYTES, "{name} is {}", name.len());
        assert!(name.ends_with("-0123456789abcdefghij"), "{name}");
        assert!(name.starts_with("ddd"), "{name}");
    }

    #[test]
    fn templates_in_both_spellings_and_refusals() {
        let vault = UsernameTemplate::parse("v_{{truncate 4 (.RoleName)}}_{{random 10}}")
            .expect("vault spelling");
        assert_eq!(
            vault.render("x", "reporting", 0, fixed),
            "v_repo_rrrrrrrrrr"
        );
        let piped =
            UsernameTemplate::parse("{{.RoleName | truncate 3}}-{{random 8}}").expect("pipe");
        assert_eq!(piped.render("x", "reporting", 0, fixed), "rep-rrrrrrrr");
        for (text, expected) in [
            ("{{.RoleName}}", "less than 8 random"),
            ("{{random 4}}", "less than 8 random"),
            ("{{.Nope}}-{{random 10}}", "'{{.Nope}}' is not supported"),
            ("a b-{{random 10}}", "literal text"),
            ("{{random 10", "not closed"),
        ] {
            let error = UsernameTemplate::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
