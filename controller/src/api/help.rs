//! Help from the path tables, as Vault's framework builds it: `GET /v1/<path>?help=1`
//! answers `{"help": <text>, "openapi": <document>, "see_also": null}` for the path's table
//! entry.
//!
//! Owns rendering an entry: the text (`Request`, `Matching Route`, synopsis, `## PARAMETERS`
//! with types and descriptions, `## DESCRIPTION`, the layout of Vault's `pathHelpTemplate`)
//! and an OpenAPI 3 document of the one path. Must not decide who may read help (`api/mod.rs`
//! does: any valid token, as Vault's ACL always allows help) nor read anything but the entry.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::ApiResponse;
use super::paths::{Field, FieldKind, Operation, PathSpec};

/// Width help text is wrapped to.
const WIDTH: usize = 80;

/// The help answer for `request_path` (inside `mount`), which matched `spec`.
pub fn answer(spec: &PathSpec, mount: &str, request_path: &str) -> ApiResponse {
    ApiResponse::raw(
        StatusCode::OK,
        json!({
            "help": text(spec, request_path),
            "openapi": openapi(spec, mount),
            "see_also": Value::Null,
        }),
    )
}

/// Vault's help text for a path: what was asked, the route it matched, the synopsis, the
/// fields in alphabetical order with their types, and the description.
pub fn text(spec: &PathSpec, request_path: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!("\nRequest:        {request_path}\n"));
    out.push_str(&format!("Matching Route: {}\n\n", spec.pattern));
    out.push_str(&or_placeholder(spec.synopsis, "<no synopsis>"));
    out.push_str("\n\n");
    let mut fields: Vec<&Field> = spec.fields.iter().collect();
    fields.sort_by_key(|field| field.name);
    if !fields.is_empty() {
        out.push_str("## PARAMETERS\n");
        for field in fields {
            out.push_str(&format!(
                "\n    {} ({})\n\n",
                field.name,
                field.kind.help_name()
            ));
            for line in wrap(
                &or_placeholder(field.description, "<no description>"),
                WIDTH - 8,
            ) {
                out.push_str(&format!("        {line}\n"));
            }
        }
    }
    out.push_str("\n## DESCRIPTION\n\n");
    for line in wrap(&or_placeholder(spec.description, "<no description>"), WIDTH) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn or_placeholder(text: &str, placeholder: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        placeholder.to_string()
    } else {
        text.to_string()
    }
}

/// Wraps each line of `text` at word boundaries to at most `width` columns (a longer word
/// gets a line of its own); blank lines are kept.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for source in text.lines() {
        let mut line = String::new();
        for word in source.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// The `{name}` and `{*name}` segments of a pattern.
fn pattern_params(pattern: &str) -> Vec<&str> {
    pattern
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*'))
        .collect()
}

fn schema(kind: FieldKind) -> Value {
    match kind {
        FieldKind::String => json!({"type": "string"}),
        FieldKind::Int => json!({"type": "integer"}),
        FieldKind::Bool => json!({"type": "boolean"}),
        FieldKind::Duration => json!({"type": "string", "format": "duration"}),
        FieldKind::StringList => json!({"type": "array", "items": {"type": "string"}}),
        FieldKind::Map => json!({"type": "object"}),
    }
}

