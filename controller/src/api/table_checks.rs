//! Checks over every path table of every backend (`sys/`, `agents/`, `auth/token/`, each
//! auth method and engine type), as Vault's framework panics on a malformed table: synopsis, description and
//! field descriptions present, no field declared twice, `sudo` and existence checks only on
//! operations the path has, no two patterns of one table matching the same path, and every
//! field name a handler's source reads declared in its backend's table.
//!
//! Compiled only for tests. The per-path check of reads is [`super::paths::Request`]'s: in
//! debug builds an undeclared read is a 500, so a test exercising the handler fails.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use super::paths::{Operation, PathSpec, match_pattern};

/// Every table, by the name of its backend.
fn tables() -> Vec<(String, &'static [PathSpec])> {
    let mut tables: Vec<(String, &'static [PathSpec])> = vec![
        ("sys".into(), super::sys::paths()),
        ("agents".into(), super::agents::paths()),
        ("auth/token".into(), crate::auth::token::paths()),
    ];
    for (kind, _) in crate::auth::mounts::KNOWN_TYPES {
        let table = crate::auth::paths(kind)
            .unwrap_or_else(|| panic!("auth method type {kind} has no path table"));
        tables.push((format!("auth {kind}"), table));
    }
    for (kind, _) in crate::engines::KNOWN_TYPES {
        let table = crate::engines::paths(kind)
            .unwrap_or_else(|| panic!("engine type {kind} has no path table"));
        tables.push((format!("engine {kind}"), table));
    }
    tables
}

/// Overlaps that are deliberate: (backend, listed first, shadowed), with why the first never
/// hides a path the second should serve.
const DELIBERATE_OVERLAPS: &[(&str, &str, &str)] = &[
    // Agent ids are 16 generated hex digits (`AgentId::generate`): never `enroll`.
    ("agents", "enroll", "{id}"),
];

