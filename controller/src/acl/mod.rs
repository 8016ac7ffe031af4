//! Access control: which capabilities a set of policies grants on a path.
//!
//! Owns the capability set, merging a token's policies into one [`Acl`] and Vault's rules for
//! evaluating it: an exact path beats any pattern; among patterns the highest-priority match
//! wins (see `pattern.rs`); rules for the same path from several policies are unioned, and
//! `deny` in any of them leaves nothing. The `root` policy allows everything. Pure: policy
//! storage is `store.rs`, and deciding which capability a request needs is the API's.

pub mod pattern;
pub mod policy;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;

pub use pattern::PathPattern;
pub use policy::{PathRule, Policy, PolicyError};
pub use store::PolicyStore;

/// A set of Vault capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const NONE: Self = Self(0);
    pub const CREATE: Self = Self(1);
    pub const READ: Self = Self(1 << 1);
    pub const UPDATE: Self = Self(1 << 2);
    pub const PATCH: Self = Self(1 << 3);
    pub const DELETE: Self = Self(1 << 4);
    pub const LIST: Self = Self(1 << 5);
    pub const SUDO: Self = Self(1 << 6);
    pub const DENY: Self = Self(1 << 7);
    /// Everything but deny: what `root` holds.
    pub const ALL: Self = Self(0b0111_1111);

    const NAMES: [(Self, &'static str); 8] = [
        (Self::CREATE, "create"),
        (Self::READ, "read"),
        (Self::UPDATE, "update"),
        (Self::PATCH, "patch"),
        (Self::DELETE, "delete"),
        (Self::LIST, "list"),
        (Self::SUDO, "sudo"),
        (Self::DENY, "deny"),
    ];

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `deny` wipes out everything else.
    pub fn normalized(self) -> Self {
        if self.contains(Self::DENY) {
            Self::DENY
        } else {
            self
        }
    }

    /// Whether these capabilities grant all of `needed` (a deny grants nothing).
    pub fn allows(self, needed: Self) -> bool {
        !self.contains(Self::DENY) && !needed.is_empty() && self.contains(needed)
    }

    pub fn from_names<'a>(
        path: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, PolicyError> {
        let mut set = Self::NONE;
        for name in names {
            let flag = Self::NAMES
                .iter()
                .find(|(_, known)| known.eq_ignore_ascii_case(name.trim()))
                .map(|(flag, _)| *flag)
                .ok_or_else(|| PolicyError::UnknownCapability {
                    path: path.to_string(),
                    capability: name.to_string(),
                })?;
            set = set.union(flag);
        }
        Ok(set)
    }

    /// Names, in Vault's order; `["deny"]` for an empty set.
    pub fn names(self) -> Vec<&'static str> {
        if self.is_empty() || self.contains(Self::DENY) {
            return vec!["deny"];
        }
        Self::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

/// The merged rules of a token's policies.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Capabilities>,
    patterns: Vec<(PathPattern, Capabilities)>,
}

