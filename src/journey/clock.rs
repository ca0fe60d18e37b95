//! Journey time: durations as people write them, and local wall-clock times ("Monday 09:00 in
//! the contact's zone", "the 1st of the month at 10:00") turned into instants. Offsets are
//! fixed minutes east of UTC (`delivery::decision::utc_offset_min`): the zones Kindling's markets
//! use keep no daylight saving.

use crate::time::Millis;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};

/// A local time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    pub hour: u32,
    pub minute: u32,
}

/// `30m`, `48h`, `7d`, `2w`, with an optional leading `-` (offsets before an instant).
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s),
    };
    let unit = body.chars().last()?;
    let n: i64 = body[..body.len() - unit.len_utf8()].parse().ok()?;
    let per = match unit {
        'm' => Millis::MINUTE,
        'h' => Millis::HOUR,
        'd' => Millis::DAY,
        'w' => 7 * Millis::DAY,
        _ => return None,
    };
    // Ten years is past any journey's horizon; beyond it is a typo.
    if !(0..=3650 * Millis::DAY).contains(&n.checked_mul(per)?) {
        return None;
    }
    Some(sign * n * per)
}

/// `HH:MM`, 24-hour.
pub fn parse_time_of_day(s: &str) -> Option<TimeOfDay> {
    let (h, m) = s.trim().split_once(':')?;
    let (hour, minute) = (h.parse().ok()?, m.parse().ok()?);
    (h.len() == 2 && m.len() == 2 && hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
}

/// `mon` … `sun` (or the full English name), as days from Monday (0–6).
pub fn parse_weekday(s: &str) -> Option<u32> {
    s.trim()
        .parse::<Weekday>()
        .ok()
        .map(|w| w.num_days_from_monday())
}

fn local(now: Millis, offset_min: i32) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_millis(now.0)
        .map(|t| t.naive_utc() + Duration::minutes(i64::from(offset_min)))
}

fn instant(local: NaiveDateTime, offset_min: i32) -> Millis {
    Millis(
        (local - Duration::minutes(i64::from(offset_min)))
            .and_utc()
            .timestamp_millis(),
    )
}

fn at(date: NaiveDate, t: TimeOfDay) -> NaiveDateTime {
    date.and_time(NaiveTime::from_hms_opt(t.hour, t.minute, 0).unwrap_or(NaiveTime::MIN))
}

/// The first instant strictly after `now` that is `time` local (on `weekday`, if given).
pub fn next_local(now: Millis, offset_min: i32, weekday: Option<u32>, time: TimeOfDay) -> Millis {
    let Some(here) = local(now, offset_min) else {
        return now;
    };
    let mut day = here.date();
    for _ in 0..8 {
        let candidate = at(day, time);
        let day_fits = weekday.is_none_or(|w| day.weekday().num_days_from_monday() == w);
        if day_fits && candidate > here {
            return instant(candidate, offset_min);
        }
        day = day.succ_opt().unwrap_or(day);
    }
    now
}

/// The latest occurrence at or before `now` of a schedule: `day_of_month` or `weekday`, at
/// `time` local. `None` before the first one can be computed.
pub fn last_occurrence(
    now: Millis,
    offset_min: i32,
    day_of_month: Option<u32>,
    weekday: Option<u32>,
    time: TimeOfDay,
) -> Option<Millis> {
    let here = local(now, offset_min)?;
    let mut day = here.date();
    // A monthly schedule looks back at most a month and a bit; a weekly one a week.
    for _ in 0..40 {
        let fits = match (day_of_month, weekday) {
            (Some(d), _) => day.day() == d,
            (None, Some(w)) => day.weekday().num_days_from_monday() == w,
            (None, None) => true,
        };
        if fits && at(day, time) <= here {
            return Some(instant(at(day, time), offset_min));
        }
        day = day.pred_opt()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CST: i32 = 480;
    // 2026-12-07T01:00:00Z is Monday 09:00 in Shanghai.
    const MONDAY_9_CST: Millis = Millis(1_796_605_200_000);

    #[test]
    fn durations_take_units_and_a_sign() {
        assert_eq!(parse_duration("30m"), Some(30 * Millis::MINUTE));
        assert_eq!(parse_duration("48h"), Some(48 * Millis::HOUR));
        assert_eq!(parse_duration("2w"), Some(14 * Millis::DAY));
        assert_eq!(parse_duration("-3d"), Some(-3 * Millis::DAY));
        for bad in ["", "d", "3", "3x", "1.5d", "99999999999999d", "--3d", "3 d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_and_weekdays_parse_strictly() {
        assert_eq!(
            parse_time_of_day("09:30"),
            Some(TimeOfDay {
                hour: 9,
                minute: 30
            })
        );
        for bad in ["9:30", "24:00", "12:60", "noon", ""] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
        assert_eq!(parse_weekday("mon"), Some(0));
        assert_eq!(parse_weekday("Sunday"), Some(6));
        assert_eq!(parse_weekday("someday"), None);
    }

    #[test]
    fn next_local_is_strictly_later_and_in_the_contacts_zone() {
        let nine = TimeOfDay { hour: 9, minute: 0 };
        // At Monday 09:00 CST, "next Monday 09:00" is a week on, never now.
        assert_eq!(
            next_local(MONDAY_9_CST, CST, Some(0), nine),
            MONDAY_9_CST.plus(7 * Millis::DAY)
        );
        // Tuesday 09:00 CST is a day on.
        assert_eq!(
            next_local(MONDAY_9_CST, CST, Some(1), nine),
            MONDAY_9_CST.plus(Millis::DAY)
        );
        // In UTC, 09:00 on that Monday is still 8 hours ahead.
        assert_eq!(
            next_local(MONDAY_9_CST, 0, None, nine),
            MONDAY_9_CST.plus(8 * Millis::HOUR)
        );
    }

    #[test]
    fn last_occurrence_finds_the_first_of_the_month() {
        let ten = TimeOfDay {
            hour: 10,
            minute: 0,
        };
        // From Monday 2026-12-07 09:00 CST the last "1st at 10:00" is 2026-12-01 10:00 CST.
        let first = last_occurrence(MONDAY_9_CST, CST, Some(1), None, ten).unwrap();
        assert_eq!(first.rfc3339(), "2026-12-01T02:00:00.000Z");
        // Exactly at the occurrence, it is that occurrence.
        assert_eq!(last_occurrence(first, CST, Some(1), None, ten), Some(first));
        // A minute before, it is the month before's.
        assert_eq!(
            last_occurrence(first.plus(-Millis::MINUTE), CST, Some(1), None, ten)
                .map(|t| t.rfc3339()),
            Some("2026-11-01T02:00:00.000Z".to_string())
        );
    }
}