#[test]
fn every_path_is_fully_described() {
    let mut problems = Vec::new();
    for (backend, table) in tables() {
        for spec in table {
            let at = format!("{backend}: '{}'", spec.pattern);
            if spec.synopsis.trim().is_empty() {
                problems.push(format!("{at} has no synopsis"));
            }
            if spec.description.trim().is_empty() {
                problems.push(format!("{at} has no description"));
            }
            if spec.operations.is_empty() {
                problems.push(format!("{at} has no operation"));
            }
            let mut operations = HashSet::new();
            for (operation, _) in &spec.operations {
                if !operations.insert(*operation) {
                    problems.push(format!("{at} declares {} twice", operation.name()));
                }
            }
            for operation in spec.sudo {
                if !operations.contains(operation) {
                    problems.push(format!(
                        "{at} needs sudo for {}, which it does not support",
                        operation.name()
                    ));
                }
            }
            if spec.existence.is_some() && !operations.contains(&Operation::Write) {
                problems.push(format!("{at} has an existence check but no write"));
            }
            let mut names = HashSet::new();
            for field in spec.fields {
                if field.description.trim().is_empty() {
                    problems.push(format!("{at}: field '{}' has no description", field.name));
                }
                if !names.insert(field.name) {
                    problems.push(format!("{at}: field '{}' is declared twice", field.name));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A path both patterns match, if there is one. Built segment by segment: a literal of
/// either pattern where there is one, else a sample; a `{*rest}` matches one or more
/// segments, so the longer pattern decides the length. Patterns are segments only, so this
/// one candidate matches both whenever any path does.
fn common_path(first: &str, second: &str) -> Option<String> {
    let first: Vec<&str> = first.split('/').collect();
    let second: Vec<&str> = second.split('/').collect();
    let length = first.len().max(second.len());
    let candidate: Vec<&str> = (0..length)
        .map(|index| {
            [first.get(index), second.get(index)]
                .into_iter()
                .flatten()
                .copied()
                .find(|segment| !segment.starts_with('{'))
                .unwrap_or("sample")
        })
        .collect();
    let candidate = candidate.join("/");
    let matches_both = match_pattern(first.join("/").as_str(), &candidate).is_some()
        && match_pattern(second.join("/").as_str(), &candidate).is_some();
    matches_both.then_some(candidate)
}

#[test]
fn overlap_finder_finds_overlaps_and_only_them() {
    assert_eq!(common_path("enroll", "{id}"), Some("enroll".into()));
    assert_eq!(
        common_path("hosts/{host}", "hosts/{host}/accounts"),
        None,
        "lengths differ"
    );
    assert_eq!(
        common_path("audit/{*path}", "audit/x/{y}"),
        Some("audit/x/sample".into())
    );
    assert_eq!(
        common_path("leases/lookup", "leases/lookup/{*prefix}"),
        None
    );
    assert_eq!(common_path("a/{x}/c", "a/b/{y}"), Some("a/b/c".into()));
    assert_eq!(common_path("a/b", "a/c"), None);
    assert_eq!(common_path("", "{id}"), None);
}

#[test]
fn no_two_patterns_of_a_table_match_one_path() {
    let mut problems = Vec::new();
    for (backend, table) in tables() {
        for (index, first) in table.iter().enumerate() {
            for second in &table[index + 1..] {
                let Some(path) = common_path(first.pattern, second.pattern) else {
                    continue;
                };
                let deliberate = DELIBERATE_OVERLAPS.iter().any(|(name, listed, shadowed)| {
                    *name == backend && *listed == first.pattern && *shadowed == second.pattern
                });
                if !deliberate {
                    problems.push(format!(
                        "{backend}: '{}' and '{}' both match '{path}'",
                        first.pattern, second.pattern
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The accessor calls whose first argument is a field name.
const ACCESSORS: &[&str] = &[
    ".string(\"",
    ".required_string(\"",
    ".int(\"",
    ".bool(\"",
    ".duration(\"",
    ".string_list(\"",
    ".object(\"",
    ".is_set(\"",
    // Helpers that take the request and a field name: `list(request, "allowed_users")`.
    "(request, \"",
    "(&request, \"",
];

/// The field names a source file reads through [`ACCESSORS`].
fn field_reads(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for accessor in ACCESSORS {
        for (start, _) in source.match_indices(accessor) {
            let rest = &source[start + accessor.len()..];
            if let Some(end) = rest.find('"') {
                names.insert(rest[..end].to_string());
            }
        }
    }
    names
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every field name a handler of a backend reads in its source is declared by some path of
/// the backend's table (the per-path check is the accessors' own, at run time).
#[test]
fn handlers_read_only_declared_fields() {
    let source_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let owners: &[(&str, &[&str])] = &[
        ("sys", &["api/sys"]),
        ("agents", &["api/agents.rs"]),
        ("auth/token", &["auth/token"]),
        ("auth approle", &["auth/approle", "auth/login.rs"]),
        ("auth userpass", &["auth/userpass", "auth/login.rs"]),
        ("engine os", &["engines/os"]),
        ("engine ssh", &["engines/ssh"]),
        ("engine database", &["engines/database"]),
    ];
    let tables = tables();
    let mut problems = Vec::new();
    let mut reads_seen = 0;
    for (backend, locations) in owners {
        let (_, table) = tables
            .iter()
            .find(|(name, _)| name == backend)
            .unwrap_or_else(|| panic!("no table {backend}"));
        let declared: HashSet<&str> = table
            .iter()
            .flat_map(|spec| spec.fields.iter().map(|field| field.name))
            .collect();
        for location in *locations {
            for file in rust_files(&source_root.join(location)) {
                let source = std::fs::read_to_string(&file)
                    .unwrap_or_else(|error| panic!("reading {}: {error}", file.display()));
                if !source.contains("Request") {
                    continue;
                }
                for name in field_reads(&source) {
                    reads_seen += 1;
                    if !declared.contains(name.as_str()) {
                        problems.push(format!(
                            "{} reads field '{name}', which no path of {backend} declares",
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(reads_seen > 50, "the scan found only {reads_seen} reads");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_source_scan_sees_each_kind_of_read() {
    let reads = field_reads(
        r#"request.string("a")?; request
            .duration("b")?; list(request, "c"); positive(&request, "d", 1); request.is_set(field)"#,
    );
    let expected: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    assert_eq!(reads, expected);
}
