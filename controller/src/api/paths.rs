//! Path tables: how a backend declares its surface, and the router that reads them.
//!
//! A [`PathSpec`] is data, as a path of Vault's framework: a pattern
//! (`hosts/{host}/accounts/{account}`, `mounts/{*path}`), synopsis and description, the fields
//! it takes (type, required, sensitive, description), a handler per operation, the existence
//! check that tells `create` from `update`, the operations that need `sudo`, and whether it is
//! served without a token. The router matches a request against a backend's table, refuses a
//! wrong method with 405, checks field types and required fields (400 naming the field) and
//! warns about unknown fields, so handlers read already-validated input; [`Request`] refuses
//! (in debug builds) to read a field the path does not declare. Must not know what any path
//! does.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ApiError;
use super::{ApiResponse, AppState, TokenContext};

/// What a request asks for, in Vault's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    List,
    Write,
    Delete,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Write => "write",
            Operation::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Int,
    Bool,
    /// Seconds as a number, or a Go-style duration string: `90`, `15m`, `1h30m`, `768h`.
    Duration,
    /// A JSON list, or a comma-separated string.
    StringList,
    /// A JSON object.
    Map,
}

impl FieldKind {
    /// The type's name in help, as Vault's `FieldType.String()` spells it.
    pub fn help_name(self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Int => "int",
            FieldKind::Bool => "bool",
            FieldKind::Duration => "duration (sec)",
            FieldKind::StringList => "slice",
            FieldKind::Map => "map",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    /// Replaced by an HMAC in audit logs, never echoed.
    pub sensitive: bool,
    pub description: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, kind: FieldKind, description: &'static str) -> Self {
        Self {
            name,
            kind,
            required: false,
            sensitive: false,
            description,
        }
    }
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<ApiResponse, ApiError>> + Send>>;
pub type Handler = fn(AppState, Request) -> HandlerFuture;

/// Tells whether the resource a write names exists (then the write needs `update`,
/// otherwise `create`).
pub type ExistenceCheck = fn(&AppState, &Request) -> Result<bool, ApiError>;

/// One path of a backend: everything the router, the ACL, help and audit know about it.
pub struct PathSpec {
    pub pattern: &'static str,
    /// One line: what the path is (help, OpenAPI summary).
    pub synopsis: &'static str,
    /// What it does, in a few sentences: help's DESCRIPTION.
    pub description: &'static str,
    /// Every field a handler of this path reads; reading another is an internal error in
    /// debug builds (see [`Request`]).
    pub fields: &'static [Field],
    pub operations: Vec<(Operation, Handler)>,
    /// Whether a write's resource exists: a write needs `create` when it does not, `update`
    /// when it does. Without one a write needs `update`, as in Vault.
    pub existence: Option<ExistenceCheck>,
    /// The operations that also need `sudo` (Vault's root-protected paths).
    pub sudo: &'static [Operation],
    /// Served without a token (Vault: `sys/health`, `ssh/verify`, `ssh/public_key`).
    pub unauthenticated: bool,
    /// Takes any fields (`sys/wrapping/wrap` wraps whatever it is given): no unknown-field
    /// warnings, and the handler reads them all with [`Request::free_form_data`].
    pub free_form: bool,
}

impl PathSpec {
    /// An authenticated path without an existence check or `sudo`; the builders below add
    /// those.
    pub fn new(
        pattern: &'static str,
        synopsis: &'static str,
        description: &'static str,
        fields: &'static [Field],
        operations: Vec<(Operation, Handler)>,
    ) -> Self {
        Self {
            pattern,
            synopsis,
            description,
            fields,
            operations,
            existence: None,
            sudo: &[],
            unauthenticated: false,
            free_form: false,
        }
    }

    /// Takes any fields (see [`PathSpec::free_form`]).
    pub fn free_form(mut self) -> Self {
        self.free_form = true;
        self
    }

    /// Served without a token.
    pub fn unauthenticated(mut self) -> Self {
        self.unauthenticated = true;
        self
    }

    /// `operations` also need `sudo`.
    pub fn sudo(mut self, operations: &'static [Operation]) -> Self {
        self.sudo = operations;
        self
    }

    /// Writes need `create` or `update` as `check` answers.
    pub fn existence(mut self, check: ExistenceCheck) -> Self {
        self.existence = Some(check);
        self
    }

    /// The handler of `operation`, if the path supports it.
    pub fn handler(&self, operation: Operation) -> Option<Handler> {
        self.operations
            .iter()
            .find(|(supported, _)| *supported == operation)
            .map(|(_, handler)| *handler)
    }

    /// Whether `operation` on this path also needs `sudo`.
    pub fn needs_sudo(&self, operation: Operation) -> bool {
        self.sudo.contains(&operation)
    }

