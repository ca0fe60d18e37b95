//! The one decision every sender asks: "may we send this message to this contact on this
//! channel now?" — consent (through `consent::may_market`), frequency caps, quiet hours in the
//! contact's time zone and coordination with sales. The answer is send, defer to the first
//! allowed time, or suppress with a reason: never a silent drop.
//!
//! Pure and allocation-free: the store gathers the facts (`Situation`), this decides.

use crate::consent::Refusal;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Marketing,
    /// Receipts, password resets, order confirmations: exempt from consent, caps, quiet hours
    /// and sales coordination; still never sent to an erased person or an unusable address.
    Transactional,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Marketing => "marketing",
            Kind::Transactional => "transactional",
        }
    }
}

/// The rules, configurable globally (and per journey).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// At most this many marketing messages per channel per contact in `cap_window_ms`.
    pub cap: u32,
    pub cap_window_ms: i64,
    /// No marketing between these local times (minutes after midnight); may wrap midnight.
    pub quiet_start_min: u32,
    pub quiet_end_min: u32,
    /// No marketing within this long after a salesperson contacted the person.
    pub sales_cooldown_ms: i64,
}

impl Default for Policy {
    /// REQUIREMENTS.md: ≤ 2 pushes per channel per contact per week; no marketing 21:00–08:00;
    /// 48 hours of quiet after a sales contact.
    fn default() -> Policy {
        Policy {
            cap: 2,
            cap_window_ms: 7 * Millis::DAY,
            quiet_start_min: 21 * 60,
            quiet_end_min: 8 * 60,
            sales_cooldown_ms: 48 * Millis::HOUR,
        }
    }
}

/// What the decision needs to know about this contact, channel and moment.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    pub kind: Kind,
    /// The consent decision for the channel (`consent::may_market`).
    pub consent: Result<(), Refusal>,
    /// Times of this channel's marketing messages to the contact sent (or being sent) within
    /// the cap window before `now`, any order.
    pub recent: &'a [Millis],
    /// The contact's offset from UTC in minutes (China Standard Time: 480).
    pub utc_offset_min: i32,
    /// The last time a salesperson contacted the person, if ever.
    pub last_sales_contact: Option<Millis>,
    /// The journey's own cap, when the message comes from a journey that has one.
    pub journey_cap: Option<JourneyCap<'a>>,
    pub now: Millis,
}

/// A journey's own frequency cap (`frequency_cap` in its definition), on top of the global one:
/// at most `max` of the journey's marketing messages on this channel within `window_ms`.
#[derive(Debug, Clone, Copy)]
pub struct JourneyCap<'a> {
    pub max: u32,
    pub window_ms: i64,
    /// Send times of this journey's marketing messages on the channel to the contact.
    pub recent: &'a [Millis],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Consent(Refusal),
    FrequencyCap,
    JourneyFrequencyCap,
    QuietHours,
    SalesContact,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Consent(r) => r.as_str(),
            Reason::FrequencyCap => "frequency_cap",
            Reason::JourneyFrequencyCap => "journey_frequency_cap",
            Reason::QuietHours => "quiet_hours",
            Reason::SalesContact => "sales_contact",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Not now: try again at `until`, the first moment every rule allows.
    Defer {
        until: Millis,
        reason: Reason,
    },
    /// Not at all; recorded with the reason.
    Suppress {
        reason: Reason,
    },
}

pub fn decide(policy: &Policy, s: &Situation<'_>) -> Decision {
    match (s.kind, s.consent) {
        (_, Ok(())) => {}
        // A transactional message needs no marketing consent, but an address to go to.
        (Kind::Transactional, Err(Refusal::NoConsent | Refusal::Withdrawn)) => {}
        (_, Err(r)) => {
            return Decision::Suppress {
                reason: Reason::Consent(r),
            }
        }
    }
    if s.kind == Kind::Transactional {
        return Decision::Send;
    }
    // The earliest time every rule allows, found by moving forward past each obstacle until
    // none is left (each rule only ever pushes later, so a few rounds settle it).
    let mut at = s.now;
    let mut first: Option<Reason> = None;
    for _ in 0..4 {
        let before = at;
        if let Some(touch) = s.last_sales_contact {
            let until = touch.plus(policy.sales_cooldown_ms);
            if at < until {
                at = until;
                first.get_or_insert(Reason::SalesContact);
            }
        }
        if let Some(until) = cap_frees_at(policy.cap, policy.cap_window_ms, s.recent, at) {
            at = until;
            first.get_or_insert(Reason::FrequencyCap);
        }
        if let Some(j) = &s.journey_cap {
            if let Some(until) = cap_frees_at(j.max, j.window_ms, j.recent, at) {
                at = until;
                first.get_or_insert(Reason::JourneyFrequencyCap);
            }
        }
        if let Some(until) = quiet_ends_at(policy, s.utc_offset_min, at) {
            at = until;
            first.get_or_insert(Reason::QuietHours);
        }
        if at == before {
            break;
        }
    }
    match first {
        None => Decision::Send,
        Some(reason) => Decision::Defer { until: at, reason },
    }
}

