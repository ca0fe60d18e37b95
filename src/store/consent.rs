//! The consent ledger in D1, and the decision every sender must ask through
//! [`may_market`]: "may this contact receive marketing on this channel now?".

use super::{id_list, Db, Row, RowExt, Statement};
use crate::consent::{self, Channel, ContactPoint, LedgerEntry, Refusal};
use crate::error::Error;
use crate::time::Millis;
use serde::Serialize;
use std::collections::HashMap;

// Both take ?2 as a JSON array of contact ids: one contact's reads are the one-element case of a
// queue batch's.
const LEDGERS: &str = "SELECT contact_id, id, channel, purpose, granted, wording_version, source, \
    form_id, event_id, recorded_at FROM consents \
    WHERE workspace = ?1 AND contact_id IN (SELECT value FROM json_each(?2)) \
    ORDER BY contact_id, recorded_at, id";
const POINTS: &str = "SELECT id, email_index IS NOT NULL AS has_email, email_status, \
    phone_index IS NOT NULL AS has_phone, phone_status, erased_at FROM contacts \
    WHERE id IN (SELECT value FROM json_each(?2)) AND +workspace = ?1";

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
    let mut all = ledgers(db, workspace, &[contact]).await?;
    Ok(all.remove(contact).unwrap_or_default())
}

/// The ledgers of several contacts in one round trip, oldest record first.
async fn ledgers(
    db: &impl Db,
    workspace: &str,
    contacts: &[&str],
) -> Result<HashMap<String, Vec<Record>>, Error> {
    let rows = db.query(&of_contacts(LEDGERS, workspace, contacts)).await?;
    let mut by_contact: HashMap<String, Vec<Record>> = HashMap::new();
    for r in &rows {
        by_contact
            .entry(r.text("contact_id").unwrap_or_default())
            .or_default()
            .push(record(r));
    }
    Ok(by_contact)
}

fn of_contacts(sql: &'static str, workspace: &str, contacts: &[&str]) -> Statement {
    Statement::new(sql, vec![workspace.into(), id_list(contacts)])
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
    let answers = may_market_many(db, workspace, &[(contact, channel, now)]).await?;
    Ok(answers
        .into_iter()
        .next()
        .unwrap_or(Err(Refusal::NoContactPoint)))
}

/// [`may_market`] for many (contact, channel, now) questions — a queue batch's — in two round
/// trips whatever their number; answers in the order asked.
pub async fn may_market_many(
    db: &impl Db,
    workspace: &str,
    asks: &[(&str, Channel, Millis)],
) -> Result<Vec<Result<(), Refusal>>, Error> {
    if asks.is_empty() {
        return Ok(Vec::new());
    }
    let mut contacts: Vec<&str> = asks.iter().map(|a| a.0).collect();
    contacts.sort_unstable();
    contacts.dedup();
    let rows = db.query(&of_contacts(POINTS, workspace, &contacts)).await?;
    let points: HashMap<String, &Row> = rows
        .iter()
        .map(|r| (r.text("id").unwrap_or_default(), r))
        .collect();
    let ledgers = ledgers(db, workspace, &contacts).await?;
    Ok(asks
        .iter()
        .map(|&(contact, channel, now)| {
            let Some(c) = points.get(contact) else {
                return Err(Refusal::NoContactPoint);
            };
            let ledger = ledgers.get(contact).map_or(&[][..], Vec::as_slice);
            consent::may_market(
                &entries(ledger),
                channel,
                point(c, channel),
                c.int("erased_at").is_some(),
                now,
            )
        })
        .collect())
}

/// The state of a contact's address for `channel`, from its `POINTS` row.
fn point(c: &Row, channel: Channel) -> ContactPoint {
    let (has, status) = match channel {
        Channel::Email => ("has_email", "email_status"),
        Channel::Sms => ("has_phone", "phone_status"),
        // WeCom reaches people through their external user id, which arrives with the delivery
        // work; until then a consented contact's WeCom point counts as present.
        Channel::Wecom => return ContactPoint::Valid,
    };
    if c.int(has) != Some(1) {
        ContactPoint::Missing
    } else if c.text(status).is_some() {
        ContactPoint::Unusable
    } else {
        ContactPoint::Valid
    }
}
