//! Reading contacts and their timelines for the admin api.

use super::{id_list, Db, Row, RowExt, Statement};
use crate::error::Error;
use crate::pii::{PiiKeys, PiiKind};
use crate::privacy::{mask_email, mask_name, mask_phone};
use crate::time::Millis;
use serde::Serialize;
use serde_json::Value as Json;

/// A contact as the api shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactView {
    pub id: String,
    pub lead_status: String,
    pub lifecycle_stage: Option<String>,
    pub score: i64,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub visitor_ids: Vec<String>,
    /// Non-personal traits: company, industry, company_size, job_title, ...
    pub attributes: Json,
    /// Attribution: where this contact first and last came from.
    pub first_touch: Option<Json>,
    pub last_touch: Option<Json>,
    /// Set when this contact was merged into another.
    pub merged_into: Option<String>,
    pub has_email: bool,
    pub has_phone: bool,
    /// Personal data, masked unless the reader may see it (see [`ContactView::reveal`]).
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    /// `invalid` or `bounced` when the address or number cannot be used.
    pub email_status: Option<String>,
    pub phone_status: Option<String>,
    /// Set when the person's data was erased on request.
    pub erased_at: Option<String>,
    #[serde(skip)]
    pub sealed: SealedPii,
}

/// The ciphertexts behind a view, opened only by [`ContactView::reveal`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SealedPii {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
}

impl ContactView {
    /// Fills in the personal fields: in full when `unmasked`, masked otherwise. A value that
    /// does not open (rotated-away key) shows as `"[sealed]"` rather than failing the read.
    pub fn reveal(&mut self, keys: Option<&PiiKeys>, unmasked: bool) {
        let open = |kind, cipher: &Option<String>| -> Option<String> {
            let cipher = cipher.as_deref()?;
            Some(
                keys.and_then(|k| k.open(kind, cipher).ok())
                    .unwrap_or_else(|| "[sealed]".into()),
            )
        };
        let email = open(PiiKind::Email, &self.sealed.email);
        let phone = open(PiiKind::Phone, &self.sealed.phone);
        let name = open(PiiKind::Name, &self.sealed.name);
        let sealed = |v: &String| v == "[sealed]";
        if unmasked {
            (self.email, self.phone, self.name) = (email, phone, name);
        } else {
            self.email = email.map(|e| if sealed(&e) { e } else { mask_email(&e) });
            self.phone = phone.map(|p| if sealed(&p) { p } else { mask_phone(&p) });
            self.name = name.map(|n| if sealed(&n) { n } else { mask_name(&n) });
        }
    }
}

/// One entry of a contact's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub id: String,
    pub name: String,
    pub site: Option<String>,
    pub properties: Json,
    pub occurred_at: String,
}

// ?2: a JSON array of ids (one for `get`, a queue batch's recipients for `get_many`). The
// workspace test is written `+workspace` so SQLite looks the ids up by primary key instead of
// walking every contact of the workspace through an index that starts with it.
const CONTACTS_BY_ID: &str =
    "SELECT id, lead_status, lifecycle_stage, score, first_seen_at, last_seen_at, \
    attributes, first_touch, last_touch, merged_into, email_index IS NOT NULL AS has_email, \
    phone_index IS NOT NULL AS has_phone, email_cipher, phone_cipher, name_cipher, \
    email_status, phone_status, erased_at \
    FROM contacts WHERE id IN (SELECT value FROM json_each(?2)) AND +workspace = ?1";
const CONTACT_BY_IDENTITY: &str = "SELECT contact_id FROM identities \
    WHERE workspace = ?1 AND kind = ?2 AND value = ?3";
const VISITORS_OF: &str = "SELECT value FROM identities \
    WHERE workspace = ?1 AND kind = 'visitor' AND contact_id = ?2 ORDER BY created_at, value";
const TIMELINE: &str = "SELECT id, name, site, properties, occurred_at FROM events \
    WHERE workspace = ?1 AND contact_id = ?2 AND occurred_at < ?3 \
    ORDER BY occurred_at DESC, id DESC LIMIT ?4";