/// When a send at `at` would be within a cap of `cap` per `window_ms` again: None if it
/// already is.
fn cap_frees_at(cap: u32, window_ms: i64, recent: &[Millis], at: Millis) -> Option<Millis> {
    if cap == 0 {
        return None;
    }
    let window_start = at.0 - window_ms;
    let in_window = recent
        .iter()
        .filter(|t| t.0 > window_start && t.0 <= at.0)
        .count();
    if (in_window as u32) < cap {
        return None;
    }
    // The send that must leave the window: the (in_window - cap + 1)-th oldest inside it.
    let mut leaving = i64::MAX;
    let need = in_window - cap as usize + 1;
    // Small slices (a cap is a handful): find the need-th smallest without allocating.
    let mut floor = i64::MIN;
    for _ in 0..need {
        leaving = recent
            .iter()
            .map(|t| t.0)
            .filter(|t| *t > window_start && *t <= at.0 && *t > floor)
            .min()
            .unwrap_or(i64::MAX);
        floor = leaving;
    }
    (leaving != i64::MAX).then(|| Millis(leaving + window_ms + 1))
}

/// When the quiet hours around `at` end (local time), or None outside them.
fn quiet_ends_at(policy: &Policy, offset_min: i32, at: Millis) -> Option<Millis> {
    let (start, end) = (policy.quiet_start_min, policy.quiet_end_min);
    if start == end {
        return None;
    }
    let local = at.0 + i64::from(offset_min) * Millis::MINUTE;
    let day_start = local.div_euclid(Millis::DAY) * Millis::DAY;
    let minute = ((local - day_start) / Millis::MINUTE) as u32;
    let quiet = if start < end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    };
    if !quiet {
        return None;
    }
    let end_today = day_start + i64::from(end) * Millis::MINUTE;
    let end_local = if minute < end {
        end_today
    } else {
        end_today + Millis::DAY
    };
    Some(Millis(end_local - i64::from(offset_min) * Millis::MINUTE))
}

