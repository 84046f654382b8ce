//! The header lines the relay looks at, found in one pass over a head.
//!
//! Framing, routing, forwarding headers, the request id and the access log
//! each ask for a few names; asked one by one, each question is a pass over
//! every line of the head. [`Lines::of`] looks at each line once, sorting
//! it by its name's length before comparing it with the few known names of
//! that length, and remembers where each known name first appears and how
//! many times.

/// A header name the relay looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Host,
    Connection,
    ContentLength,
    TransferEncoding,
    Upgrade,
    Expect,
    UserAgent,
    Authorization,
    Cookie,
    XForwardedFor,
    XForwardedProto,
    XForwardedPort,
    Forwarded,
    XRequestId,
    Date,
}

/// How many [`Known`] names there are.
const KNOWN: usize = 15;

impl Known {
    /// The name, in lower case.
    pub fn name(self) -> &'static str {
        match self {
            Known::Host => "host",
            Known::Connection => "connection",
            Known::ContentLength => "content-length",
            Known::TransferEncoding => "transfer-encoding",
            Known::Upgrade => "upgrade",
            Known::Expect => "expect",
            Known::UserAgent => "user-agent",
            Known::Authorization => "authorization",
            Known::Cookie => "cookie",
            Known::XForwardedFor => "x-forwarded-for",
            Known::XForwardedProto => "x-forwarded-proto",
            Known::XForwardedPort => "x-forwarded-port",
            Known::Forwarded => "forwarded",
            Known::XRequestId => "x-request-id",
            Known::Date => "date",
        }
    }

    /// Whether a line's `name` is this one (header names ignore case).
    /// `name` is a token, as the codec lets no other name through.
    #[inline]
    pub fn is(self, name: &str) -> bool {
        token_is(name.as_bytes(), self.name().as_bytes())
    }

    /// The known name `name` is, if any: picked by its length and first
    /// letter, then compared whole.
    fn of(name: &str) -> Option<Known> {
        let first = name.as_bytes().first()?.to_ascii_lowercase();
        let candidate = match (name.len(), first) {
            (4, b'h') => Known::Host,
            (4, b'd') => Known::Date,
            (6, b'e') => Known::Expect,
            (6, b'c') => Known::Cookie,
            (7, b'u') => Known::Upgrade,
            (9, b'f') => Known::Forwarded,
            (10, b'c') => Known::Connection,
            (10, b'u') => Known::UserAgent,
            (12, b'x') => Known::XRequestId,
            (13, b'a') => Known::Authorization,
            (14, b'c') => Known::ContentLength,
            (15, b'x') => Known::XForwardedFor,
            (16, b'x') => Known::XForwardedPort,
            (17, b't') => Known::TransferEncoding,
            (17, b'x') => Known::XForwardedProto,
            _ => return None,
        };
        candidate.is(name).then_some(candidate)
    }
}

/// Whether the token `name` is `lower` (lower-case letters and `-`, at
/// least 4 bytes) whatever its case, compared a word at a time: setting
/// the case bit (0x20) of every byte makes an upper-case letter lower
/// case, and no other token byte becomes a lower-case letter or `-` (the
/// only other byte that would is CR, which no token has).
#[inline]
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    let len = lower.len();
    if name.len() != len {
        return false;
    }
    if len < 4 {
        return name.eq_ignore_ascii_case(lower);
    }
    if len < 8 {
        // Two words of four that overlap when shorter than eight.
        let word = |bytes: &[u8], at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        const CASE: u32 = 0x2020_2020;
        return word(name, 0) | CASE == word(lower, 0)
            && word(name, len - 4) | CASE == word(lower, len - 4);
    }
    let word = |bytes: &[u8], at: usize| {
        let mut eight = [0; 8];
        eight.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(eight)
    };
    const CASE: u64 = 0x2020_2020_2020_2020;
    let mut at = 0;
    while at + 8 < len {
        if word(name, at) | CASE != word(lower, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words before.
    word(name, len - 8) | CASE == word(lower, len - 8)
}

/// Where the known names are among a head's lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lines {
    /// The index of the first line of each name (meaningful when counted).
    first: [u16; KNOWN],
    /// How many lines have each name (at most `u16::MAX` counted).
    count: [u16; KNOWN],
}

