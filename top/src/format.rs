//! Short human forms of numbers, sizes, durations and times, as the views
//! print them. `-` stands for "not known yet".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A rate with a k/M suffix: `0`, `12.5`, `1.2k`, `3.4M`.
pub fn rate(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(value) if value < 0.05 => "0".to_owned(),
        Some(value) if value < 100.0 => format!("{value:.1}"),
        Some(value) if value < 1000.0 => format!("{value:.0}"),
        Some(value) if value < 1_000_000.0 => format!("{:.1}k", value / 1000.0),
        Some(value) => format!("{:.1}M", value / 1_000_000.0),
    }
}

/// A share as a percentage: `0%`, `0.3%`, `12%`.
pub fn percent(ratio: Option<f64>) -> String {
    match ratio {
        None => "-".to_owned(),
        Some(0.0) => "0%".to_owned(),
        Some(ratio) if ratio < 0.1 => format!("{:.1}%", ratio * 100.0),
        Some(ratio) => format!("{:.0}%", ratio * 100.0),
    }
}

/// A latency bound from a histogram bucket: `≤7ms`.
pub fn latency(bound_ms: Option<u64>) -> String {
    match bound_ms {
        None => "-".to_owned(),
        // The first bucket holds what took under a millisecond.
        Some(0) => "<1ms".to_owned(),
        Some(ms) if ms >= 10_000 => format!("≤{}s", ms / 1000),
        Some(ms) => format!("≤{ms}ms"),
    }
}

/// Bytes per second: `0 B/s`, `12 kB/s`, `3.4 MB/s`.
pub fn throughput(bytes_per_second: Option<f64>) -> String {
    match bytes_per_second {
        None => "-".to_owned(),
        Some(value) => format!("{}/s", bytes(value)),
    }
}

/// A size: `512 B`, `12 kB`, `3.4 MB`, `1.2 GB`.
pub fn bytes(value: f64) -> String {
    if value < 1000.0 {
        format!("{value:.0} B")
    } else if value < 1_000_000.0 {
        format!("{:.0} kB", value / 1000.0)
    } else if value < 1_000_000_000.0 {
        format!("{:.1} MB", value / 1_000_000.0)
    } else {
        format!("{:.1} GB", value / 1_000_000_000.0)
    }
}

/// An age: `0.4s`, `12s`, `3m05s`, `2h10m`, `3d04h`.
pub fn age(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 10 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else if seconds < 86_400 {
        format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60)
    } else {
        format!("{}d{:02}h", seconds / 86_400, (seconds % 86_400) / 3600)
    }
}

/// Unix seconds of a wall-clock time (negative before 1970).
pub fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `2026-12-02 15:04:05` (UTC) of unix seconds.
pub fn date_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// `2026-12-02` (UTC) of unix seconds.
pub fn date(unix: i64) -> String {
    date_time(unix).chars().take(10).collect()
}

/// `15:04:05` (UTC) of a wall-clock time.
pub fn clock(time: SystemTime) -> String {
    date_time(unix_seconds(time)).chars().skip(11).collect()
}

/// Days left until `unix` from `now` (negative once past), rounded down.
pub fn days_left(unix: i64, now: SystemTime) -> i64 {
    (unix - unix_seconds(now)).div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(0.0)), "0");
        assert_eq!(rate(Some(12.345)), "12.3");
        assert_eq!(rate(Some(2345.0)), "2.3k");
        assert_eq!(percent(Some(0.0)), "0%");
        assert_eq!(percent(Some(0.004)), "0.4%");
        assert_eq!(percent(Some(0.25)), "25%");
        assert_eq!(latency(Some(7)), "≤7ms");
        assert_eq!(latency(Some(0)), "<1ms");
        assert_eq!(throughput(Some(12_500.0)), "12 kB/s");
        assert_eq!(age(Duration::from_millis(400)), "0.4s");
        assert_eq!(age(Duration::from_secs(185)), "3m05s");
        assert_eq!(date_time(1_764_687_845), "2025-12-02 15:04:05");
        assert_eq!(date(1_764_687_845), "2025-12-02");
        assert_eq!(
            clock(UNIX_EPOCH + Duration::from_secs(1_764_687_845)),
            "15:04:05"
        );
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(days_left(1_000_000 + 86_400 * 3 + 5, now), 3);
        assert_eq!(days_left(1_000_000 - 5, now), -1);
    }
}
