//! The head sent to the next hop, planned as runs of the received bytes to
//! keep plus the caller's bytes to append: one `writev`, no copy of the
//! header lines that are kept.
//!
//! Dropped (RFC 9112 §7.6.1, §9.6, RFC 9110 §7.6.1): Connection and every
//! header it names (except Host, Content-Length and Transfer-Encoding, which
//! a client cannot make hop-by-hop), Keep-Alive, Proxy-Connection, TE, Trailer,
//! Upgrade unless upgrading, Transfer-Encoding when asked, and the names the
//! caller lists. When upgrading, `Connection: upgrade` is appended.

use std::io::IoSlice;
use std::ops::Range;

use super::framing::list_members;
use super::head::line_range;
use super::names::{Known, Lines};

/// A head's header lines, and where the known names are among them
/// ([`Lines::of`] those lines).
pub type Named<'h, 'b, 'l> = (&'h [httparse::Header<'b>], &'l Lines);

/// The line appended to a head that keeps its Upgrade header.
pub const CONNECTION_UPGRADE: &[u8] = b"Connection: upgrade\r\n";

/// What to drop besides the hop-by-hop headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct EditOptions<'a> {
    /// The message switches protocols: keep Upgrade, append
    /// [`CONNECTION_UPGRADE`].
    pub upgrading: bool,
    /// Drop Transfer-Encoding (the caller reframes the body).
    pub drop_transfer_encoding: bool,
    /// More header names to drop (case-insensitive), e.g. the ones the
    /// caller replaces with its own lines.
    pub drop: &'a [&'a str],
    /// Drop the start line (a request line the caller rewrites): the
    /// caller gives its own to [`EditPlan::slices_with_start`].
    pub drop_start_line: bool,
}

/// The plan had more kept runs than its capacity `RUNS`: with `RUNS` one
/// more than the header array's length it never happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRuns;

/// The runs of a received head to keep, in order. `RUNS` caps their number
/// (a run ends at each dropped line).
#[derive(Debug, Clone)]
pub struct EditPlan<const RUNS: usize> {
    runs: [(u32, u32); RUNS],
    count: usize,
    upgrading: bool,
    start_dropped: bool,
}

/// Trailer is not hop-by-hop in RFC 9110 (§6.6.2), but the hyper path
/// drops it (forwarding.rs), and so does the relay.
const ALWAYS_DROPPED: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
];
/// What a Connection line cannot make hop-by-hop: the message's routing and
/// framing.
const NEVER_NAMED: [&str; 3] = ["host", "content-length", "transfer-encoding"];

fn is_named_by_connection(name: &str, (headers, lines): Named<'_, '_, '_>) -> bool {
    if NEVER_NAMED.iter().any(|n| name.eq_ignore_ascii_case(n)) {
        return false;
    }
    lines
        .all(Known::Connection, headers)
        .any(|h| list_members(h.value).any(|token| token.eq_ignore_ascii_case(name.as_bytes())))
}

/// Whether a Connection line names a header besides Keep-Alive and
/// Upgrade (which the fixed rules already handle): most messages do not,
/// and their lines need not be matched against its tokens.
fn connection_names_others((headers, lines): Named<'_, '_, '_>) -> bool {
    lines.all(Known::Connection, headers).any(|h| {
        list_members(h.value).any(|token| {
            !token.eq_ignore_ascii_case(b"keep-alive") && !token.eq_ignore_ascii_case(b"upgrade")
        })
    })
}

fn is_dropped(
    name: &str,
    headers: Named<'_, '_, '_>,
    options: &EditOptions<'_>,
    names_others: bool,
) -> bool {
    ALWAYS_DROPPED.iter().any(|n| name.eq_ignore_ascii_case(n))
        || (!options.upgrading && name.eq_ignore_ascii_case("upgrade"))
        || (options.drop_transfer_encoding && name.eq_ignore_ascii_case("transfer-encoding"))
        || options.drop.iter().any(|n| name.eq_ignore_ascii_case(n))
        || (names_others
            && is_named_by_connection(name, headers)
            && !(options.upgrading && name.eq_ignore_ascii_case("upgrade")))
}

/// A set of name lengths: bit `n` for a length of `n` bytes, bit 63 for
/// every length from 63 on.
fn length_bit(name: &str) -> u64 {
    1 << name.len().min(63)
}

/// The lengths a dropped name may have: every length when a Connection
/// line names other headers (any line may be one of them).
fn dropped_lengths(options: &EditOptions<'_>, names_others: bool) -> u64 {
    if names_others {
        return u64::MAX;
    }
    let fixed = ["upgrade", "transfer-encoding"];
    ALWAYS_DROPPED
        .iter()
        .chain(&fixed)
        .chain(options.drop)
        .fold(0, |lengths, name| lengths | length_bit(name))
}

impl<const RUNS: usize> EditPlan<RUNS> {
    /// Plans the edit of the head that takes `buf[..head_len]` and whose
    /// header lines `headers` (with their known names) were parsed from `buf`.
    pub fn new(
        buf: &[u8],
        head_len: usize,
        headers: Named<'_, '_, '_>,
        options: &EditOptions<'_>,
    ) -> Result<Self, TooManyRuns> {
        let mut plan = EditPlan::empty();
        plan.refill(buf, head_len, headers, options)?;
        Ok(plan)
    }

