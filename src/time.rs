//! Time as a value. Domain code never reads a clock: handlers pass the request time, the cron
//! passes its scheduled time, and tests pass whatever time they want to replay.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC). Kept well below 2^53 so it survives the JS boundary
/// of D1 and Queues unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    pub const SECOND: i64 = 1_000;
    pub const MINUTE: i64 = 60 * Self::SECOND;
    pub const HOUR: i64 = 60 * Self::MINUTE;
    pub const DAY: i64 = 24 * Self::HOUR;

    /// The latest instant D1 can carry exactly (2^53 - 1 ms); anything later is invalid input.
    pub const MAX: Millis = Millis((1 << 53) - 1);

    pub fn plus(self, ms: i64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// The UTC calendar day, `YYYY-MM-DD`, used to bucket counters.
    pub fn utc_day(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) => t.format("%Y-%m-%d").to_string(),
            None => "invalid".to_string(),
        }
    }

    /// RFC 3339 rendering for API answers.
    pub fn rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_day_buckets_by_calendar_day() {
        // 2026-06-18T23:59:59.999Z and one millisecond later fall on different days.
        let end = Millis(1_781_827_199_999);
        assert_eq!(end.utc_day(), "2026-06-18");
        assert_eq!(end.plus(1).utc_day(), "2026-06-19");
    }

    #[test]
    fn rfc3339_keeps_milliseconds() {
        assert_eq!(Millis(1_500).rfc3339(), "1970-01-01T00:00:01.500Z");
    }
}
