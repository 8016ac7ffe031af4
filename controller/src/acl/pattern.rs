//! Policy path patterns as Vault writes them: exact paths, a trailing `*` glob, and `+` for
//! exactly one segment; and Vault's order for which of several matching patterns wins.
//!
//! Pure and IO-free. Must not know capabilities or policies: it only matches and ranks.

use std::cmp::Ordering;

/// A parsed `path "..."` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    /// `true` when the pattern ends in `*`.
    glob: bool,
    /// How many segments are `+`.
    segment_wildcards: usize,
}

/// Why a pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("path \"{0}\": '*' may only end a path")]
    InnerGlob(String),
    #[error("path \"{0}\": '+' must be a whole segment (like a/+/b)")]
    PartialPlus(String),
    #[error(
        "path \"{0}\": invalid use of wildcards ('+*' is forbidden, as in Vault); write a/+/* or a/+"
    )]
    PlusGlob(String),
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim_start_matches('/');
        // Vault refuses `+*` anywhere; accepting it would leave `+*` a segment that never
        // matches (neither `+` nor a literal prefix).
        if text.contains("+*") {
            return Err(PatternError::PlusGlob(text.into()));
        }
        if let Some(position) = text.find('*')
            && position + 1 != text.len()
        {
            return Err(PatternError::InnerGlob(text.into()));
        }
        let mut segment_wildcards = 0;
        for segment in text.trim_end_matches('*').split('/') {
            if segment == "+" {
                segment_wildcards += 1;
            } else if segment.contains('+') {
                return Err(PatternError::PartialPlus(text.into()));
            }
        }
        Ok(Self {
            text: text.to_string(),
            glob: text.ends_with('*'),
            segment_wildcards,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// An exact pattern has neither `*` nor `+`.
    pub fn is_exact(&self) -> bool {
        !self.glob && self.segment_wildcards == 0
    }

    /// Whether `path` (without a leading slash; lists end with `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        if self.is_exact() {
            return self.text == path;
        }
        if self.segment_wildcards == 0 {
            return path.starts_with(self.text.trim_end_matches('*'));
        }
        let pattern_segments: Vec<&str> = self.text.split('/').collect();
        let path_segments: Vec<&str> = path.split('/').collect();
        if path_segments.len() < pattern_segments.len()
            || (!self.glob && path_segments.len() != pattern_segments.len())
        {
            return false;
        }
        let last = pattern_segments.len() - 1;
        pattern_segments
            .iter()
            .zip(&path_segments)
            .enumerate()
            .all(|(index, (pattern, actual))| {
                if *pattern == "+" {
                    true
                } else if self.glob && index == last {
                    actual.starts_with(pattern.trim_end_matches('*'))
                } else {
                    pattern == actual
                }
            })
    }

    fn first_wildcard(&self) -> usize {
        let plus = self
            .text
            .split('/')
            .scan(0usize, |offset, segment| {
                let start = *offset;
                *offset += segment.len() + 1;
                Some((start, segment))
            })
            .find(|(_, segment)| *segment == "+")
            .map(|(start, _)| start);
        let star = self.text.find('*');
        match (plus, star) {
            (Some(plus), Some(star)) => plus.min(star),
            (Some(position), None) | (None, Some(position)) => position,
            (None, None) => self.text.len(),
        }
    }

    /// Vault's priority between two non-exact patterns that both match a path. `Greater`
    /// means `self` wins:
    /// 1. the pattern whose first wildcard comes later wins;
    /// 2. a pattern not ending in `*` beats one that does;
    /// 3. fewer `+` segments win;
    /// 4. the longer pattern wins;
    /// 5. the lexicographically greater pattern wins.
    pub fn priority(&self, other: &Self) -> Ordering {
        self.first_wildcard()
            .cmp(&other.first_wildcard())
            .then_with(|| other.glob.cmp(&self.glob))
            .then_with(|| other.segment_wildcards.cmp(&self.segment_wildcards))
            .then_with(|| self.text.len().cmp(&other.text.len()))
            .then_with(|| self.text.cmp(&other.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> PathPattern {
        PathPattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("secret/foo", "secret/foo", true),
            ("secret/foo", "secret/foo/", false),
            ("secret/foo", "secret/food", false),
            ("secret/*", "secret/", true),
            ("secret/*", "secret/a/b/c", true),
            ("secret/*", "secret", false),
            ("secret/fo*", "secret/foo/bar", true),
            ("secret/+/teamb", "secret/x/teamb", true),
            ("secret/+/teamb", "secret//teamb", true),
            ("secret/+/teamb", "secret/x/teamb/y", false),
            ("secret/+/teamb", "secret/x/y/teamb", false),
            ("secret/+/team*", "secret/x/teamb/y", true),
            ("secret/+/team*", "secret/x/other", false),
            (
                "os/hosts/+/accounts/mgmt-*",
                "os/hosts/web/accounts/mgmt-root",
                true,
            ),
            (
                "os/hosts/+/accounts/mgmt-*",
                "os/hosts/web/accounts/mgmt-root/creds",
                true,
            ),
            (
                "os/hosts/+/accounts/mgmt-*",
                "os/hosts/web/accounts/app",
                false,
            ),
            (
                "os/hosts/+/accounts/mgmt-*",
                "os/hosts/web/accounts/",
                false,
            ),
            ("+/hosts", "os/hosts", true),
            ("+/hosts", "os/hosts/", false),
            ("*", "anything/at/all", true),
        ];
        for (pattern_text, path, expected) in cases {
            assert_eq!(
                pattern(pattern_text).matches(path),
                *expected,
                "{pattern_text} vs {path}"
            );
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(matches!(
            PathPattern::parse("a/*/b"),
            Err(PatternError::InnerGlob(_))
        ));
        assert!(matches!(
            PathPattern::parse("a/b+/c"),
            Err(PatternError::PartialPlus(_))
        ));
        assert!(PathPattern::parse("a/+/c*").is_ok());
        for forbidden in ["+*", "a/+*", "os/hosts/+*"] {
            assert!(
                matches!(
                    PathPattern::parse(forbidden),
                    Err(PatternError::PlusGlob(_))
                ),
                "{forbidden}"
            );
        }
        assert!(PathPattern::parse("a/+/*").is_ok());
    }

    /// Vault's documented examples of priority matching.
    #[test]
    fn priority_follows_vaults_documented_rules() {
        let higher = |a: &str, b: &str| pattern(a).priority(&pattern(b)) == Ordering::Greater;
        // Rule 1: the first wildcard later wins.
        assert!(higher("secret/foo/+/bar", "secret/+/foo/bar"));
        assert!(higher("secret/foo*", "secret/*"));
        assert!(higher("os/hosts/+/accounts/mgmt-*", "os/*"));
        // Rule 2: not ending in `*` wins.
        assert!(higher("secret/+/foo", "secret/+/foo*"));
        // Rule 3: fewer `+` wins.
        assert!(higher("secret/+/foo/bar", "secret/+/+/bar"));
        // Rule 4: longer wins.
        assert!(higher("secret/+/foo/bar", "secret/+/foo"));
        assert!(higher("secret/foo/bar*", "secret/foo*"));
        // Rule 5: lexicographically greater wins.
        assert!(higher("secret/+/bar/baz", "secret/+/bar/bay"));
        // Total order: never both ways.
        assert!(!higher("secret/*", "secret/*"));
    }
}