pub async fn find_by_visitor(
    db: &impl Db,
    workspace: &str,
    visitor_id: &str,
) -> Result<Option<ContactView>, Error> {
    find_by_identity(db, workspace, "visitor", visitor_id).await
}

/// The contact an identity (a visitor id, or the blind index of an email, phone or user id)
/// points at.
pub async fn find_by_identity(
    db: &impl Db,
    workspace: &str,
    kind: &str,
    value: &str,
) -> Result<Option<ContactView>, Error> {
    let rows = db
        .query(&Statement::new(
            CONTACT_BY_IDENTITY,
            vec![workspace.into(), kind.into(), value.into()],
        ))
        .await?;
    match rows.first().and_then(|r| r.text("contact_id")) {
        Some(id) => get(db, workspace, &id).await,
        None => Ok(None),
    }
}

pub async fn get(db: &impl Db, workspace: &str, id: &str) -> Result<Option<ContactView>, Error> {
    let rows = db
        .query(&Statement::new(
            CONTACTS_BY_ID,
            vec![workspace.into(), id_list(&[id])],
        ))
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let visitors = db
        .query(&Statement::new(
            VISITORS_OF,
            vec![workspace.into(), id.into()],
        ))
        .await?;
    Ok(Some(contact_view(row, visitors)))
}

/// Several contacts in one round trip, in no particular order, without their visitor ids (left
/// empty): what a sender needs for a queue batch's recipients. Unknown ids are left out.
pub async fn get_many<S: AsRef<str>>(
    db: &impl Db,
    workspace: &str,
    ids: &[S],
) -> Result<Vec<ContactView>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .query(&Statement::new(
            CONTACTS_BY_ID,
            vec![workspace.into(), id_list(ids)],
        ))
        .await?;
    Ok(rows.iter().map(|r| contact_view(r, Vec::new())).collect())
}

fn contact_view(row: &Row, visitors: Vec<Row>) -> ContactView {
    let at = |col| Millis(row.int(col).unwrap_or(0)).rfc3339();
    ContactView {
        id: row.text("id").unwrap_or_default(),
        lead_status: row.text("lead_status").unwrap_or_default(),
        lifecycle_stage: row.text("lifecycle_stage"),
        score: row.int("score").unwrap_or(0),
        first_seen_at: at("first_seen_at"),
        last_seen_at: at("last_seen_at"),
        visitor_ids: visitors.iter().filter_map(|r| r.text("value")).collect(),
        attributes: json_col(row, "attributes").unwrap_or_else(|| Json::Object(Default::default())),
        first_touch: json_col(row, "first_touch"),
        last_touch: json_col(row, "last_touch"),
        merged_into: row.text("merged_into"),
        has_email: row.int("has_email") == Some(1),
        has_phone: row.int("has_phone") == Some(1),
        email: None,
        phone: None,
        name: None,
        email_status: row.text("email_status"),
        phone_status: row.text("phone_status"),
        erased_at: row.int("erased_at").map(|t| Millis(t).rfc3339()),
        sealed: SealedPii {
            email: row.text("email_cipher"),
            phone: row.text("phone_cipher"),
            name: row.text("name_cipher"),
        },
    }
}

fn json_col(row: &Row, col: &str) -> Option<Json> {
    row.text(col).and_then(|t| serde_json::from_str(&t).ok())
}

/// Newest first; `before` pages backwards through history.
pub async fn timeline(
    db: &impl Db,
    workspace: &str,
    contact_id: &str,
    before: Millis,
    limit: u32,
) -> Result<Vec<TimelineEntry>, Error> {
    let rows = db
        .query(&Statement::new(
            TIMELINE,
            vec![
                workspace.into(),
                contact_id.into(),
                before.into(),
                i64::from(limit).into(),
            ],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| TimelineEntry {
            id: r.text("id").unwrap_or_default(),
            name: r.text("name").unwrap_or_default(),
            site: r.text("site"),
            properties: r
                .text("properties")
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or(Json::Null),
            occurred_at: Millis(r.int("occurred_at").unwrap_or(0)).rfc3339(),
        })
        .collect())
}
