//! The consent ledger in D1, and the decision every sender must ask through
//! [`may_market`]: "may this contact receive marketing on this channel now?".

use super::{Db, Row, RowExt, Statement};
use crate::consent::{self, Channel, ContactPoint, LedgerEntry, Refusal};
use crate::error::Error;
use crate::time::Millis;
use serde::Serialize;

const LEDGER: &str = "SELECT id, channel, purpose, granted, wording_version, source, form_id, \
    event_id, recorded_at FROM consents WHERE workspace = ?1 AND contact_id = ?2 \
    ORDER BY recorded_at, id";
const POINTS: &str = "SELECT email_index IS NOT NULL AS has_email, email_status, \
    phone_index IS NOT NULL AS has_phone, phone_status, erased_at FROM contacts \
    WHERE workspace = ?1 AND id = ?2";

/// A ledger row as the api and the export show it (the hashed IP and user agent stay in D1:
/// they prove provenance to an auditor, they are not for everyday reading).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: String,
    pub channel: String,
    pub purpose: String,
    pub granted: bool,
    pub wording_version: Option<String>,
    pub source: String,
    pub form_id: Option<String>,
    pub event_id: Option<String>,
    pub recorded_at: String,
    #[serde(skip)]
    pub at: Millis,
}

pub async fn records(db: &impl Db, workspace: &str, contact: &str) -> Result<Vec<Record>, Error> {
    let rows = db
        .query(&Statement::new(
            LEDGER,
            vec![workspace.into(), contact.into()],
        ))
        .await?;
    Ok(rows.iter().map(record).collect())
}

fn record(r: &Row) -> Record {
    let at = Millis(r.int("recorded_at").unwrap_or(0));
    Record {
        id: r.text("id").unwrap_or_default(),
        channel: r.text("channel").unwrap_or_default(),
        purpose: r.text("purpose").unwrap_or_default(),
        granted: r.int("granted") == Some(1),
        wording_version: r.text("wording_version"),
        source: r.text("source").unwrap_or_default(),
        form_id: r.text("form_id"),
        event_id: r.text("event_id"),
        recorded_at: at.rfc3339(),
        at,
    }
}

fn entries(records: &[Record]) -> Vec<LedgerEntry> {
    records
        .iter()
        .filter_map(|r| {
            Some(LedgerEntry {
                channel: Channel::parse(&r.channel)?,
                purpose: r.purpose.clone(),
                granted: r.granted,
                recorded_at: r.at,
            })
        })
        .collect()
}

/// The current consent per channel (None: never asked).
pub async fn current(
    db: &impl Db,
    workspace: &str,
    contact: &str,
    now: Millis,
) -> Result<Vec<(Channel, Option<bool>)>, Error> {
    let recs = records(db, workspace, contact).await?;
    Ok(consent::current(&entries(&recs), now))
}

/// May `contact` receive marketing on `channel` at `now`? The one answer delivery uses: explicit
/// consent not withdrawn, a usable contact point, not erased. An unknown contact is refused.
pub async fn may_market(
    db: &impl Db,
    workspace: &str,
    contact: &str,
    channel: Channel,
    now: Millis,
) -> Result<Result<(), Refusal>, Error> {
    let rows = db
        .query(&Statement::new(
            POINTS,
            vec![workspace.into(), contact.into()],
        ))
        .await?;
    let Some(c) = rows.first() else {
        return Ok(Err(Refusal::NoContactPoint));
    };
    let (has, status) = match channel {
        Channel::Email => ("has_email", "email_status"),
        Channel::Sms => ("has_phone", "phone_status"),
        // WeCom reaches people through their external user id, which arrives with the delivery
        // work; until then a consented contact's WeCom point counts as present.
        Channel::Wecom => ("", ""),
    };
    let point = if has.is_empty() {
        ContactPoint::Valid
    } else if c.int(has) != Some(1) {
        ContactPoint::Missing
    } else if c.text(status).is_some() {
        ContactPoint::Unusable
    } else {
        ContactPoint::Valid
    };
    let recs = records(db, workspace, contact).await?;
    Ok(consent::may_market(
        &entries(&recs),
        channel,
        point,
        c.int("erased_at").is_some(),
        now,
    ))
}
