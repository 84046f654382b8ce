//! Path rules: prefix, equality and anchored regex, on the path with its
//! query string, case-sensitively.

use regex::Regex;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use sozu_command::proto::command::{PathRule, PathRuleKind};

/// More literal prefixes than this and checking them stops paying off.
const MAX_PREFIXES: usize = 8;

/// A compiled path rule.
#[derive(Debug)]
pub(crate) enum PathMatcher {
    Prefix(Box<str>),
    Equals(Box<str>),
    Regex {
        regex: Regex,
        /// Literals one of which every matching path starts with, when the
        /// regex has a few: rejecting a path on them costs a comparison,
        /// running the regex costs tens of nanoseconds, which adds up over
        /// a list of PRE or POST rules.
        prefixes: Option<Box<[Box<[u8]>]>>,
    },
}

/// How a path rule matched a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathMatch {
    /// An EQUALS or REGEX rule: it accounts for the whole path.
    Whole,
    /// A PREFIX rule of this many bytes.
    Prefix(usize),
}

impl PathMatcher {
    /// Compiles a rule; the error says what is wrong with it.
    pub(crate) fn new(rule: &PathRule) -> Result<PathMatcher, String> {
        let kind = PathRuleKind::try_from(rule.kind)
            .map_err(|_| format!("unknown path rule kind {}", rule.kind))?;
        let value = rule.value.as_str();
        Ok(match kind {
            PathRuleKind::Prefix => PathMatcher::Prefix(value.into()),
            PathRuleKind::Equals => PathMatcher::Equals(value.into()),
            PathRuleKind::Regex => {
                let regex = sozu_command::validate::path_regex(value)?;
                PathMatcher::Regex {
                    regex,
                    prefixes: required_prefixes(value),
                }
            }
        })
    }

    /// How this rule matches `path`, if it does.
    pub(crate) fn matches(&self, path: &str) -> Option<PathMatch> {
        match self {
            PathMatcher::Prefix(prefix) => path
                .starts_with(&**prefix)
                .then_some(PathMatch::Prefix(prefix.len())),
            PathMatcher::Equals(value) => (**value == *path).then_some(PathMatch::Whole),
            PathMatcher::Regex { regex, prefixes } => {
                let possible = prefixes.as_ref().is_none_or(|prefixes| {
                    prefixes
                        .iter()
                        .any(|prefix| path.as_bytes().starts_with(prefix))
                });
                (possible && regex.is_match(path)).then_some(PathMatch::Whole)
            }
        }
    }
}

/// The literals every match of `pattern` (anchored at the start) begins
/// with, if they are few and none is empty.
fn required_prefixes(pattern: &str) -> Option<Box<[Box<[u8]>]>> {
    let hir = regex_syntax::parse(pattern).ok()?;
    let sequence = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let literals = sequence.literals()?;
    let useful = !literals.is_empty()
        && literals.len() <= MAX_PREFIXES
        && literals
            .iter()
            .all(|literal| !literal.as_bytes().is_empty());
    useful.then(|| {
        literals
            .iter()
            .map(|literal| Box::from(literal.as_bytes()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: PathRuleKind, value: &str) -> PathMatcher {
        PathMatcher::new(&PathRule {
            kind: kind as i32,
            value: value.to_owned(),
        })
        .unwrap()
    }

    #[test]
    fn prefix_reports_its_length() {
        let api = rule(PathRuleKind::Prefix, "/api");
        assert_eq!(api.matches("/api/users"), Some(PathMatch::Prefix(4)));
        assert_eq!(api.matches("/api"), Some(PathMatch::Prefix(4)));
        assert_eq!(api.matches("/ap"), None);
        assert_eq!(api.matches("/API"), None);
        assert_eq!(
            rule(PathRuleKind::Prefix, "").matches("/anything"),
            Some(PathMatch::Prefix(0))
        );
    }

    #[test]
    fn equals_includes_the_query_string() {
        let health = rule(PathRuleKind::Equals, "/health");
        assert_eq!(health.matches("/health"), Some(PathMatch::Whole));
        assert_eq!(health.matches("/health?full=1"), None);
        assert_eq!(health.matches("/health/"), None);
    }

    #[test]
    fn regex_is_anchored_on_the_whole_path() {
        let users = rule(PathRuleKind::Regex, "/users/[0-9]+");
        assert_eq!(users.matches("/users/42"), Some(PathMatch::Whole));
        assert_eq!(users.matches("/v1/users/42"), None);
        assert_eq!(users.matches("/users/42/edit"), None);
        assert_eq!(users.matches("/users/42?x=1"), None);
        // Explicit anchors written for Sozu keep working.
        let anchored = rule(PathRuleKind::Regex, "^/static/.*$");
        assert_eq!(
            anchored.matches("/static/a.css?v=2"),
            Some(PathMatch::Whole)
        );
        // An alternation stays inside the anchors.
        let either = rule(PathRuleKind::Regex, "/a|/b");
        assert_eq!(either.matches("/a"), Some(PathMatch::Whole));
        assert_eq!(either.matches("/ab"), None);
    }

    #[test]
    fn literal_prefixes_never_change_the_answer() {
        let patterns = [
            "/internal/v1/[a-z]+/[0-9]+",
            "/(api|static)/.*",
            "(?i)/Admin/.*",
            "^/users/[0-9]+$",
            "/a|/bc|/d.*",
            "[/x]y.*",
            ".*\\.css",
            "/v[0-9]+/x",
            "/é+/.*",
            "(/ab)?/c",
        ];
        let paths = [
            "/internal/v1/orders/42",
            "/internal/v2/orders/42",
            "/internal/v1/",
            "/api/x",
            "/static/",
            "/apix",
            "/admin/x",
            "/ADMIN/panel",
            "/users/7",
            "/a",
            "/bc",
            "/dz",
            "/b",
            "xy",
            "/y",
            "/style.css",
            "/v12/x",
            "/éé/x",
            "/ab/c",
            "/c",
            "",
        ];
        for pattern in patterns {
            let matcher = rule(PathRuleKind::Regex, pattern);
            let plain = Regex::new(&format!(r"\A(?:{pattern})\z")).unwrap();
            for path in paths {
                assert_eq!(
                    matcher.matches(path).is_some(),
                    plain.is_match(path),
                    "{pattern} on {path}"
                );
            }
        }
        // The rejection is used where it exists.
        let PathMatcher::Regex { prefixes, .. } = rule(PathRuleKind::Regex, "/(api|static)/.*")
        else {
            panic!("a regex rule");
        };
        assert_eq!(prefixes.unwrap().len(), 2);
        let PathMatcher::Regex { prefixes, .. } = rule(PathRuleKind::Regex, ".*\\.css") else {
            panic!("a regex rule");
        };
        assert!(prefixes.is_none());
    }

    #[test]
    fn bad_rules_are_refused() {
        let error = |kind: i32, value: &str| {
            PathMatcher::new(&PathRule {
                kind,
                value: value.to_owned(),
            })
            .unwrap_err()
        };
        assert!(error(PathRuleKind::Regex as i32, "/users/(").contains("invalid path regex"));
        assert!(error(PathRuleKind::Regex as i32, "").contains("empty"));
        assert!(error(7, "/").contains("unknown path rule kind 7"));
        // `a)(b` would compile once wrapped; it must not.
        assert!(error(PathRuleKind::Regex as i32, "a)(b").contains("invalid path regex"));
    }
}
