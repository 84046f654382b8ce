//! The `Date` header value (RFC 9110 §6.6.1, IMF-fixdate) the proxy puts
//! on relayed responses that lack one and on its own answers. Formatted at
//! most once per second per thread (a worker serves from one thread) and
//! kept in a thread-local copy: taking it costs a clock read and a 29-byte
//! copy, no allocation.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const LEN: usize = 29;

thread_local! {
    /// The second last formatted (since the epoch), and its text.
    static CACHED: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
}

/// The current time as an HTTP date.
pub(crate) fn now() -> [u8; LEN] {
    at(SystemTime::now())
}

/// `time` as an HTTP date, from the cache when it falls in the second
/// last formatted.
fn at(time: SystemTime) -> [u8; LEN] {
    let second = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with(|cached| {
        let (formatted, text) = cached.get();
        if formatted == second {
            return text;
        }
        let text = format(UNIX_EPOCH + std::time::Duration::from_secs(second));
        cached.set((second, text));
        text
    })
}

/// Formats `time` (whole seconds) without allocating.
fn format(time: SystemTime) -> [u8; LEN] {
    let mut text = [0; LEN];
    let mut out = &mut text[..];
    // An IMF-fixdate is always 29 bytes for years 1970 to 9999.
    let _ = write!(out, "{}", httpdate::HttpDate::from(time));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_imf_fixdates() {
        let time = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&at(time), b"Sun, 06 Nov 1994 08:49:37 GMT");
        // Within the same second: the cached text; the next second: anew.
        assert_eq!(
            &at(time + Duration::from_millis(999)),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            &at(time + Duration::from_secs(1)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&now()).unwrap()).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew < Duration::from_secs(5), "{skew:?}");
    }
}