impl Lines {
    /// Looks at every line of `headers` once.
    pub fn of(headers: &[httparse::Header<'_>]) -> Lines {
        let mut lines = Lines::default();
        for (index, header) in headers.iter().enumerate() {
            if let Some(known) = Known::of(header.name) {
                let slot = known as usize;
                if lines.count[slot] == 0 {
                    // More lines than a u16 counts are refused long
                    // before (the relay keeps a hundred).
                    lines.first[slot] = u16::try_from(index).unwrap_or(u16::MAX);
                }
                lines.count[slot] = lines.count[slot].saturating_add(1);
            }
        }
        lines
    }

    /// How many lines are named `known`.
    pub fn count(&self, known: Known) -> usize {
        usize::from(self.count[known as usize])
    }

    /// Whether any line is named `known`.
    pub fn has(&self, known: Known) -> bool {
        self.count(known) > 0
    }

    /// Where the first line named `known` is, if any.
    pub fn first_index(&self, known: Known) -> Option<usize> {
        self.has(known)
            .then(|| usize::from(self.first[known as usize]))
    }

    /// The first line named `known`, if any (`headers` are the lines these
    /// were found in).
    pub fn first<'h, 'b>(
        &self,
        known: Known,
        headers: &'h [httparse::Header<'b>],
    ) -> Option<&'h httparse::Header<'b>> {
        let index = self.first_index(known)?;
        headers.get(index).filter(|header| known.is(header.name))
    }

    /// Every line named `known`, in order.
    pub fn all<'h, 'b>(
        &self,
        known: Known,
        headers: &'h [httparse::Header<'b>],
    ) -> impl Iterator<Item = &'h httparse::Header<'b>> {
        let start = self.first_index(known).unwrap_or(headers.len());
        headers
            .get(start..)
            .unwrap_or_default()
            .iter()
            .filter(move |header| known.is(header.name))
            .take(self.count(known))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{KNOWN, Known, Lines};

    const ALL: [Known; KNOWN] = [
        Known::Host,
        Known::Connection,
        Known::ContentLength,
        Known::TransferEncoding,
        Known::Upgrade,
        Known::Expect,
        Known::UserAgent,
        Known::Authorization,
        Known::Cookie,
        Known::XForwardedFor,
        Known::XForwardedProto,
        Known::XForwardedPort,
        Known::Forwarded,
        Known::XRequestId,
        Known::Date,
    ];

    #[test]
    fn every_known_name_is_found_by_its_length_in_any_case() {
        for known in ALL {
            assert_eq!(Known::of(known.name()), Some(known));
            let upper = known.name().to_ascii_uppercase();
            assert_eq!(Known::of(&upper), Some(known));
        }
        assert_eq!(Known::of("accept"), None);
        assert_eq!(Known::of("hosts"), None);
        assert_eq!(Known::of(""), None);
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(ALL.to_vec()).prop_map(|known| known.name().to_owned()),
            1 => proptest::sample::select(ALL.to_vec())
                .prop_map(|known| known.name().to_ascii_uppercase()),
            2 => "[a-zA-Z-]{1,18}",
        ]
    }

    /// Header names: tokens (RFC 9110 §5.6.2), near the known ones.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => (proptest::sample::select(ALL.to_vec()), any::<u32>()).prop_map(|(known, cases)| {
                // A known name, each byte in either case.
                let name = known.name().bytes().enumerate().map(|(at, byte)| {
                    if cases >> at & 1 == 1 { byte.to_ascii_uppercase() } else { byte }
                });
                String::from_utf8(name.collect()).expect("known names are ASCII")
            }),
            2 => (proptest::sample::select(ALL.to_vec()), 0usize..18, "[!#$%&'*+.^_`|~0-9A-Za-z-]")
                .prop_map(|(known, at, byte)| {
                    // A known name with one byte changed to any token byte.
                    let mut name = known.name().to_ascii_uppercase().into_bytes();
                    let at = at % name.len();
                    name[at] = byte.as_bytes()[0];
                    String::from_utf8(name).expect("token bytes are ASCII")
                }),
            1 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}",
        ]
    }

    proptest! {
        /// The word-at-a-time comparison agrees with a plain one on every
        /// token, for every known name.
        #[test]
        fn is_agrees_with_a_plain_comparison(name in token()) {
            for known in ALL {
                prop_assert_eq!(known.is(&name), name.eq_ignore_ascii_case(known.name()));
            }
        }

        /// What the one pass finds is what a search by name finds, for
        /// every known name.
        #[test]
        fn lines_agree_with_a_search_by_name(names in proptest::collection::vec(name(), 0..24)) {
            let headers: Vec<httparse::Header<'_>> = names
                .iter()
                .map(|name| httparse::Header { name, value: b"v" })
                .collect();
            let lines = Lines::of(&headers);
            for known in ALL {
                let named: Vec<usize> = headers
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.name.eq_ignore_ascii_case(known.name()))
                    .map(|(index, _)| index)
                    .collect();
                prop_assert_eq!(lines.count(known), named.len());
                prop_assert_eq!(lines.first_index(known), named.first().copied());
                let first = lines.first(known, &headers).map(|h| h.name);
                prop_assert_eq!(first, named.first().map(|&i| headers[i].name));
                prop_assert_eq!(lines.all(known, &headers).count(), named.len());
            }
        }
    }
}
