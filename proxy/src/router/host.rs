//! Hostname patterns and the tree that matches request hosts against them.
//!
//! A pattern is a dot-separated list of labels, each of which is exact
//! (`www`), a wildcard (`*`, first label only, exactly one non-empty label)
//! or an anchored regex (`/v[0-9]+/`, exactly one label). A bare `*` stands
//! for any host. Everything is compared in ASCII lowercase: patterns are
//! lowered when parsed and request hosts when normalized, so lookups never
//! fold case again.

use foldhash::HashMap;

use regex::bytes::Regex;
use sozu_command::validate::{self, HostLabel, HostShape};

/// The longest host normalized on the stack. DNS names stop at 253 bytes; a
/// longer Host header is lowered into a heap buffer instead (it is not a
/// name anything but a regex or `*` pattern could match anyway).
const STACK_HOST: usize = 256;

/// One label of a hostname pattern.
#[derive(Debug)]
pub(crate) enum LabelPattern {
    /// The label itself, lowercased.
    Exact(Box<[u8]>),
    /// `*`: any one non-empty label.
    Wildcard,
    /// `/re/`: a label the regex matches entirely.
    Regex(RegexLabel),
}

/// A compiled regex label and the source it was written with, which is how
/// two patterns are known to share a tree node.
#[derive(Debug)]
pub(crate) struct RegexLabel {
    source: Box<str>,
    regex: Regex,
}

impl RegexLabel {
    fn is_match(&self, label: &[u8]) -> bool {
        self.regex.is_match(label)
    }
}

/// A parsed hostname pattern.
#[derive(Debug)]
pub(crate) enum HostPattern {
    /// `*`: every host.
    Any,
    /// Only exact labels: the whole lowercased name, matched in one hash
    /// lookup.
    Exact(Box<[u8]>),
    /// At least one wildcard or regex label; labels from right to left.
    Labels(Vec<LabelPattern>),
}

impl HostPattern {
    /// Parses a frontend's hostname. The error says what is wrong with it,
    /// for a message that also names the frontend.
    pub(crate) fn parse(pattern: &str) -> Result<HostPattern, String> {
        // The syntax is checked and the regex labels compiled by the same
        // function the main process validates changes with, so a frontend
        // the daemon accepts is one this router can hold.
        let labels = match validate::hostname_pattern(pattern)? {
            HostShape::Any => return Ok(HostPattern::Any),
            HostShape::Ipv6(literal) => {
                return Ok(HostPattern::Exact(
                    literal.to_ascii_lowercase().into_bytes().into(),
                ));
            }
            HostShape::Labels(labels) => labels,
        };
        if labels
            .iter()
            .all(|label| matches!(label, HostLabel::Exact(_)))
        {
            let trimmed = pattern.strip_suffix('.').unwrap_or(pattern);
            return Ok(HostPattern::Exact(
                trimmed.to_ascii_lowercase().into_bytes().into(),
            ));
        }
        let mut parsed: Vec<LabelPattern> = labels
            .into_iter()
            .map(|label| match label {
                HostLabel::Exact(label) => {
                    LabelPattern::Exact(label.to_ascii_lowercase().into_bytes().into())
                }
                HostLabel::Wildcard => LabelPattern::Wildcard,
                HostLabel::Regex(source, regex) => LabelPattern::Regex(RegexLabel {
                    source: source.into(),
                    regex,
                }),
            })
            .collect();
        parsed.reverse();
        Ok(HostPattern::Labels(parsed))
    }

    /// Whether a normalized host (see [`normalize_host`]) matches.
    pub(crate) fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(name) => **name == *host,
            HostPattern::Labels(patterns) => {
                let mut labels = host.rsplit(|byte| *byte == b'.');
                for pattern in patterns {
                    let Some(label) = labels.next() else {
                        return false;
                    };
                    let matched = match pattern {
                        LabelPattern::Exact(exact) => **exact == *label,
                        LabelPattern::Wildcard => !label.is_empty(),
                        LabelPattern::Regex(regex) => regex.is_match(label),
                    };
                    if !matched {
                        return false;
                    }
                }
                labels.next().is_none()
            }
        }
    }
}

