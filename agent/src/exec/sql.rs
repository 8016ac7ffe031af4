//! SQL text for the database jobs, without IO: splitting a statement list at its semicolons,
//! rendering `{{name}}`/`{{password}}`/`{{expiration}}`, quoting identifiers, and the
//! statements of the default revocation.
//!
//! Every rendered statement comes with a `shown` form in which `{{password}}` is left as the
//! placeholder: that is the only form an error, a log line or a result may quote.

use rotor_common::secret::Password;
use rotor_common::wire::database::{PasswordAuthentication, RoleValues};
use zeroize::Zeroizing;

/// One statement ready to run: `sql` may hold a password, `shown` never does.
pub struct Rendered {
    pub sql: Zeroizing<String>,
    pub shown: String,
}

/// Splits statement texts at `;` outside quotes ('…', "…") and dollar quotes ($tag$…$tag$),
/// dropping empty pieces, as Vault splits `creation_statements`.
pub fn split_statements(texts: &[String]) -> Vec<String> {
    let mut statements = Vec::new();
    for text in texts {
        let mut current = String::new();
        let mut chars = text.char_indices().peekable();
        // The quote we are inside: '\'' or '"', or a dollar tag.
        let mut in_quote: Option<char> = None;
        let mut in_dollar: Option<String> = None;
        while let Some((index, character)) = chars.next() {
            if let Some(tag) = &in_dollar {
                if text[index..].starts_with(tag.as_str()) {
                    current.push_str(tag);
                    for _ in 1..tag.chars().count() {
                        chars.next();
                    }
                    in_dollar = None;
                } else {
                    current.push(character);
                }
                continue;
            }
            if let Some(quote) = in_quote {
                current.push(character);
                if character == quote {
                    in_quote = None;
                }
                continue;
            }
            match character {
                '\'' | '"' => {
                    in_quote = Some(character);
                    current.push(character);
                }
                '$' => {
                    // `$tag$` where tag is empty or an identifier.
                    let rest = &text[index + 1..];
                    let tag_len = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    if rest[tag_len..].starts_with('$')
                        && !rest[..tag_len].starts_with(|c: char| c.is_ascii_digit())
                    {
                        let tag = format!("${}$", &rest[..tag_len]);
                        current.push_str(&tag);
                        for _ in 1..tag.chars().count() {
                            chars.next();
                        }
                        in_dollar = Some(tag);
                    } else {
                        current.push(character);
                    }
                }
                ';' => {
                    let statement = current.trim();
                    if !statement.is_empty() {
                        statements.push(statement.to_string());
                    }
                    current.clear();
                }
                _ => current.push(character),
            }
        }
        let statement = current.trim();
        if !statement.is_empty() {
            statements.push(statement.to_string());
        }
    }
    statements
}

/// The text `{{password}}` becomes: the password, or its SCRAM-SHA-256 verifier.
pub fn password_text(password: &Password, how: PasswordAuthentication) -> Zeroizing<String> {
    match how {
        PasswordAuthentication::Password => Zeroizing::new(password.expose().to_string()),
        PasswordAuthentication::ScramSha256 => Zeroizing::new(
            postgres_protocol::password::scram_sha_256(password.expose().as_bytes()),
        ),
    }
}

/// Renders one statement template with a role's values.
pub fn render(template: &str, role: &RoleValues, how: PasswordAuthentication) -> Rendered {
    let expiration = role.expiration.as_deref().unwrap_or("");
    let shown = template
        .replace("{{name}}", &role.name)
        .replace("{{username}}", &role.name)
        .replace("{{expiration}}", expiration);
    let sql = match &role.password {
        Some(password) => {
            Zeroizing::new(shown.replace("{{password}}", &password_text(password, how)))
        }
        None => Zeroizing::new(shown.clone()),
    };
    Rendered { sql, shown }
}