    /// The declared field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

impl std::fmt::Debug for PathSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PathSpec")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

/// A validated request, as a handler sees it.
///
/// Fields are read only through the accessors, which know the matched path's declared
/// fields: in debug builds (every test, every e2e run) reading a field the table does not
/// declare is a 500 naming the path and the field, so an undeclared read cannot pass a test
/// that exercises its handler.
#[derive(Debug)]
pub struct Request {
    pub operation: Operation,
    /// The mount the request went to, with its trailing slash (`os/`, `sys/`).
    pub mount: String,
    /// The path inside the mount.
    pub path: String,
    pub params: HashMap<String, String>,
    pub token: Option<TokenContext>,
    /// The client's address (`None` when unknown, as in handler tests without HTTP): what
    /// bound CIDRs and the login limiter check.
    pub remote_address: Option<std::net::IpAddr>,
    /// The `X-Vault-Token` as presented, also on unauthenticated paths: `sys/wrapping/unwrap`
    /// takes the wrapping token from there when the body names none.
    pub presented_token: Option<crate::tokens::ClientToken>,
    /// The `X-Vault-Wrap-TTL` asked for, in seconds: the API wraps the answer after the
    /// handler; `sys/wrapping/wrap` refuses to answer without it.
    pub wrap_ttl_secs: Option<u64>,
    data: Map<String, Value>,
    /// The pattern of the matched path, for messages.
    pattern: &'static str,
    /// What the matched path declares.
    fields: &'static [Field],
    /// Whether the matched path takes any fields.
    free_form: bool,
}

fn type_error(field: &str, expected: &str) -> ApiError {
    ApiError::bad_request(format!("field '{field}': expected {expected}"))
}

impl Request {
    /// A request that matched `spec`.
    pub fn new(
        spec: &PathSpec,
        operation: Operation,
        mount: String,
        path: String,
        params: HashMap<String, String>,
        data: Map<String, Value>,
        token: Option<TokenContext>,
    ) -> Self {
        Self {
            operation,
            mount,
            path,
            params,
            token,
            remote_address: None,
            presented_token: None,
            wrap_ttl_secs: None,
            data,
            pattern: spec.pattern,
            fields: spec.fields,
            free_form: spec.free_form,
        }
    }

    /// Every field as given, for a path that takes any ([`PathSpec::free_form`]); in debug
    /// builds another path reading this is an internal error.
    pub fn free_form_data(&self) -> Result<&Map<String, Value>, ApiError> {
        if cfg!(debug_assertions) && !self.free_form {
            return Err(ApiError::internal(format!(
                "path '{}' read its whole body, but its table entry is not free_form",
                self.pattern
            )));
        }
        Ok(&self.data)
    }

    /// The pattern of the path the request matched.
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// The matched path's declared fields.
    pub fn declared_fields(&self) -> &'static [Field] {
        self.fields
    }

    /// The raw value of a declared field. In debug builds an undeclared field is an internal
    /// error naming the path and the field.
    fn value(&self, field: &str) -> Result<Option<&Value>, ApiError> {
        if cfg!(debug_assertions) && !self.fields.iter().any(|declared| declared.name == field) {
            return Err(ApiError::internal(format!(
                "path '{}' read field '{field}', which its table entry does not declare: add it to the PathSpec's fields",
                self.pattern
            )));
        }
        Ok(self.data.get(field).filter(|value| !value.is_null()))
    }

    /// A segment captured by the pattern; the router guarantees it exists.
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// Whether the request gave the field a (non-null) value.
    pub fn is_set(&self, field: &str) -> Result<bool, ApiError> {
        Ok(self.value(field)?.is_some())
    }

    pub fn string(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.value(field)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(Value::Bool(flag)) => Ok(Some(flag.to_string())),
            Some(_) => Err(type_error(field, "a string")),
        }
    }

    pub fn required_string(&self, field: &str) -> Result<String, ApiError> {
        match self.string(field)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(ApiError::bad_request(format!(
                "missing required field '{field}'"
            ))),
        }
    }

    pub fn int(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.value(field)? {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| type_error(field, "a whole number")),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| type_error(field, "a whole number")),
            Some(_) => Err(type_error(field, "a whole number")),
        }
    }

    pub fn bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.value(field)? {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "t" | "yes" => Ok(Some(true)),
                "false" | "0" | "f" | "no" => Ok(Some(false)),
                _ => Err(type_error(field, "true or false")),
            },
            Some(Value::Number(number)) => Ok(Some(number.as_i64() != Some(0))),
            Some(_) => Err(type_error(field, "true or false")),
        }
    }

    pub fn duration(&self, field: &str) -> Result<Option<Duration>, ApiError> {
        match self.value(field)? {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_u64()
                .map(|seconds| Some(Duration::from_secs(seconds)))
                .ok_or_else(|| type_error(field, "a duration such as 90, 15m or 1h")),
            Some(Value::String(text)) => parse_duration(text)
                .map(Some)
                .ok_or_else(|| type_error(field, "a duration such as 90, 15m or 1h")),
            Some(_) => Err(type_error(field, "a duration such as 90, 15m or 1h")),
        }
    }

    pub fn string_list(&self, field: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.value(field)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err(type_error(field, "a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(type_error(field, "a list of strings")),
        }
    }

    /// A JSON object field.
    pub fn object(&self, field: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.value(field)? {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(type_error(field, "an object")),
        }
    }
}