/// A request host made ready for matching: `:port` and one trailing dot
/// removed, ASCII lowercased. Lives on the stack for any real DNS name.
pub(crate) struct NormalizedHost {
    stack: [u8; STACK_HOST],
    heap: Vec<u8>,
    len: usize,
    on_heap: bool,
}

impl NormalizedHost {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        if self.on_heap {
            &self.heap
        } else {
            &self.stack[..self.len]
        }
    }
}

/// Normalizes a request host; `None` for an empty host, which no frontend
/// can match.
pub(crate) fn normalize_host(host: &str) -> Option<NormalizedHost> {
    let host = strip_port(host.as_bytes());
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let mut normalized = NormalizedHost {
        stack: [0; STACK_HOST],
        heap: Vec::new(),
        len: host.len(),
        on_heap: host.len() > STACK_HOST,
    };
    if normalized.on_heap {
        normalized.heap = host.to_ascii_lowercase();
    } else {
        let target = &mut normalized.stack[..host.len()];
        target.copy_from_slice(host);
        target.make_ascii_lowercase();
    }
    Some(normalized)
}

/// Removes a `:digits` suffix; an unbracketed IPv6 address keeps its colons.
fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|byte| *byte == b']') {
            Some(close) if is_port(&host[close + 1..]) => &host[..=close],
            _ => host,
        };
    }
    match host.iter().rposition(|byte| *byte == b':') {
        Some(colon) if is_port(&host[colon..]) && !host[..colon].contains(&b':') => &host[..colon],
        _ => host,
    }
}

/// `""` or `:` followed by digits (RFC 3986 allows an empty port).
fn is_port(suffix: &[u8]) -> bool {
    match suffix.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// Values of type `T` keyed by hostname pattern, found for a request host
/// with the TREE precedence: from the rightmost label, an exact label beats
/// the wildcard, which beats regex labels; a branch that matches no pattern
/// gives way to the next one. A bare `*` comes last.
#[derive(Debug)]
pub(crate) struct HostTree<T> {
    /// Patterns made only of exact labels: a full exact match always wins,
    /// so these are answered by one hash lookup before any walk.
    exact: HashMap<Box<[u8]>, T>,
    /// Patterns with a wildcard or a regex label.
    root: Node<T>,
    any: Option<T>,
}

#[derive(Debug)]
struct Node<T> {
    /// A pattern whose leftmost label leads here.
    value: Option<T>,
    children: HashMap<Box<[u8]>, Node<T>>,
    /// `*.<labels leading here>`; a wildcard is always the leftmost label.
    wildcard: Option<T>,
    /// In insertion order, which is the order they are tried in.
    regexes: Vec<(RegexLabel, Node<T>)>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            value: None,
            children: HashMap::default(),
            wildcard: None,
            regexes: Vec::new(),
        }
    }
}

impl<T> Default for HostTree<T> {
    fn default() -> Self {
        HostTree {
            exact: HashMap::default(),
            root: Node::default(),
            any: None,
        }
    }
}

impl<T> HostTree<T> {
    /// The value of the most specific pattern matching a normalized host.
    pub(crate) fn find(&self, host: &[u8]) -> Option<&T> {
        self.exact
            .get(host)
            .or_else(|| self.root.find(host))
            .or(self.any.as_ref())
    }

    /// The value stored for this exact pattern, if any.
    pub(crate) fn get_mut(&mut self, pattern: &HostPattern) -> Option<&mut T> {
        match pattern {
            HostPattern::Any => self.any.as_mut(),
            HostPattern::Exact(name) => self.exact.get_mut(name),
            HostPattern::Labels(labels) => self.root.slot_mut(labels)?.as_mut(),
        }
    }

    /// The value stored for this pattern, created with `make` if missing.
    /// Takes the pattern by value: its compiled regexes move into the tree.
    pub(crate) fn get_or_insert_with(
        &mut self,
        pattern: HostPattern,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        match pattern {
            HostPattern::Any => self.any.get_or_insert_with(make),
            HostPattern::Exact(name) => self.exact.entry(name).or_insert_with(make),
            HostPattern::Labels(labels) => {
                self.root.slot_or_insert(labels).get_or_insert_with(make)
            }
        }
    }