impl Acl {
    /// Merges `policies`; `root` among the names makes an allow-everything ACL.
    pub fn new(policy_names: &[String], policies: &[Arc<Policy>]) -> Self {
        if policy_names.iter().any(|name| name == "root") {
            return Self {
                root: true,
                ..Self::default()
            };
        }
        let mut exact: HashMap<String, Capabilities> = HashMap::new();
        let mut patterns: Vec<(PathPattern, Capabilities)> = Vec::new();
        for rule in policies.iter().flat_map(|policy| policy.rules.iter()) {
            if rule.pattern.is_exact() {
                let entry = exact
                    .entry(rule.pattern.text().to_string())
                    .or_insert(Capabilities::NONE);
                *entry = entry.union(rule.capabilities).normalized();
            } else if let Some((_, existing)) = patterns
                .iter_mut()
                .find(|(pattern, _)| pattern == &rule.pattern)
            {
                *existing = existing.union(rule.capabilities).normalized();
            } else {
                patterns.push((rule.pattern.clone(), rule.capabilities));
            }
        }
        Self {
            root: false,
            exact,
            patterns,
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// What these policies allow on `path` (no leading slash; a list request's path ends
    /// with `/`). A root ACL holds [`Capabilities::ALL`].
    pub fn capabilities(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ALL;
        }
        let path = path.trim_start_matches('/');
        if let Some(found) = self.exact.get(path) {
            return *found;
        }
        if let Some(bare) = path.strip_suffix('/')
            && let Some(found) = self.exact.get(bare)
        {
            return *found;
        }
        self.patterns
            .iter()
            .filter(|(pattern, _)| pattern.matches(path))
            .max_by(|(left, _), (right, _)| left.priority(right))
            .map(|(_, capabilities)| *capabilities)
            .unwrap_or(Capabilities::NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(policies: &[(&str, &str)]) -> Acl {
        let parsed: Vec<Arc<Policy>> = policies
            .iter()
            .map(|(name, text)| Arc::new(Policy::parse(name, text).expect("policy parses")))
            .collect();
        let names: Vec<String> = policies.iter().map(|(name, _)| name.to_string()).collect();
        Acl::new(&names, &parsed)
    }

    fn caps(names: &[&str]) -> Capabilities {
        Capabilities::from_names("test", names.iter().copied()).expect("known names")
    }

    const APPS: &str = r#"
path "os/*" { capabilities = ["read", "list"] }
path "os/hosts/+/accounts/mgmt-*" { capabilities = ["deny"] }
"#;

    /// Table of (path, expected capabilities) against Vault's documented precedence.
    #[test]
    fn precedence_table() {
        let acl = acl(&[
            ("apps", APPS),
            (
                "extra",
                r#"
path "secret/*" { capabilities = ["deny"] }
path "secret/open" { capabilities = ["read"] }
path "secret/+/team" { capabilities = ["update"] }
path "secret/foo/*" { capabilities = ["list"] }
path "secret/foo/+/bar" { capabilities = ["create"] }
path "secret/foo/bar*" { capabilities = ["delete"] }
path "kv/data/list" { capabilities = ["list"] }
"#,
            ),
        ]);
        let table: &[(&str, &[&str])] = &[
            ("os/hosts/", &["read", "list"]),
            ("os/hosts/web", &["read", "list"]),
            ("os/hosts/web/accounts/app", &["read", "list"]),
            ("os/hosts/web/accounts/mgmt-root", &["deny"]),
            ("os/hosts/web/accounts/mgmt-root/creds", &["deny"]),
            ("os/hosts/db/accounts/mgmt-", &["deny"]),
            ("sys/mounts", &["deny"]),
            ("secret/anything", &["deny"]),
            // An exact path beats a glob, even a deny glob.
            ("secret/open", &["read"]),
            // Same first-wildcard position: the rule not ending in `*` wins.
            ("secret/x/team", &["update"]),
            // Later first wildcard wins over earlier.
            ("secret/foo/a/bar", &["create"]),
            // Longer glob wins.
            ("secret/foo/barn", &["delete"]),
            ("secret/foo/other", &["list"]),
            // A list request (trailing slash) finds the exact rule without it.
            ("kv/data/list/", &["list"]),
        ];
        for (path, expected) in table {
            assert_eq!(acl.capabilities(path).names(), expected.to_vec(), "{path}");
        }
    }

    #[test]
    fn same_path_in_two_policies_unions_and_deny_wins() {
        let merged = acl(&[
            ("a", "path \"kv/x\" { capabilities = [\"read\"] }"),
            ("b", "path \"kv/x\" { capabilities = [\"update\"] }"),
            ("c", "path \"kv/*\" { capabilities = [\"list\"] }"),
            ("d", "path \"kv/*\" { capabilities = [\"deny\"] }"),
        ]);
        assert_eq!(merged.capabilities("kv/x"), caps(&["read", "update"]));
        assert_eq!(merged.capabilities("kv/y"), Capabilities::DENY);
        assert!(!merged.capabilities("kv/y").allows(Capabilities::LIST));
    }

    #[test]
    fn root_allows_everything_and_no_policy_allows_nothing() {
        let root = Acl::new(&["root".into()], &[]);
        assert!(root.is_root());
        assert!(
            root.capabilities("sys/audit/file")
                .allows(Capabilities::SUDO.union(Capabilities::UPDATE))
        );
        let none = Acl::new(&["default".into()], &[]);
        assert_eq!(none.capabilities("os/hosts").names(), vec!["deny"]);
        assert!(!none.capabilities("os/hosts").allows(Capabilities::READ));
    }

    #[test]
    fn capability_names_round_trip() {
        let all = caps(&[
            "create", "read", "update", "patch", "delete", "list", "sudo",
        ]);
        assert_eq!(all, Capabilities::ALL);
        assert_eq!(
            all.names(),
            vec![
                "create", "read", "update", "patch", "delete", "list", "sudo"
            ]
        );
        assert!(Capabilities::from_names("p", ["READ"]).is_ok());
        assert!(Capabilities::from_names("p", ["fly"]).is_err());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("+".to_string()),
                Just(String::new()),
                "[a-z*+/.-]{0,6}",
                "mgmt-[a-z]{0,3}\\*?",
                any::<String>(),
            ]
        }

        proptest! {
            /// Random policies and random paths never panic the parser or the matcher.
            #[test]
            fn random_paths_never_panic(
                patterns in proptest::collection::vec(
                    proptest::collection::vec(segment(), 0..6).prop_map(|s| s.join("/")),
                    0..8,
                ),
                paths in proptest::collection::vec(any::<String>(), 1..16),
                structured in proptest::collection::vec(
                    proptest::collection::vec(segment(), 0..8).prop_map(|s| s.join("/")),
                    1..16,
                ),
            ) {
                let mut text = String::new();
                for pattern in &patterns {
                    let escaped = pattern.replace('\\', "\\\\").replace('"', "\\\"");
                    text.push_str(&format!("path \"{escaped}\" {{ capabilities = [\"read\"] }}\n"));
                }
                let policies: Vec<Arc<Policy>> = Policy::parse("fuzz", &text)
                    .ok()
                    .into_iter()
                    .map(Arc::new)
                    .collect();
                let mut rules = Vec::new();
                for pattern in &patterns {
                    if let Ok(parsed) = PathPattern::parse(pattern) {
                        rules.push(PathRule { pattern: parsed, capabilities: Capabilities::LIST });
                    }
                }
                let mut all = policies;
                all.push(Arc::new(Policy { name: "direct".into(), rules }));
                let acl = Acl::new(&["fuzz".into(), "direct".into()], &all);
                for path in paths.iter().chain(structured.iter()) {
                    let found = acl.capabilities(path);
                    prop_assert!(found == found.normalized());
                }
            }
        }
    }

    /// Properties of evaluation against Vault's documented precedence, over policies and
    /// paths drawn from a small alphabet so that many patterns overlap.
    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::cmp::Ordering;

        /// One token of a pattern, matched character by character (independently of
        /// `PathPattern::matches`, which works segment by segment).
        #[derive(Debug, Clone, Copy)]
        enum Token {
            Literal(char),
            /// `+`: any run of characters other than `/` (one whole segment).
            Segment,
            /// A trailing `*`: anything, `/` included.
            Rest,
        }

        fn tokens(pattern: &str) -> Vec<Token> {
            let mut out = Vec::new();
            for (index, segment) in pattern.split('/').enumerate() {
                if index > 0 {
                    out.push(Token::Literal('/'));
                }
                if segment == "+" {
                    out.push(Token::Segment);
                    continue;
                }
                for c in segment.chars() {
                    out.push(if c == '*' {
                        Token::Rest
                    } else {
                        Token::Literal(c)
                    });
                }
            }
            out
        }

        fn reference_match(tokens: &[Token], path: &[char]) -> bool {
            match tokens.split_first() {
                None => path.is_empty(),
                Some((Token::Rest, _)) => true,
                Some((Token::Literal(c), rest)) => {
                    path.first() == Some(c) && reference_match(rest, &path[1..])
                }
                Some((Token::Segment, rest)) => (0..=path.len())
                    .take_while(|end| path[..*end].iter().all(|c| *c != '/'))
                    .any(|end| reference_match(rest, &path[end..])),
            }
        }

        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("ab".to_string()),
                Just("+".to_string()),
            ]
        }

        /// A valid pattern: segments, optionally a trailing `*` (also right after a `/`).
        fn pattern() -> impl Strategy<Value = String> {
            (proptest::collection::vec(segment(), 1..5), 0..3usize).prop_map(|(segments, tail)| {
                let mut text = segments.join("/");
                match tail {
                    // Vault forbids `+*`: after a `+` the glob starts a segment.
                    1 if text.ends_with('+') => text.push_str("/*"),
                    1 => text.push('*'),
                    2 => text.push_str("/*"),
                    _ => {}
                }
                text
            })
        }

        fn path() -> impl Strategy<Value = String> {
            (
                proptest::collection::vec(
                    prop_oneof![Just("a"), Just("b"), Just("ab"), Just("abc"), Just("")],
                    1..6,
                ),
                any::<bool>(),
            )
                .prop_map(|(segments, slash)| {
                    let mut text = segments.join("/");
                    if slash {
                        text.push('/');
                    }
                    text
                })
        }

        fn capability() -> impl Strategy<Value = Capabilities> {
            prop_oneof![
                Just(Capabilities::READ),
                Just(Capabilities::LIST),
                Just(Capabilities::UPDATE),
                Just(Capabilities::CREATE.union(Capabilities::SUDO)),
                Just(Capabilities::DENY),
            ]
        }

        fn rules() -> impl Strategy<Value = Vec<(String, Capabilities)>> {
            proptest::collection::vec((pattern(), capability()), 1..8)
        }

        fn acl_of(policies: &[Vec<(String, Capabilities)>]) -> Acl {
            let parsed: Vec<Arc<Policy>> = policies
                .iter()
                .enumerate()
                .map(|(index, rules)| {
                    Arc::new(Policy {
                        name: format!("p{index}"),
                        rules: rules
                            .iter()
                            .map(|(text, capabilities)| PathRule {
                                pattern: PathPattern::parse(text).expect("generated pattern"),
                                capabilities: *capabilities,
                            })
                            .collect(),
                    })
                })
                .collect();
            let names: Vec<String> = parsed.iter().map(|p| p.name.clone()).collect();
            Acl::new(&names, &parsed)
        }

        /// The rule Vault would pick for `path`: the exact rule if any, else the
        /// highest-priority matching glob; with the union (deny wins) of all rules that
        /// share its text.
        fn expected(rules: &[(String, Capabilities)], path: &str) -> Capabilities {
            // Paths are evaluated without their leading slash, as the API sends them.
            let path = path.trim_start_matches('/');
            let parsed: Vec<(PathPattern, Capabilities)> = rules
                .iter()
                .map(|(text, caps)| (PathPattern::parse(text).expect("pattern"), *caps))
                .collect();
            let bare = path.strip_suffix('/');
            let exact_text = parsed
                .iter()
                .filter(|(pattern, _)| pattern.is_exact())
                .map(|(pattern, _)| pattern.text())
                .find(|text| *text == path)
                .or_else(|| {
                    parsed
                        .iter()
                        .filter(|(pattern, _)| pattern.is_exact())
                        .map(|(pattern, _)| pattern.text())
                        .find(|text| Some(*text) == bare)
                });
            let winner = exact_text.map(String::from).or_else(|| {
                parsed
                    .iter()
                    .filter(|(pattern, _)| !pattern.is_exact())
                    .filter(|(pattern, _)| {
                        reference_match(&tokens(pattern.text()), &path.chars().collect::<Vec<_>>())
                    })
                    .max_by(|(a, _), (b, _)| a.priority(b))
                    .map(|(pattern, _)| pattern.text().to_string())
            });
            let Some(winner) = winner else {
                return Capabilities::NONE;
            };
            parsed
                .iter()
                .filter(|(pattern, _)| pattern.text() == winner)
                .fold(Capabilities::NONE, |all, (_, caps)| all.union(*caps))
                .normalized()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// `PathPattern::matches` agrees with a character-level reference matcher.
            #[test]
            fn matching_agrees_with_a_reference_matcher(pattern in pattern(), path in path()) {
                let parsed = PathPattern::parse(&pattern).expect("generated pattern");
                let chars: Vec<char> = path.chars().collect();
                prop_assert_eq!(
                    parsed.matches(&path),
                    reference_match(&tokens(&pattern), &chars),
                    "pattern {} path {}", pattern, path
                );
            }

            /// Priority is a total order: antisymmetric, equal only for the same text,
            /// transitive.
            #[test]
            fn priority_is_a_total_order(a in pattern(), b in pattern(), c in pattern()) {
                let [a, b, c] = [&a, &b, &c].map(|t| PathPattern::parse(t).expect("pattern"));
                prop_assert_eq!(a.priority(&b), b.priority(&a).reverse());
                prop_assert_eq!(a.priority(&b) == Ordering::Equal, a.text() == b.text());
                if a.priority(&b) == Ordering::Greater && b.priority(&c) == Ordering::Greater {
                    prop_assert_eq!(a.priority(&c), Ordering::Greater);
                }
            }

            /// Evaluation equals the model: exact rule first, else the highest-priority
            /// matching glob, rules with the same text unioned and deny winning — and it does
            /// not depend on how the rules are split into policies or ordered.
            #[test]
            fn evaluation_follows_the_documented_precedence(
                rules in rules(),
                split in 1..4usize,
                paths in proptest::collection::vec(path(), 1..8),
            ) {
                let whole = acl_of(std::slice::from_ref(&rules));
                let mut reversed = rules.clone();
                reversed.reverse();
                let chunks: Vec<Vec<(String, Capabilities)>> =
                    reversed.chunks(split).map(<[_]>::to_vec).collect();
                let scattered = acl_of(&chunks);
                for path in &paths {
                    let want = expected(&rules, path);
                    prop_assert_eq!(whole.capabilities(path), want, "path {}", path);
                    prop_assert_eq!(scattered.capabilities(path), want, "path {} (split)", path);
                }
            }

            /// An exact rule for a path decides it, whatever globs say; a deny added in another
            /// policy with the winning rule's own text denies the path.
            #[test]
            fn exact_rules_decide_and_deny_overrides(
                rules in rules(),
                path in path(),
                granted in capability(),
            ) {
                // The path as a policy names it: no leading slash, no trailing one.
                let exact = path.trim_start_matches('/').trim_end_matches('/').to_string();
                prop_assume!(!exact.is_empty() && PathPattern::parse(&exact).is_ok_and(|p| p.is_exact()));
                let mut with_exact = rules.clone();
                with_exact.retain(|(text, _)| *text != exact);
                let acl = acl_of(&[with_exact.clone(), vec![(exact.clone(), granted)]]);
                prop_assert_eq!(acl.capabilities(&exact), granted.normalized());

                let base = acl_of(std::slice::from_ref(&rules));
                if !base.capabilities(&path).is_empty() {
                    // Find the winning text the same way the model does, then deny it.
                    let winner = rules
                        .iter()
                        .map(|(text, _)| text.clone())
                        .filter(|text| {
                            let single = acl_of(&[vec![(text.clone(), Capabilities::READ)]]);
                            !single.capabilities(&path).is_empty()
                        })
                        .map(|text| PathPattern::parse(&text).expect("pattern"))
                        .max_by(|a, b| match (a.is_exact(), b.is_exact()) {
                            (true, false) => Ordering::Greater,
                            (false, true) => Ordering::Less,
                            _ => a.priority(b),
                        })
                        .expect("a rule matched");
                    let denied = acl_of(&[
                        rules.clone(),
                        vec![(winner.text().to_string(), Capabilities::DENY)],
                    ]);
                    prop_assert_eq!(denied.capabilities(&path), Capabilities::DENY);
                    prop_assert!(!denied.capabilities(&path).allows(Capabilities::READ));
                }
            }
        }
    }
}