/// Parses `90`, `90s`, `15m`, `1h30m`, `2d`: the duration forms Vault clients send.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(character) = chars.next() {
        if character.is_ascii_digit() {
            number.push(character);
            continue;
        }
        let value: u64 = number.parse().ok()?;
        number.clear();
        let unit_seconds = match character {
            's' => 1,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0
            }
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(value.checked_mul(unit_seconds)?)?;
    }
    if !number.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// Matches `path` against `pattern`, capturing `{name}` segments and a final `{*name}`.
pub fn match_pattern(pattern: &str, path: &str) -> Option<HashMap<String, String>> {
    let path = path.trim_end_matches('/');
    let mut params = HashMap::new();
    let mut path_segments = path.split('/');
    let pattern_segments: Vec<&str> = pattern.split('/').collect();
    for (index, segment) in pattern_segments.iter().enumerate() {
        if let Some(name) = segment.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
            let rest: Vec<&str> = path_segments.by_ref().collect();
            if index + 1 != pattern_segments.len() || rest.iter().any(|s| s.is_empty()) {
                return None;
            }
            if rest.is_empty() {
                return None;
            }
            params.insert(name.to_string(), rest.join("/"));
            return Some(params);
        }
        let actual = path_segments.next()?;
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if actual.is_empty() {
                return None;
            }
            params.insert(name.to_string(), actual.to_string());
        } else if *segment != actual {
            return None;
        }
    }
    if path_segments.next().is_some() {
        return None;
    }
    Some(params)
}

/// The path a request matched, with its captured segments.
pub struct Matched<'a> {
    pub spec: &'a PathSpec,
    pub params: HashMap<String, String>,
}

/// Finds the spec for `path` in a backend's table.
pub fn find<'a>(table: &'a [PathSpec], path: &str) -> Option<Matched<'a>> {
    table
        .iter()
        .find_map(|spec| match_pattern(spec.pattern, path).map(|params| Matched { spec, params }))
}

/// Checks the request's fields against its path's declaration: types, required fields (for
/// writes), unknown fields (a warning, as Vault gives).
pub fn validate_fields(request: &Request) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    if request.operation != Operation::Write {
        return Ok(warnings);
    }
    for field in request.fields {
        if field.required && !request.is_set(field.name)? {
            return Err(ApiError::bad_request(format!(
                "missing required field '{}': {}",
                field.name, field.description
            )));
        }
        match field.kind {
            FieldKind::String => request.string(field.name).map(drop)?,
            FieldKind::Int => request.int(field.name).map(drop)?,
            FieldKind::Bool => request.bool(field.name).map(drop)?,
            FieldKind::Duration => request.duration(field.name).map(drop)?,
            FieldKind::StringList => request.string_list(field.name).map(drop)?,
            FieldKind::Map => request.object(field.name).map(drop)?,
        }
    }
    for key in request.data.keys() {
        if request.free_form {
            break;
        }
        if !request.fields.iter().any(|field| field.name == key) {
            warnings.push(format!(
                "Endpoint ignored these unrecognized parameters: [{key}]"
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_capture_segments_and_rest() {
        let params = match_pattern("hosts/{host}/accounts/{account}", "hosts/web/accounts/app1")
            .expect("match");
        assert_eq!(params["host"], "web");
        assert_eq!(params["account"], "app1");
        assert!(match_pattern("hosts/{host}", "hosts/web/accounts").is_none());
        assert!(match_pattern("hosts/{host}", "hosts/").is_none());
        let params = match_pattern("mounts/{*path}", "mounts/team/os").expect("rest");
        assert_eq!(params["path"], "team/os");
        assert!(match_pattern("mounts/{*path}", "mounts").is_none());
        assert!(match_pattern("hosts", "hosts/").is_some());
    }

    #[test]
    fn durations_in_vault_forms() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("768h"),
            Some(Duration::from_secs(768 * 3600))
        );
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        for bad in ["", "m", "15x", "h1", "1h30"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
