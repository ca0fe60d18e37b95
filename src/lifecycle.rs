//! Customer life-cycle stages (REQUIREMENTS.md §2.2), decided from a contact's facts at a time.
//!
//! - `new`: signed up within the last 30 days and no purchase yet;
//! - `loyal`: at least 3 orders in the last 180 days (the top of the frequency scale) and a
//!   login within 30 days;
//! - `active`: at least 3 logins in the last 30 days and at least one purchase;
//! - `dormant`: no login for 90 days;
//! - `churn_risk`: 30 days in a row without a login or a core-feature use.
//!
//! Contacts that never signed up, logged in or bought have no stage. Checked in this order:
//! dormant before churn risk (90 idle days is the stronger statement), loyal before active.
//! A contact who fits none keeps no stage change.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    New,
    Active,
    Dormant,
    ChurnRisk,
    Loyal,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Active => "active",
            Stage::Dormant => "dormant",
            Stage::ChurnRisk => "churn_risk",
            Stage::Loyal => "loyal",
        }
    }

    /// The internal event a transition into this stage emits.
    pub fn event_name(self) -> &'static str {
        match self {
            Stage::New => "lifecycle.new",
            Stage::Active => "lifecycle.active",
            Stage::Dormant => "lifecycle.dormant",
            Stage::ChurnRisk => "lifecycle.churn_risk",
            Stage::Loyal => "lifecycle.loyal",
        }
    }
}

/// What the stage depends on, read from the contact's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub signed_up_at: Option<Millis>,
    pub last_login_at: Option<Millis>,
    pub last_feature_at: Option<Millis>,
    pub logins_last_30_days: u32,
    pub orders: u32,
    pub orders_last_180_days: u32,
}

pub const NEW_DAYS: i64 = 30;
pub const ACTIVE_LOGINS: u32 = 3;
pub const DORMANT_DAYS: i64 = 90;
pub const CHURN_DAYS: i64 = 30;
pub const LOYAL_ORDERS: u32 = 3;

/// The stage at `now`, and when it should next be looked at even if nothing happens (the
/// moment time alone could change it).
pub fn stage(f: &Facts, now: Millis) -> (Option<Stage>, Option<Millis>) {
    let day = Millis::DAY;
    let since = |t: Option<Millis>| t.map(|t| now.0 - t.0);
    let last_use = match (f.last_login_at, f.last_feature_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let idle_login = since(f.last_login_at.or(f.signed_up_at));
    let idle_use = since(last_use.or(f.signed_up_at));
    let next = |t: Option<Millis>, days: i64| t.map(|t| t.plus(days * day)).filter(|n| *n > now);

    if f.signed_up_at.is_none() && f.last_login_at.is_none() && f.orders == 0 {
        return (None, None);
    }
    if idle_login.is_some_and(|d| d >= DORMANT_DAYS * day) {
        return (Some(Stage::Dormant), None);
    }
    let dormant_at = next(f.last_login_at.or(f.signed_up_at), DORMANT_DAYS);
    if idle_use.is_some_and(|d| d >= CHURN_DAYS * day) {
        return (Some(Stage::ChurnRisk), dormant_at);
    }
    let churn_at = next(last_use.or(f.signed_up_at), CHURN_DAYS);
    if f.orders_last_180_days >= LOYAL_ORDERS && f.logins_last_30_days >= 1 {
        return (Some(Stage::Loyal), churn_at);
    }
    if f.logins_last_30_days >= ACTIVE_LOGINS && f.orders >= 1 {
        return (Some(Stage::Active), churn_at);
    }
    if f.orders == 0 && since(f.signed_up_at).is_some_and(|d| d < NEW_DAYS * day) {
        let new_ends = next(f.signed_up_at, NEW_DAYS);
        return (
            Some(Stage::New),
            [new_ends, churn_at].into_iter().flatten().min(),
        );
    }
    (None, churn_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = Millis(1_781_740_800_000);
    const DAY: i64 = Millis::DAY;

    fn at(days: i64) -> Option<Millis> {
        Some(T0.plus(days * DAY))
    }

    #[test]
    fn a_fresh_signup_is_new_until_day_30() {
        let f = Facts {
            signed_up_at: at(0),
            ..Default::default()
        };
        let (s, next) = stage(&f, T0.plus(DAY));
        assert_eq!(s, Some(Stage::New));
        assert!(next.is_some_and(|n| n <= T0.plus(30 * DAY)));
    }

    #[test]
    fn three_logins_and_a_purchase_make_an_active_customer() {
        let f = Facts {
            signed_up_at: at(0),
            last_login_at: at(10),
            logins_last_30_days: 3,
            orders: 1,
            ..Default::default()
        };
        assert_eq!(stage(&f, T0.plus(11 * DAY)).0, Some(Stage::Active));
    }

    #[test]
    fn thirty_idle_days_are_churn_risk_and_ninety_are_dormant() {
        let f = Facts {
            signed_up_at: at(0),
            last_login_at: at(10),
            last_feature_at: at(12),
            logins_last_30_days: 0,
            orders: 1,
            ..Default::default()
        };
        assert_eq!(
            stage(&f, T0.plus(41 * DAY)).0,
            None,
            "day 41: 29 days since the last feature use"
        );
        assert_eq!(stage(&f, T0.plus(42 * DAY)).0, Some(Stage::ChurnRisk));
        let (s, next) = stage(&f, T0.plus(42 * DAY));
        assert_eq!(
            (s, next),
            (Some(Stage::ChurnRisk), at(100)),
            "next look: when it turns dormant"
        );
        assert_eq!(stage(&f, T0.plus(100 * DAY)).0, Some(Stage::Dormant));
    }

    #[test]
    fn frequent_buyers_are_loyal() {
        let f = Facts {
            signed_up_at: at(0),
            last_login_at: at(50),
            logins_last_30_days: 1,
            orders: 4,
            orders_last_180_days: 3,
            ..Default::default()
        };
        assert_eq!(stage(&f, T0.plus(51 * DAY)).0, Some(Stage::Loyal));
    }

    #[test]
    fn strangers_have_no_stage() {
        assert_eq!(stage(&Facts::default(), T0), (None, None));
    }
}