    /// Removes the value of this pattern and the tree nodes left empty.
    pub(crate) fn remove(&mut self, pattern: &HostPattern) -> Option<T> {
        match pattern {
            HostPattern::Any => self.any.take(),
            HostPattern::Exact(name) => self.exact.remove(name),
            HostPattern::Labels(labels) => self.root.remove(labels),
        }
    }

    /// Whether no pattern is stored.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.root.is_empty() && self.any.is_none()
    }
}

impl<T> Node<T> {
    fn find(&self, rest: &[u8]) -> Option<&T> {
        // `left` is what remains once `label` is consumed; `None` when `label`
        // is the leftmost one.
        let (left, label) = match rest.iter().rposition(|byte| *byte == b'.') {
            Some(dot) => (Some(&rest[..dot]), &rest[dot + 1..]),
            None => (None, rest),
        };
        if let Some(found) = self
            .children
            .get(label)
            .and_then(|child| child.descend(left))
        {
            return Some(found);
        }
        if left.is_none()
            && !label.is_empty()
            && let Some(found) = &self.wildcard
        {
            return Some(found);
        }
        self.regexes
            .iter()
            .filter(|(regex, _)| regex.is_match(label))
            .find_map(|(_, child)| child.descend(left))
    }

    /// Continues a walk into this node: its own value when the host has no
    /// label left, else the rest of the host below it.
    fn descend(&self, left: Option<&[u8]>) -> Option<&T> {
        match left {
            None => self.value.as_ref(),
            Some(left) => self.find(left),
        }
    }

    fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.wildcard.is_none()
            && self.children.is_empty()
            && self.regexes.is_empty()
    }

    /// The slot for labels given right to left, if the path exists.
    fn slot_mut(&mut self, labels: &[LabelPattern]) -> Option<&mut Option<T>> {
        let (label, rest) = labels.split_first()?;
        let child = match label {
            LabelPattern::Wildcard => return Some(&mut self.wildcard),
            LabelPattern::Exact(name) => self.children.get_mut(name)?,
            LabelPattern::Regex(regex) => self.regex_child(&regex.source)?,
        };
        if rest.is_empty() {
            Some(&mut child.value)
        } else {
            child.slot_mut(rest)
        }
    }

    fn slot_or_insert(&mut self, labels: Vec<LabelPattern>) -> &mut Option<T> {
        let mut node = self;
        for label in labels {
            node = match label {
                LabelPattern::Wildcard => return &mut node.wildcard,
                LabelPattern::Exact(name) => node.children.entry(name).or_default(),
                LabelPattern::Regex(regex) => {
                    let at = match node
                        .regexes
                        .iter()
                        .position(|(known, _)| known.source == regex.source)
                    {
                        Some(at) => at,
                        None => {
                            node.regexes.push((regex, Node::default()));
                            node.regexes.len() - 1
                        }
                    };
                    &mut node.regexes[at].1
                }
            };
        }
        &mut node.value
    }

    fn regex_child(&mut self, source: &str) -> Option<&mut Node<T>> {
        self.regexes
            .iter_mut()
            .find(|(regex, _)| &*regex.source == source)
            .map(|(_, child)| child)
    }

    /// Removes the value at `labels` and prunes children left empty.
    fn remove(&mut self, labels: &[LabelPattern]) -> Option<T> {
        let (label, rest) = labels.split_first()?;
        let take = |child: &mut Node<T>| {
            if rest.is_empty() {
                child.value.take()
            } else {
                child.remove(rest)
            }
        };
        match label {
            LabelPattern::Wildcard => self.wildcard.take(),
            LabelPattern::Exact(name) => {
                let child = self.children.get_mut(name)?;
                let removed = take(child);
                if child.is_empty() {
                    self.children.remove(name);
                }
                removed
            }
            LabelPattern::Regex(regex) => {
                let at = self
                    .regexes
                    .iter()
                    .position(|(known, _)| known.source == regex.source)?;
                let removed = take(&mut self.regexes[at].1);
                if self.regexes[at].1.is_empty() {
                    self.regexes.remove(at);
                }
                removed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(host: &str) -> Vec<u8> {
        normalize_host(host).unwrap().as_bytes().to_vec()
    }

    fn matches(pattern: &str, host: &str) -> bool {
        HostPattern::parse(pattern).unwrap().matches(&norm(host))
    }

    #[test]
    fn normalization_strips_port_and_dot_and_lowers() {
        assert_eq!(norm("Example.COM"), b"example.com");
        assert_eq!(norm("example.com:8080"), b"example.com");
        assert_eq!(norm("example.com:"), b"example.com");
        assert_eq!(norm("example.com."), b"example.com");
        assert_eq!(norm("Example.com.:443"), b"example.com");
        assert_eq!(norm("[::1]:8080"), b"[::1]");
        assert_eq!(norm("[::1]"), b"[::1]");
        // Not a port: kept, so it simply matches nothing exact.
        assert_eq!(norm("example.com:http"), b"example.com:http");
        assert_eq!(norm("::1"), b"::1");
        assert!(normalize_host("").is_none());
        assert!(normalize_host(":80").is_none());
        assert!(normalize_host(".").is_none());
    }

    #[test]
    fn long_hosts_are_normalized_on_the_heap() {
        let long = format!("{}.Example.com", "A".repeat(300));
        let normalized = normalize_host(&long).unwrap();
        assert_eq!(normalized.as_bytes(), long.to_ascii_lowercase().as_bytes());
        assert!(matches("*.example.com", &long));
    }

    #[test]
    fn pattern_errors_say_what_is_wrong() {
        let error = |pattern: &str| HostPattern::parse(pattern).unwrap_err();
        assert!(error("").contains("empty"));
        assert!(error("www.*.example.com").contains("first label"));
        assert!(error("ww*.example.com").contains("whole label"));
        assert!(error("a..example.com").contains("empty label"));
        assert!(error(".example.com").contains("empty label"));
        assert!(error("example.com:8080").contains("port"));
        assert!(error("exa mple.com").contains("' '"));
        assert!(error("/[a-/.example.com").contains("invalid regex"));
        assert!(error("//.example.com").contains("empty"));
        assert!(error("/abc.example.com").contains("closing"));
        assert!(error("[::1").contains("IPv6"));
        assert!(error("[nope]").contains("IPv6"));
        assert!(error("*.*.example.com").contains("first label"));
    }

    #[test]
    fn pattern_kinds() {
        assert!(matches!(HostPattern::parse("*"), Ok(HostPattern::Any)));
        assert!(matches!(
            HostPattern::parse("Example.com."),
            Ok(HostPattern::Exact(name)) if &*name == b"example.com"
        ));
        assert!(matches!(
            HostPattern::parse("*.example.com"),
            Ok(HostPattern::Labels(labels)) if labels.len() == 3
        ));
        assert!(matches!(
            HostPattern::parse("[::1]"),
            Ok(HostPattern::Exact(_))
        ));
    }

    #[test]
    fn wildcard_is_exactly_one_non_empty_label() {
        assert!(matches("*.example.com", "www.example.com"));
        assert!(matches("*.example.com", "WWW.Example.Com:80"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", ".example.com"));
        assert!(!matches("*.example.com", "www.example.org"));
    }

    #[test]
    fn regex_labels_are_anchored_single_labels() {
        assert!(matches("/v[0-9]+/.example.com", "v12.example.com"));
        assert!(!matches("/v[0-9]+/.example.com", "xv12.example.com"));
        assert!(!matches("/v[0-9]+/.example.com", "v12x.example.com"));
        assert!(!matches("/v[0-9]+/.example.com", "a.v12.example.com"));
        // Case-insensitive, whichever case the regex is written in.
        assert!(matches("/V[0-9]+/.example.com", "v1.Example.com"));
        // A regex may contain dots; it still matches within one label.
        assert!(matches("/a.c/.example.com", "abc.example.com"));
        assert!(!matches("/a.c/.example.com", "a.c.example.com"));
        // Regex labels anywhere.
        assert!(matches("api./eu|us/.example.com", "api.eu.example.com"));
        assert!(!matches("api./eu|us/.example.com", "api.asia.example.com"));
        // An alternation cannot escape the anchors.
        assert!(!matches("/a|b/.example.com", "ax.example.com"));
    }

    #[test]
    fn tree_precedence_exact_then_wildcard_then_regex() {
        let mut tree = HostTree::default();
        for (pattern, value) in [
            ("/.*/.example.com", "regex"),
            ("*.example.com", "wildcard"),
            ("www.example.com", "exact"),
            ("*", "any"),
        ] {
            *tree.get_or_insert_with(HostPattern::parse(pattern).unwrap(), || "") = value;
        }
        let find = |host: &str| tree.find(&norm(host)).copied();
        assert_eq!(find("www.example.com"), Some("exact"));
        assert_eq!(find("api.example.com"), Some("wildcard"));
        // The wildcard wants a non-empty label; the regex accepts an empty one.
        assert_eq!(find(".example.com"), Some("regex"));
        assert_eq!(find("example.com"), Some("any"));
        assert_eq!(find("other.org"), Some("any"));
    }

    #[test]
    fn tree_backtracks_when_a_more_specific_branch_matches_nothing() {
        let mut tree = HostTree::default();
        *tree.get_or_insert_with(HostPattern::parse("*.example.com").unwrap(), || 0) = 1;
        *tree.get_or_insert_with(HostPattern::parse("*.b.example.com").unwrap(), || 0) = 2;
        *tree.get_or_insert_with(HostPattern::parse("x./b/.example.com").unwrap(), || 0) = 3;
        let find = |host: &str| tree.find(&norm(host)).copied();
        // `b` exists as an exact child but has no value of its own.
        assert_eq!(find("b.example.com"), Some(1));
        assert_eq!(find("c.b.example.com"), Some(2));
        // The exact branch `b` has no `x` pattern, the regex branch does.
        assert_eq!(find("x.b.example.com"), Some(2));
        assert_eq!(find("a.c.b.example.com"), None);
    }

    #[test]
    fn tree_removal_prunes_empty_nodes() {
        let mut tree = HostTree::default();
        let patterns = [
            "*.example.com",
            "x./v[0-9]/.example.com",
            "/v[0-9]/.example.com",
            "www.example.com",
            "*",
        ];
        for pattern in patterns {
            tree.get_or_insert_with(HostPattern::parse(pattern).unwrap(), || ());
        }
        assert!(tree.find(b"x.v1.example.com").is_some());
        for pattern in patterns {
            let pattern = HostPattern::parse(pattern).unwrap();
            assert!(tree.get_mut(&pattern).is_some());
            assert!(tree.remove(&pattern).is_some());
            assert!(tree.remove(&pattern).is_none());
        }
        assert!(tree.is_empty());
        assert!(tree.find(b"x.v1.example.com").is_none());
    }

    #[test]
    fn regex_labels_share_nodes_by_source() {
        let mut tree = HostTree::default();
        *tree.get_or_insert_with(HostPattern::parse("/v[0-9]/.example.com").unwrap(), || 0) = 1;
        *tree.get_or_insert_with(HostPattern::parse("a./v[0-9]/.example.com").unwrap(), || 0) = 2;
        assert_eq!(
            tree.root.children[&b"com"[..]].children[&b"example"[..]]
                .regexes
                .len(),
            1
        );
        assert_eq!(tree.find(b"v1.example.com"), Some(&1));
        assert_eq!(tree.find(b"a.v1.example.com"), Some(&2));
        tree.remove(&HostPattern::parse("/v[0-9]/.example.com").unwrap());
        assert_eq!(tree.find(b"v1.example.com"), None);
        assert_eq!(tree.find(b"a.v1.example.com"), Some(&2));
    }
}
