//! How the CLI shows answers: Vault's `table` and `json` formats, and `-field`.
//!
//! Owns rendering only. Must not make requests.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    /// The server's body as it came (`ssh/public_key` answers plain text).
    Raw,
}

impl Format {
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        match text.unwrap_or("table") {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "raw" => Ok(Format::Raw),
            other => Err(format!("invalid -format '{other}': use table, json or raw")),
        }
    }
}

/// A value as Vault's table shows it (Go's `%v`): `<nil>`, `[a b]`, `map[k:v k2:v2]` with
/// sorted keys, strings bare.
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "<nil>".into(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(plain).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{key}:{}", plain(&map[key])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// Seconds as Vault's tables show a lease's duration: Go's duration text without the zero
/// tails (`10h`, `1h30s`, `10m`, `45s`).
pub fn human_duration(secs: u64) -> String {
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || text.is_empty() {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// Columns as Vault's list commands print them (`secrets list`, `audit list`): the header,
/// a dashed line under each heading, cells padded to their column and joined by four spaces.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let underline: Vec<String> = header.iter().map(|title| "-".repeat(title.len())).collect();
    let mut lines: Vec<Vec<String>> = vec![
        header.iter().map(|title| title.to_string()).collect(),
        underline,
    ];
    lines.extend(rows.iter().cloned());
    let mut widths = vec![0; header.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let last = line.len().saturating_sub(1);
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(index, cell)| {
                if index == last {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[index])
                }
            })
            .collect();
        out.push_str(cells.join("    ").trim_end());
        out.push('\n');
    }
    out
}

/// A value for `-field`: strings raw, everything else as JSON.
pub fn field(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Renders `Key / Value` rows as Vault's table format does.
pub fn table(body: &Value) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(lease_id) = body.get("lease_id").and_then(Value::as_str)
        && !lease_id.is_empty()
    {
        rows.push(("lease_id".into(), lease_id.into()));
        let duration = match body["lease_duration"].as_u64() {
            Some(secs) => human_duration(secs),
            None => plain(&body["lease_duration"]),
        };
        rows.push(("lease_duration".into(), duration));
        rows.push(("lease_renewable".into(), plain(&body["renewable"])));
    }
    let data = body.get("data").unwrap_or(body);
    if let Some(map) = data.as_object() {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            rows.push((key.clone(), plain(&map[key])));
        }
    }
    let width = rows
        .iter()
        .map(|(key, _)| key.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut out = format!("{:<width$}    Value\n{:<width$}    -----\n", "Key", "---");
    for (key, value) in rows {
        out.push_str(&format!("{key:<width$}    {value}\n"));
    }
    if let Some(warnings) = body.get("warnings").and_then(Value::as_array) {
        out.push_str(&warnings_text(warnings));
    }
    out
}

pub fn keys_table(keys: &[Value]) -> String {
    let mut out = String::from("Keys\n----\n");
    for key in keys {
        out.push_str(&plain(key));
        out.push('\n');
    }
    out
}

pub fn warnings_text(warnings: &[Value]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nWARNING! The following warnings were returned from Rotor:\n\n");
    for warning in warnings {
        out.push_str(&format!("  * {}\n", plain(warning)));
    }
    out
}

/// The line a successful `rotor delete PATH` prints: Vault's, except at `agents/ID`, where a
/// delete revokes the agent and its record stays readable (marked revoked), so "deleted"
/// would be untrue.
pub fn delete_success(path: &str) -> String {
    match path.strip_prefix("agents/") {
        Some(id) if !id.is_empty() && !id.contains('/') => format!(
            "Success! Revoked agent {id}: its connection is closed and its certificate refused from now on; its record stays readable at {path} (revoked: true)"
        ),
        _ => format!("Success! Data deleted (if it existed) at: {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_an_agent_says_it_was_revoked() {
        assert!(delete_success("agents/a1").starts_with("Success! Revoked agent a1:"));
        assert_eq!(
            delete_success("os/hosts/h"),
            "Success! Data deleted (if it existed) at: os/hosts/h"
        );
        assert!(delete_success("agents/enroll/x").starts_with("Success! Data deleted"));
    }

    #[test]
    fn table_is_sorted_and_aligned() {
        let body =
            serde_json::json!({"data": {"zeta": 1, "a": "x", "list": ["p", "q"]}, "lease_id": ""});
        let text = table(&body);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Key     Value");
        assert_eq!(lines[2], "a       x");
        assert_eq!(lines[3], "list    [p q]");
        assert_eq!(lines[4], "zeta    1");
    }

    #[test]
    fn nested_values_print_as_vault_prints_them() {
        let body = serde_json::json!({"data": {
            "ttl": null,
            "versions": {"2": {"expired_time": "0001-01-01T00:00:00Z", "created_time": "b"}, "1": {"created_time": "a"}},
        }});
        let text = table(&body);
        assert!(text.contains("ttl         <nil>\n"), "{text}");
        assert!(
            text.contains(
                "versions    map[1:map[created_time:a] 2:map[created_time:b expired_time:0001-01-01T00:00:00Z]]\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn lease_durations_read_as_vault_prints_them() {
        for (secs, text) in [
            (36000, "10h"),
            (3630, "1h30s"),
            (600, "10m"),
            (45, "45s"),
            (0, "0s"),
            (3661, "1h1m1s"),
        ] {
            assert_eq!(human_duration(secs), text);
        }
        let body = serde_json::json!({"lease_id": "ssh/creds/otp/abc", "lease_duration": 36000, "renewable": true, "data": null});
        let text = table(&body);
        assert!(text.contains("lease_duration     10h\n"), "{text}");
        assert!(text.contains("lease_renewable    true\n"), "{text}");
    }

    #[test]
    fn columns_are_underlined_and_padded() {
        let text = columns(
            &["Path", "Type", "Description"],
            &[
                vec!["os/".into(), "os".into(), "".into()],
                vec!["ssh-long/".into(), "ssh".into(), "keys".into()],
            ],
        );
        assert_eq!(
            text,
            "Path         Type    Description\n\
             ----         ----    -----------\n\
             os/          os\n\
             ssh-long/    ssh     keys\n"
        );
    }
}
