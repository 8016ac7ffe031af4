//! `connection_url` as Vault's PostgreSQL plugin takes it:
//! `postgresql://{{username}}:{{password}}@host:5432/db?sslmode=verify-full`.
//!
//! Pure parsing into what an agent needs (host, port, database, TLS mode, connect timeout).
//! A user and password written literally in the URL are taken out (the password is sealed by
//! the caller), so the stored URL only ever holds the `{{username}}`/`{{password}}`
//! placeholders. Every refusal names the part of the URL that is wrong.

use rotor_common::wire::database::SslMode;

/// A parsed connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub ssl_mode: SslMode,
    /// `connect_timeout` (seconds), when given.
    pub connect_timeout_secs: Option<u64>,
    /// A user written in the URL (not the placeholder).
    pub literal_username: Option<String>,
    /// A password written in the URL (not the placeholder): the caller seals it.
    pub literal_password: Option<String>,
    /// The URL as stored and shown: literal credentials replaced by the placeholders.
    pub redacted: String,
}

fn refused(url_problem: impl std::fmt::Display) -> String {
    format!(
        "field 'connection_url': {url_problem}; expected postgresql://{{{{username}}}}:{{{{password}}}}@HOST:PORT/DATABASE?sslmode=disable|prefer|require|verify-full"
    )
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .and_then(|digits| u8::from_str_radix(digits, 16).ok())
                .ok_or_else(|| refused("a '%' escape is not followed by two hex digits"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| refused("an escape decodes to invalid UTF-8"))
}

/// Parses `url`.
pub fn parse(url: &str) -> Result<ParsedUrl, String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| {
            refused("it must start with postgresql:// (key=value strings are not supported)")
        })?;
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, database) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (before_query, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (mut literal_username, mut literal_password) = (None, None);
    let mut shown_userinfo = String::new();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if user != "{{username}}" && !user.is_empty() {
            literal_username = Some(percent_decode(user)?);
        }
        shown_userinfo.push_str(user);
        if let Some(password) = password {
            if password != "{{password}}" && !password.is_empty() {
                literal_password = Some(percent_decode(password)?);
            }
            shown_userinfo.push_str(":{{password}}");
        }
        shown_userinfo.push('@');
    }
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| refused("an IPv6 host is missing its ']'"))?;
        (host.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() || host.contains(',') {
        return Err(refused(
            "the host is missing (one host; lists are not supported)",
        ));
    }
    let port = match port {
        None | Some("") => 5432,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| refused(format!("port '{port}' is not a number from 1 to 65535")))?,
    };
    let database = percent_decode(database)?;
    let database = if database.is_empty() {
        "postgres".to_string()
    } else {
        database
    };
    let mut ssl_mode = SslMode::Prefer;
    let mut connect_timeout_secs = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                ssl_mode = match value {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    "verify-ca" => {
                        return Err(refused(
                            "sslmode=verify-ca is not supported: use verify-full (the CA and the host name are checked)",
                        ));
                    }
                    other => return Err(refused(format!("sslmode '{other}' is unknown"))),
                }
            }
            "connect_timeout" => {
                connect_timeout_secs = Some(value.parse::<u64>().map_err(|_| {
                    refused(format!(
                        "connect_timeout '{value}' is not a whole number of seconds"
                    ))
                })?);
            }
            "sslrootcert" => {
                return Err(refused(
                    "sslrootcert names a file on the server, which agents do not read: give the CA's PEM in the field 'tls_ca' instead",
                ));
            }
            "application_name" => {}
            other => return Err(refused(format!("parameter '{other}' is not supported"))),
        }
    }
    let query_text = query.map(|query| format!("?{query}")).unwrap_or_default();
    let redacted = format!("postgresql://{shown_userinfo}{hostport}/{database}{query_text}");
    Ok(ParsedUrl {
        host,
        port,
        database,
        ssl_mode,
        connect_timeout_secs,
        literal_username,
        literal_password,
        redacted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_url_and_templated_ones_parse() {
        let parsed = parse("postgresql://root:rootpassword@localhost:5432/myapp").expect("parse");
        assert_eq!(parsed.host, "localhost");
        assert_eq!(parsed.port, 5432);
        assert_eq!(parsed.database, "myapp");
        assert_eq!(parsed.ssl_mode, SslMode::Prefer);
        assert_eq!(parsed.literal_username.as_deref(), Some("root"));
        assert_eq!(parsed.literal_password.as_deref(), Some("rootpassword"));
        assert!(
            !parsed.redacted.contains("rootpassword"),
            "{}",
            parsed.redacted
        );
        assert_eq!(
            parsed.redacted,
            "postgresql://root:{{password}}@localhost:5432/myapp"
        );

        let parsed = parse(
            "postgres://{{username}}:{{password}}@db.site-a/app?sslmode=verify-full&connect_timeout=3",
        )
        .expect("parse");
        assert_eq!((parsed.port, parsed.ssl_mode), (5432, SslMode::VerifyFull));
        assert_eq!(parsed.connect_timeout_secs, Some(3));
        assert_eq!(parsed.literal_username, None);
        assert_eq!(parsed.literal_password, None);

        let parsed = parse("postgresql://u:p%40ss@[fd00::5]:6432?sslmode=disable").expect("v6");
        assert_eq!(parsed.host, "fd00::5");
        assert_eq!(parsed.port, 6432);
        assert_eq!(parsed.database, "postgres");
        assert_eq!(parsed.literal_password.as_deref(), Some("p@ss"));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        for (url, expected) in [
            ("mysql://x@h/db", "must start with postgresql://"),
            ("postgresql://h:99999/db", "port '99999'"),
            ("postgresql://h/db?sslmode=maybe", "sslmode 'maybe'"),
            ("postgresql://h/db?sslrootcert=/x", "tls_ca"),
            ("postgresql://h/db?search_path=x", "parameter 'search_path'"),
            ("postgresql:///db", "host is missing"),
            ("postgresql://a,b/db", "host is missing"),
        ] {
            let error = parse(url).expect_err(url);
            assert!(error.contains(expected), "{url}: {error}");
            assert!(error.starts_with("field 'connection_url'"), "{error}");
        }
    }
}