    /// A plan that keeps nothing, to be filled by [`EditPlan::refill`].
    pub fn empty() -> Self {
        EditPlan {
            runs: [(0, 0); RUNS],
            count: 0,
            upgrading: false,
            start_dropped: false,
        }
    }

    /// Plans the head at the start of `buf` in place, as [`EditPlan::new`]
    /// does, replacing what this plan held (without moving a plan, which
    /// is large: a plan is kept by a connection and filled at each head).
    /// After an error the plan is not to be used.
    pub fn refill(
        &mut self,
        buf: &[u8],
        head_len: usize,
        headers: Named<'_, '_, '_>,
        options: &EditOptions<'_>,
    ) -> Result<(), TooManyRuns> {
        self.count = 0;
        self.upgrading = options.upgrading;
        self.start_dropped = options.drop_start_line;
        // The kept bytes end before the final empty line.
        let body_start = head_len - 2;
        let mut run_start = 0;
        if options.drop_start_line {
            // The start line ends at the head's first LF (a bare LF was
            // refused by the codec, so it is the end of a CRLF).
            run_start = buf[..body_start]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(body_start, |lf| lf + 1);
        }
        let names_others = connection_names_others(headers);
        let lengths = dropped_lengths(options, names_others);
        for header in headers.0 {
            // Most lines are kept, and most of those have a name whose
            // length no dropped name has.
            if lengths & length_bit(header.name) == 0
                || !is_dropped(header.name, headers, options, names_others)
            {
                continue;
            }
            let line = line_range(buf, header);
            self.push(run_start..line.start)?;
            run_start = line.end;
        }
        self.push(run_start..body_start)
    }

    fn push(&mut self, run: Range<usize>) -> Result<(), TooManyRuns> {
        if run.is_empty() {
            return Ok(());
        }
        if self.count > 0 && self.runs[self.count - 1].1 as usize == run.start {
            self.runs[self.count - 1].1 = run.end as u32;
            return Ok(());
        }
        let slot = self.runs.get_mut(self.count).ok_or(TooManyRuns)?;
        *slot = (run.start as u32, run.end as u32);
        self.count += 1;
        Ok(())
    }

    /// The byte ranges of the received head that are kept, in order.
    pub fn kept(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.runs[..self.count]
            .iter()
            .map(|&(start, end)| start as usize..end as usize)
    }

    /// How many `IoSlice`s [`EditPlan::slices`] writes for `appended` lines.
    pub fn slice_count(&self, appended: usize) -> usize {
        self.count + appended + usize::from(self.upgrading) + usize::from(self.start_dropped) + 1
    }

    /// Appends the new head to `out`: the kept runs of `buf`, then
    /// `appended` (whole header lines, each ending in CRLF), then the final
    /// empty line. A head is a few hundred bytes: copying it into a buffer
    /// the connection reuses costs less than describing it as one slice per
    /// run.
    /// `start` (a whole start line) comes first in place of the received
    /// one when the plan dropped it ([`EditOptions::drop_start_line`]).
    pub fn extend_into(&self, start: &[u8], buf: &[u8], appended: &[u8], out: &mut Vec<u8>) {
        if self.start_dropped {
            out.extend_from_slice(start);
        }
        for run in self.kept() {
            out.extend_from_slice(&buf[run]);
        }
        out.extend_from_slice(appended);
        if self.upgrading {
            out.extend_from_slice(CONNECTION_UPGRADE);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Writes the new head into `out` as the kept runs of `buf`, then
    /// `appended` (whole header lines, each ending in CRLF), then the final
    /// empty line; returns how many slices it wrote, or `None` when `out`
    /// is shorter than [`EditPlan::slice_count`].
    pub fn slices<'a>(
        &self,
        buf: &'a [u8],
        appended: &[&'a [u8]],
        out: &mut [IoSlice<'a>],
    ) -> Option<usize> {
        self.slices_with_start(&[], buf, appended, out)
    }

    /// [`EditPlan::slices`], with `start` (a whole start line, CRLF
    /// included) first in place of the dropped one when the plan dropped
    /// it ([`EditOptions::drop_start_line`]); ignored otherwise.
    pub fn slices_with_start<'a>(
        &self,
        start: &'a [u8],
        buf: &'a [u8],
        appended: &[&'a [u8]],
        out: &mut [IoSlice<'a>],
    ) -> Option<usize> {
        let count = self.slice_count(appended.len());
        if out.len() < count {
            return None;
        }
        let upgrade: &[&'a [u8]] = if self.upgrading {
            &[CONNECTION_UPGRADE]
        } else {
            &[]
        };
        let start = self.start_dropped.then_some(start);
        let pieces = start
            .into_iter()
            .chain(self.kept().map(|run| &buf[run]))
            .chain(appended.iter().copied())
            .chain(upgrade.iter().copied())
            .chain(std::iter::once(&b"\r\n"[..]));
        for (slot, piece) in out.iter_mut().zip(pieces) {
            *slot = IoSlice::new(piece);
        }
        Some(count)
    }
}