/// A contact's UTC offset from its `timezone` attribute: `+08:00` / `-05:30` forms or the IANA
/// names of zones without daylight saving that Kindling's markets use. Anything else: China
/// Standard Time, the product's default.
pub fn utc_offset_min(timezone: Option<&str>) -> i32 {
    const CST: i32 = 8 * 60;
    let Some(tz) = timezone.map(str::trim) else {
        return CST;
    };
    let named = [
        ("Asia/Shanghai", 480),
        ("Asia/Hong_Kong", 480),
        ("Asia/Taipei", 480),
        ("Asia/Singapore", 480),
        ("Asia/Tokyo", 540),
        ("Asia/Seoul", 540),
        ("Asia/Kolkata", 330),
        ("Asia/Dubai", 240),
        ("UTC", 0),
        ("Etc/UTC", 0),
    ];
    if let Some((_, m)) = named.iter().find(|(n, _)| n.eq_ignore_ascii_case(tz)) {
        return *m;
    }
    let bytes = tz.as_bytes();
    if bytes.len() == 6 && (bytes[0] == b'+' || bytes[0] == b'-') && bytes[3] == b':' {
        let h: i32 = tz[1..3].parse().unwrap_or(99);
        let m: i32 = tz[4..6].parse().unwrap_or(99);
        if h <= 14 && m < 60 {
            let sign = if bytes[0] == b'-' { -1 } else { 1 };
            return sign * (h * 60 + m);
        }
    }
    CST
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2027-01-15 10:00 in Shanghai (02:00 UTC).
    const NOON_ISH: Millis =
        Millis(1_800_000_000_000 - 1_800_000_000_000 % Millis::DAY + 2 * Millis::HOUR);

    fn marketing(recent: &[Millis], at: Millis) -> Situation<'_> {
        Situation {
            kind: Kind::Marketing,
            consent: Ok(()),
            recent,
            utc_offset_min: 480,
            last_sales_contact: None,
            journey_cap: None,
            now: at,
        }
    }

    #[test]
    fn a_journeys_own_cap_defers_past_its_window() {
        // The journey allows one message a week; its last went out two days ago. The global
        // cap (2 a week) would allow this one.
        let sent = [NOON_ISH.plus(-2 * Millis::DAY)];
        let mut s = marketing(&sent, NOON_ISH);
        s.journey_cap = Some(JourneyCap {
            max: 1,
            window_ms: 7 * Millis::DAY,
            recent: &sent,
        });
        assert_eq!(
            decide(&Policy::default(), &s),
            Decision::Defer {
                until: NOON_ISH.plus(5 * Millis::DAY + 1),
                reason: Reason::JourneyFrequencyCap
            }
        );
        // Without the journey's cap it goes now.
        s.journey_cap = None;
        assert_eq!(decide(&Policy::default(), &s), Decision::Send);
    }

    #[test]
    fn consented_marketing_in_the_day_is_sent() {
        assert_eq!(
            decide(&Policy::default(), &marketing(&[], NOON_ISH)),
            Decision::Send
        );
    }

    #[test]
    fn no_consent_suppresses_marketing_but_not_transactional() {
        let mut s = marketing(&[], NOON_ISH);
        s.consent = Err(Refusal::Withdrawn);
        assert_eq!(
            decide(&Policy::default(), &s),
            Decision::Suppress {
                reason: Reason::Consent(Refusal::Withdrawn)
            }
        );
        s.kind = Kind::Transactional;
        assert_eq!(decide(&Policy::default(), &s), Decision::Send);
        s.consent = Err(Refusal::ContactPointUnusable);
        assert!(matches!(
            decide(&Policy::default(), &s),
            Decision::Suppress { .. }
        ));
    }

    #[test]
    fn the_third_message_in_a_week_waits_for_the_oldest_to_leave_the_window() {
        let d1 = Millis(NOON_ISH.0 - 3 * Millis::DAY);
        let d2 = Millis(NOON_ISH.0 - Millis::DAY);
        let got = decide(&Policy::default(), &marketing(&[d2, d1], NOON_ISH));
        assert_eq!(
            got,
            Decision::Defer {
                until: Millis(d1.0 + 7 * Millis::DAY + 1),
                reason: Reason::FrequencyCap
            }
        );
        // Transactional messages are exempt.
        let recent = [d2, d1];
        let mut s = marketing(&recent, NOON_ISH);
        s.kind = Kind::Transactional;
        assert_eq!(decide(&Policy::default(), &s), Decision::Send);
    }

    #[test]
    fn quiet_hours_defer_to_eight_in_the_morning_local_time() {
        // 22:30 in Shanghai = 14:30 UTC.
        let late = Millis(NOON_ISH.0 + 12 * Millis::HOUR + 30 * Millis::MINUTE);
        let Decision::Defer { until, reason } = decide(&Policy::default(), &marketing(&[], late))
        else {
            panic!("quiet hours")
        };
        assert_eq!(reason, Reason::QuietHours);
        // The next day 08:00 Shanghai = 00:00 UTC.
        assert_eq!(until.0 % Millis::DAY, 0);
        assert!(until > late && until.0 - late.0 < 10 * Millis::HOUR);
        // Someone in UTC at that moment (14:30) is not in quiet hours.
        let mut s = marketing(&[], late);
        s.utc_offset_min = 0;
        assert_eq!(decide(&Policy::default(), &s), Decision::Send);
    }

    #[test]
    fn a_sales_contact_holds_marketing_for_48_hours_then_quiet_hours_still_apply() {
        let mut s = marketing(&[], NOON_ISH);
        // The salesperson called at 16:00 Shanghai yesterday: the hold ends at 16:00 tomorrow.
        s.last_sales_contact = Some(Millis(NOON_ISH.0 - 18 * Millis::HOUR));
        let Decision::Defer { until, reason } = decide(&Policy::default(), &s) else {
            panic!("held")
        };
        assert_eq!(reason, Reason::SalesContact);
        assert_eq!(until, Millis(NOON_ISH.0 + 30 * Millis::HOUR));
        // A hold ending at 23:00 local moves on to 08:00.
        s.last_sales_contact = Some(Millis(NOON_ISH.0 - 35 * Millis::HOUR));
        let Decision::Defer { until, .. } = decide(&Policy::default(), &s) else {
            panic!("held")
        };
        assert_eq!((until.0 + 8 * Millis::HOUR) % Millis::DAY, 8 * Millis::HOUR);
    }

    #[test]
    fn time_zones_from_attributes() {
        assert_eq!(utc_offset_min(None), 480);
        assert_eq!(utc_offset_min(Some("Asia/Tokyo")), 540);
        assert_eq!(utc_offset_min(Some("-05:30")), -330);
        assert_eq!(utc_offset_min(Some("+99:00")), 480);
        assert_eq!(utc_offset_min(Some("Mars/Olympus")), 480);
    }
}