/// An OpenAPI 3 document of the one path, with Vault's `x-vault-*` extensions. Lists are a
/// `GET` with `list=true` on the pattern with a trailing `/`, as Vault documents them.
pub fn openapi(spec: &PathSpec, mount: &str) -> Value {
    let parameters: Vec<Value> = pattern_params(spec.pattern)
        .into_iter()
        .map(|name| {
            json!({
                "name": name,
                "description": format!("the {name} segment of the path"),
                "in": "path",
                "schema": {"type": "string"},
                "required": true,
            })
        })
        .collect();
    let base = |sudo: bool| {
        let mut item = Map::new();
        item.insert("description".into(), json!(spec.synopsis));
        item.insert("parameters".into(), json!(parameters));
        if sudo {
            item.insert("x-vault-sudo".into(), json!(true));
        }
        if spec.unauthenticated {
            item.insert("x-vault-unauthenticated".into(), json!(true));
        }
        if spec.existence.is_some() {
            item.insert("x-vault-createSupported".into(), json!(true));
        }
        item
    };
    let operation = |operation: Operation| {
        let mut described = json!({
            "summary": spec.synopsis,
            "tags": [mount.trim_end_matches('/')],
            "responses": {"200": {"description": "OK"}},
        });
        if operation == Operation::List {
            described["parameters"] = json!([{
                "name": "list",
                "description": "must be set to true",
                "in": "query",
                "schema": {"type": "string", "enum": ["true"]},
                "required": true,
            }]);
        }
        if operation == Operation::Write && !spec.fields.is_empty() {
            let properties: Map<String, Value> = spec
                .fields
                .iter()
                .map(|field| {
                    let mut property = schema(field.kind);
                    property["description"] = json!(field.description);
                    if field.sensitive {
                        property["x-vault-displayAttrs"] = json!({"sensitive": true});
                    }
                    (field.name.to_string(), property)
                })
                .collect();
            let required: Vec<&str> = spec
                .fields
                .iter()
                .filter(|field| field.required)
                .map(|field| field.name)
                .collect();
            let mut body_schema = json!({"type": "object", "properties": properties});
            if !required.is_empty() {
                body_schema["required"] = json!(required);
            }
            described["requestBody"] = json!({
                "required": !required.is_empty(),
                "content": {"application/json": {"schema": body_schema}},
            });
        }
        described
    };
    let mut item = base(false);
    let mut list_item = base(spec.needs_sudo(Operation::List));
    let mut sudo = false;
    for (supported, _) in &spec.operations {
        match supported {
            Operation::Read => {
                item.insert("get".into(), operation(Operation::Read));
            }
            Operation::Write => {
                item.insert("post".into(), operation(Operation::Write));
            }
            Operation::Delete => {
                item.insert("delete".into(), operation(Operation::Delete));
            }
            Operation::List => {
                list_item.insert("get".into(), operation(Operation::List));
            }
        }
        sudo |= *supported != Operation::List && spec.needs_sudo(*supported);
    }
    if sudo {
        item.insert("x-vault-sudo".into(), json!(true));
    }
    let mut paths = Map::new();
    let route = format!("/{}", spec.pattern.replace("{*", "{"));
    if ["get", "post", "delete"]
        .iter()
        .any(|method| item.contains_key(*method))
    {
        paths.insert(route.clone(), Value::Object(item));
    }
    if list_item.contains_key("get") {
        paths.insert(
            format!("{}/", route.trim_end_matches('/')),
            Value::Object(list_item),
        );
    }
    json!({
        "openapi": "3.0.2",
        "info": {
            "title": "Rotor",
            "description": "HTTP API of Rotor, in Vault's shapes. All routes are under /v1/.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {"schemas": {}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::paths::{HandlerFuture, Request};
    use crate::api::{ApiError, AppState};

    fn nothing(_state: AppState, _request: Request) -> HandlerFuture {
        Box::pin(async { Err(ApiError::internal("not called")) })
    }

    const FIELDS: &[Field] = &[
        Field::new("port", FieldKind::Int, "SSH port (default 22)"),
        Field::new(
            "address",
            FieldKind::String,
            "DNS name or IP address the site's agent connects to",
        )
        .required(),
    ];

    fn host_spec() -> PathSpec {
        PathSpec::new(
            "hosts/{host}",
            "Creates, reads, updates or deletes a host.",
            "A host is a machine whose accounts Rotor rotates. Deleting a host that still has accounts is refused.",
            FIELDS,
            vec![
                (Operation::Read, nothing as fn(_, _) -> _),
                (Operation::Write, nothing),
            ],
        )
    }

    /// The layout of Vault's `pathHelpTemplate`: fields sorted, typed, indented; the
    /// description wrapped at 80 columns.
    #[test]
    fn help_text_reads_like_vaults() {
        let text = text(&host_spec(), "hosts/web-01");
        let expected = "
Request:        hosts/web-01
Matching Route: hosts/{host}

Creates, reads, updates or deletes a host.

## PARAMETERS

    address (string)

        DNS name or IP address the site's agent connects to

    port (int)

        SSH port (default 22)

## DESCRIPTION

A host is a machine whose accounts Rotor rotates. Deleting a host that still has
accounts is refused.
";
        assert_eq!(text, expected);
    }

    #[test]
    fn help_without_fields_or_texts_says_so() {
        let spec = PathSpec::new(
            "rotations",
            "",
            "",
            &[],
            vec![(Operation::List, nothing as fn(_, _) -> _)],
        );
        let text = text(&spec, "rotations");
        assert!(!text.contains("## PARAMETERS"), "{text}");
        assert!(text.contains("<no synopsis>\n\n\n## DESCRIPTION\n\n<no description>\n"));
    }

    #[test]
    fn openapi_documents_operations_fields_and_sudo() {
        let document = openapi(&host_spec(), "os/");
        let item = &document["paths"]["/hosts/{host}"];
        assert_eq!(item["parameters"][0]["name"], "host");
        assert!(item.get("get").is_some() && item.get("post").is_some());
        let schema = &item["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["properties"]["port"]["type"], "integer");
        assert_eq!(schema["required"], json!(["address"]));
        assert!(item.get("x-vault-sudo").is_none());

        let listed = PathSpec::new(
            "leases/lookup/{*prefix}",
            "Lists lease ids under a prefix.",
            "d",
            &[],
            vec![(Operation::List, nothing as fn(_, _) -> _)],
        )
        .sudo(&[Operation::List]);
        let document = openapi(&listed, "sys/");
        let item = &document["paths"]["/leases/lookup/{prefix}/"];
        assert_eq!(item["x-vault-sudo"], true, "{document}");
        assert_eq!(item["get"]["parameters"][0]["name"], "list");
    }

    #[test]
    fn wrapping_keeps_words_and_blank_lines() {
        assert_eq!(
            wrap("aaa bbb ccc\n\nddd", 7),
            vec!["aaa bbb", "ccc", "", "ddd"]
        );
        assert_eq!(wrap("abcdefghij x", 4), vec!["abcdefghij", "x"]);
    }
}