/// `name` as a quoted SQL identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The default revocation once the schemas are known: every privilege on tables, sequences
/// and functions in each schema and on the schemas, then the database's, then what the role
/// owns goes to the connecting user and the rest is dropped, then the role.
pub fn default_revocation(name: &str, database: &str, schemas: &[String]) -> Vec<String> {
    let role = quote_identifier(name);
    let mut statements = Vec::new();
    for schema in schemas {
        let schema = quote_identifier(schema);
        for kind in ["TABLES", "SEQUENCES", "FUNCTIONS"] {
            statements.push(format!(
                "REVOKE ALL PRIVILEGES ON ALL {kind} IN SCHEMA {schema} FROM {role}"
            ));
        }
        statements.push(format!(
            "REVOKE ALL PRIVILEGES ON SCHEMA {schema} FROM {role}"
        ));
    }
    statements.push(format!(
        "REVOKE ALL PRIVILEGES ON DATABASE {} FROM {role}",
        quote_identifier(database)
    ));
    statements.push(format!("REASSIGN OWNED BY {role} TO CURRENT_USER"));
    statements.push(format!("DROP OWNED BY {role}"));
    statements.push(format!("DROP ROLE IF EXISTS {role}"));
    statements
}

/// The default renewal: `VALID UNTIL` the new expiry.
pub const DEFAULT_RENEW: &str = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'";

/// The default password change (static roles, root rotation).
pub const DEFAULT_SET_PASSWORD: &str = "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'";

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn statements_split_at_semicolons_outside_quotes() {
        let texts = strings(&[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";",
            "COMMENT ON ROLE \"{{name}}\" IS 'a;b'; ; ",
            "DO $body$ BEGIN RAISE NOTICE 'x;y'; END $body$; SELECT $$;$$",
            "SELECT \"odd;name\" FROM t",
        ]);
        assert_eq!(
            split_statements(&texts),
            strings(&[
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"",
                "COMMENT ON ROLE \"{{name}}\" IS 'a;b'",
                "DO $body$ BEGIN RAISE NOTICE 'x;y'; END $body$",
                "SELECT $$;$$",
                "SELECT \"odd;name\" FROM t",
            ])
        );
        // `$1` is a parameter, not a dollar quote.
        assert_eq!(
            split_statements(&strings(&["SELECT $1; SELECT 2"])),
            strings(&["SELECT $1", "SELECT 2"])
        );
    }

    #[test]
    fn rendering_keeps_the_password_out_of_the_shown_form() {
        let role = RoleValues {
            name: "v-app-ro-abc".into(),
            password: Some(Password::new("Secret-pw-123")),
            expiration: Some("2026-12-02 11:00:00+0000".into()),
        };
        let template = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'";
        let rendered = render(template, &role, PasswordAuthentication::Password);
        assert_eq!(
            rendered.sql.as_str(),
            "CREATE ROLE \"v-app-ro-abc\" WITH LOGIN PASSWORD 'Secret-pw-123' VALID UNTIL '2026-12-02 11:00:00+0000'"
        );
        assert!(!rendered.shown.contains("Secret-pw-123"));
        assert!(
            rendered.shown.contains("'{{password}}'"),
            "{}",
            rendered.shown
        );
        let scram = render(template, &role, PasswordAuthentication::ScramSha256);
        assert!(!scram.sql.contains("Secret-pw-123"));
        assert!(
            scram.sql.contains("'SCRAM-SHA-256$4096:"),
            "{}",
            scram.shown
        );
    }

    #[test]
    fn default_revocation_covers_every_schema_then_drops() {
        let statements = default_revocation("v-x", "app", &strings(&["public", "we\"ird"]));
        assert_eq!(statements.len(), 2 * 4 + 4);
        assert_eq!(
            statements[0],
            "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA \"public\" FROM \"v-x\""
        );
        assert!(
            statements[4].contains("SCHEMA \"we\"\"ird\""),
            "{}",
            statements[4]
        );
        assert_eq!(
            statements[8],
            "REVOKE ALL PRIVILEGES ON DATABASE \"app\" FROM \"v-x\""
        );
        assert_eq!(statements[11], "DROP ROLE IF EXISTS \"v-x\"");
    }
}
