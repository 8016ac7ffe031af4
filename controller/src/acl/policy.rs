//! ACL policy documents: HCL as Vault writes it (or the same structure in JSON), parsed into
//! path rules.
//!
//! ```hcl
//! path "os/*" { capabilities = ["read", "list"] }
//! path "os/hosts/+/accounts/mgmt-*" { capabilities = ["deny"] }
//! ```
//!
//! Owns parsing and validating a policy; refuses what Rotor would not enforce (parameter
//! constraints, wrapping TTLs) instead of silently ignoring it. Must not evaluate requests.

use serde_json::Value;

use super::Capabilities;
use super::pattern::{PathPattern, PatternError};

/// One `path` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub pattern: PathPattern,
    pub capabilities: Capabilities,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<PathRule>,
}

/// What is wrong with a policy document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(
        "path \"{path}\": unknown capability \"{capability}\"; use create, read, update, patch, delete, list, sudo or deny"
    )]
    UnknownCapability { path: String, capability: String },
    #[error("path \"{path}\": {detail}")]
    BadRule { path: String, detail: String },
    #[error(
        "policy: unexpected top-level \"{0}\"; a policy holds only path \"...\" {{ capabilities = [...] }} blocks"
    )]
    UnexpectedTopLevel(String),
}

/// Keys a path block may hold in Vault but Rotor does not enforce: refused, never ignored.
const UNSUPPORTED_RULE_KEYS: &[&str] = &[
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

impl Policy {
    /// Parses `text` (HCL, or JSON when it starts with `{`).
    pub fn parse(name: &str, text: &str) -> Result<Self, PolicyError> {
        let blocks = if text.trim_start().starts_with('{') {
            json_blocks(text)?
        } else {
            hcl_blocks(text)?
        };
        let mut rules = Vec::with_capacity(blocks.len());
        for (path, attributes) in blocks {
            rules.push(rule(&path, attributes)?);
        }
        Ok(Self {
            name: name.to_string(),
            rules,
        })
    }
}

/// A path block's attributes, as plain values.
type RawBlock = (String, Vec<(String, Value)>);

fn hcl_value(expression: &hcl::Expression) -> Option<Value> {
    match expression {
        hcl::Expression::String(text) => Some(Value::String(text.clone())),
        hcl::Expression::Bool(flag) => Some(Value::Bool(*flag)),
        hcl::Expression::Null => Some(Value::Null),
        hcl::Expression::Number(number) => serde_json::to_value(number).ok(),
        hcl::Expression::Array(items) => items
            .iter()
            .map(hcl_value)
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        hcl::Expression::Object(_) => Some(Value::Object(serde_json::Map::new())),
        _ => None,
    }
}

fn hcl_blocks(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    let body = hcl::parse(text).map_err(|error| PolicyError::Syntax(error.to_string()))?;
    let mut blocks = Vec::new();
    if let Some(attribute) = body.attributes().next() {
        return Err(PolicyError::UnexpectedTopLevel(attribute.key().to_string()));
    }
    for block in body.blocks() {
        if block.identifier() != "path" {
            return Err(PolicyError::UnexpectedTopLevel(
                block.identifier().to_string(),
            ));
        }
        let [label] = block.labels() else {
            return Err(PolicyError::Syntax(
                "a path block takes exactly one quoted path: path \"os/*\" { ... }".into(),
            ));
        };
        let path = label.as_str().to_string();
        if let Some(inner) = block.body().blocks().next() {
            return Err(PolicyError::BadRule {
                path,
                detail: format!(
                    "unexpected block \"{}\" inside a path block",
                    inner.identifier()
                ),
            });
        }
        let mut attributes = Vec::new();
        for attribute in block.body().attributes() {
            let value = hcl_value(attribute.expr()).ok_or_else(|| PolicyError::BadRule {
                path: path.clone(),
                detail: format!("\"{}\" must be a literal value", attribute.key()),
            })?;
            attributes.push((attribute.key().to_string(), value));
        }
        blocks.push((path, attributes));
    }
    Ok(blocks)
}

fn json_blocks(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    let document: Value =
        serde_json::from_str(text).map_err(|error| PolicyError::Syntax(error.to_string()))?;
    let Value::Object(top) = document else {
        return Err(PolicyError::Syntax(
            "a JSON policy must be an object".into(),
        ));
    };
    let mut blocks = Vec::new();
    for (key, value) in top {
        if key != "path" {
            return Err(PolicyError::UnexpectedTopLevel(key));
        }
        let Value::Object(paths) = value else {
            return Err(PolicyError::Syntax(
                "\"path\" must map paths to rules".into(),
            ));
        };
        for (path, rule) in paths {
            let Value::Object(attributes) = rule else {
                return Err(PolicyError::BadRule {
                    path,
                    detail: "a rule must be an object".into(),
                });
            };
            blocks.push((path, attributes.into_iter().collect()));
        }
    }
    Ok(blocks)
}

/// Vault's legacy `policy = "..."` shorthand.
fn legacy_capabilities(path: &str, value: &Value) -> Result<Capabilities, PolicyError> {
    let text = value.as_str().unwrap_or_default();
    let names: &[&str] = match text {
        "deny" => &["deny"],
        "read" => &["read", "list"],
        "write" => &["create", "read", "update", "delete", "list"],
        "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
        _ => {
            return Err(PolicyError::BadRule {
                path: path.into(),
                detail: format!(
                    "policy = \"{text}\" is not one of deny, read, write, sudo (prefer capabilities = [...])"
                ),
            });
        }
    };
    Capabilities::from_names(path, names.iter().copied())
}

fn rule(path: &str, attributes: Vec<(String, Value)>) -> Result<PathRule, PolicyError> {
    let pattern = PathPattern::parse(path)?;
    let mut capabilities = Capabilities::NONE;
    let mut declared = false;
    for (key, value) in attributes {
        match key.as_str() {
            "capabilities" => {
                let Value::Array(items) = &value else {
                    return Err(PolicyError::BadRule {
                        path: path.into(),
                        detail: "capabilities must be a list of strings".into(),
                    });
                };
                let names = items
                    .iter()
                    .map(|item| {
                        item.as_str().ok_or_else(|| PolicyError::BadRule {
                            path: path.into(),
                            detail: "capabilities must be a list of strings".into(),
                        })
                    })
                    .collect::<Result<Vec<&str>, _>>()?;
                capabilities = capabilities.union(Capabilities::from_names(path, names)?);
                declared = true;
            }
            "policy" => {
                capabilities = capabilities.union(legacy_capabilities(path, &value)?);
                declared = true;
            }
            unsupported if UNSUPPORTED_RULE_KEYS.contains(&unsupported) => {
                return Err(PolicyError::BadRule {
                    path: path.into(),
                    detail: format!(
                        "\"{unsupported}\" is not supported by Rotor, which would not enforce it; remove it"
                    ),
                });
            }
            other => {
                return Err(PolicyError::BadRule {
                    path: path.into(),
                    detail: format!("unknown setting \"{other}\"; a rule holds capabilities"),
                });
            }
        }
    }
    if !declared {
        return Err(PolicyError::BadRule {
            path: path.into(),
            detail: "no capabilities given: add capabilities = [\"read\", ...]".into(),
        });
    }
    Ok(PathRule {
        pattern,
        capabilities: capabilities.normalized(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_hcl_with_comments_and_several_blocks() {
        let text = r#"
# Apps may read everything under os/ ...
path "os/*" {
  capabilities = ["read", "list"]
}
// ... but never the management accounts.
path "os/hosts/+/accounts/mgmt-*" { capabilities = ["deny"] }
path "auth/token/create" {
  capabilities = [ "create", "read", "update", "delete", "list", "sudo" ]
}
"#;
        let policy = Policy::parse("apps", text).expect("parses");
        assert_eq!(policy.rules.len(), 3);
        assert_eq!(policy.rules[0].pattern.text(), "os/*");
        assert_eq!(
            policy.rules[0].capabilities,
            Capabilities::READ.union(Capabilities::LIST)
        );
        assert_eq!(policy.rules[1].capabilities, Capabilities::DENY);
        assert!(policy.rules[2].capabilities.contains(Capabilities::SUDO));
    }

    #[test]
    fn parses_the_reference_one_liner_and_json() {
        let policy = Policy::parse(
            "apps",
            "path \"database/creds/readonly\" {capabilities = [ \"read\" ]}",
        )
        .expect("one-liner");
        assert_eq!(policy.rules[0].capabilities, Capabilities::READ);
        let policy = Policy::parse(
            "apps",
            r#"{"path": {"os/*": {"capabilities": ["list"]}, "sys/*": {"policy": "deny"}}}"#,
        )
        .expect("json");
        assert_eq!(policy.rules.len(), 2);
    }

    #[test]
    fn refuses_what_it_would_not_enforce_and_says_why() {
        let cases: &[(&str, &str)] = &[
            (
                "path \"a\" { capabilities = [\"fly\"] }",
                "unknown capability \"fly\"",
            ),
            (
                "path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters = { x = [] }\n}",
                "allowed_parameters",
            ),
            (
                "path \"a/*/b\" { capabilities = [\"read\"] }",
                "'*' may only end",
            ),
            ("path \"a\" { }", "no capabilities"),
            ("name = \"x\"", "unexpected top-level \"name\""),
            ("path \"a\" { capabilities = [", "failed to parse policy"),
            (
                "key \"a\" { capabilities = [\"read\"] }",
                "unexpected top-level \"key\"",
            ),
        ];
        for (text, expected) in cases {
            let error = Policy::parse("p", text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn deny_alongside_other_capabilities_is_just_deny() {
        let policy =
            Policy::parse("p", "path \"a\" { capabilities = [\"read\", \"deny\"] }").expect("ok");
        assert_eq!(policy.rules[0].capabilities, Capabilities::DENY);
    }
}
