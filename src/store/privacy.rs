//! The rights of the person and the accountability of staff: scoped api tokens, the audit
//! log, export of everything about a contact, and erasure.

use super::{Db, Row, RowExt, Statement};
use crate::auth::{secret_hash, split_token, Principal, Scope};
use crate::consent::Channel;
use crate::error::Error;
use crate::pii::PiiKeys;
use crate::time::Millis;
use serde::Serialize;
use serde_json::{json, Value as Json};

const INSERT_TOKEN: &str = "INSERT INTO api_tokens \
    (workspace, id, name, secret_hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const TOKEN_BY_ID: &str = "SELECT secret_hash, scopes FROM api_tokens \
    WHERE workspace = ?1 AND id = ?2 AND revoked_at IS NULL";
const LIST_TOKENS: &str = "SELECT id, name, scopes, created_at, revoked_at FROM api_tokens \
    WHERE workspace = ?1 ORDER BY created_at, id";
const REVOKE_TOKEN: &str =
    "UPDATE api_tokens SET revoked_at = ?3 WHERE workspace = ?1 AND id = ?2 AND revoked_at IS NULL";

const INSERT_AUDIT: &str =
    "INSERT INTO audit_log (workspace, id, at, actor, action, contact_id, detail) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const LIST_AUDIT: &str = "SELECT id, at, actor, action, contact_id, detail FROM audit_log \
    WHERE workspace = ?1 AND (?2 IS NULL OR contact_id = ?2) ORDER BY at DESC, id DESC LIMIT ?3";

/// A created token, with its secret: shown once, stored only as a hash.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub token: String,
}

/// Stores a token. `id` (16 hex) and `secret` (32 hex) come from the shell's CSPRNG.
pub async fn create_token(
    db: &impl Db,
    workspace: &str,
    name: &str,
    scopes: Vec<Scope>,
    (id, secret): (&str, &str),
    now: Millis,
) -> Result<NewToken, Error> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "name the token: 1-100 characters"));
    }
    if scopes.is_empty() {
        return Err(Error::invalid(
            "scopes",
            "give at least one of read, write, pii:read, pii:erase",
        ));
    }
    let token = format!("kt_{id}_{secret}");
    if split_token(&token).is_none() {
        return Err(Error::Store("token ids must be hex".into()));
    }
    let scopes_json = serde_json::to_string(&scopes).map_err(|e| Error::Store(e.to_string()))?;
    db.execute(&Statement::new(
        INSERT_TOKEN,
        vec![
            workspace.into(),
            id.into(),
            name.trim().into(),
            secret_hash(secret).into(),
            scopes_json.into(),
            now.into(),
        ],
    ))
    .await?;
    Ok(NewToken {
        id: id.into(),
        name: name.trim().into(),
        scopes,
        token,
    })
}

/// The principal a created token stands for; None when unknown, revoked or wrong.
pub async fn principal_of(
    db: &impl Db,
    workspace: &str,
    presented: &str,
) -> Result<Option<Principal>, Error> {
    let Some((id, secret)) = split_token(presented) else {
        return Ok(None);
    };
    let rows = db
        .query(&Statement::new(
            TOKEN_BY_ID,
            vec![workspace.into(), id.into()],
        ))
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let stored = row.text("secret_hash").unwrap_or_default();
    if !crate::auth::constant_time_eq(stored.as_bytes(), secret_hash(secret).as_bytes()) {
        return Ok(None);
    }
    let scopes: Vec<Scope> = row
        .text("scopes")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    Ok(Some(Principal {
        actor: format!("token:{id}"),
        scopes,
    }))
}

pub async fn list_tokens(db: &impl Db, workspace: &str) -> Result<Vec<Json>, Error> {
    let rows = db
        .query(&Statement::new(LIST_TOKENS, vec![workspace.into()]))
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "id": r.text("id"),
                "name": r.text("name"),
                "scopes": r.text("scopes").and_then(|s| serde_json::from_str::<Json>(&s).ok()),
                "created_at": r.int("created_at").map(|t| Millis(t).rfc3339()),
                "revoked_at": r.int("revoked_at").map(|t| Millis(t).rfc3339()),
            })
        })
        .collect())
}

pub async fn revoke_token(
    db: &impl Db,
    workspace: &str,
    id: &str,
    now: Millis,
) -> Result<bool, Error> {
    let n = db
        .execute(&Statement::new(
            REVOKE_TOKEN,
            vec![workspace.into(), id.into(), now.into()],
        ))
        .await?;
    Ok(n > 0)
}

/// One audit entry. `id` comes from the shell's CSPRNG; `detail` never holds personal data.
pub struct Audit<'a> {
    pub workspace: &'a str,
    pub id: String,
    pub at: Millis,
    pub actor: &'a str,
    pub action: &'a str,
    pub contact_id: Option<&'a str>,
    pub detail: Json,
}

pub fn audit_statement(a: Audit<'_>) -> Statement {
    Statement::new(
        INSERT_AUDIT,
        vec![
            a.workspace.into(),
            a.id.into(),
            a.at.into(),
            a.actor.into(),
            a.action.into(),
            a.contact_id.map(str::to_string).into(),
            a.detail.to_string().into(),
        ],
    )
}

pub async fn audit_log(
    db: &impl Db,
    workspace: &str,
    contact_id: Option<&str>,
    limit: u32,
) -> Result<Vec<Json>, Error> {
    let rows = db
        .query(&Statement::new(
            LIST_AUDIT,
            vec![
                workspace.into(),
                contact_id.map(str::to_string).into(),
                i64::from(limit).into(),
            ],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({
                "id": r.text("id"),
                "at": r.int("at").map(|t| Millis(t).rfc3339()),
                "actor": r.text("actor"),
                "action": r.text("action"),
                "contact_id": r.text("contact_id"),
                "detail": r.text("detail").and_then(|d| serde_json::from_str::<Json>(&d).ok()),
            })
        })
        .collect())
}

const EXPORT_EVENTS: &str =
    "SELECT id, name, site, visitor_id, session_id, properties, occurred_at \
    FROM events WHERE workspace = ?1 AND contact_id = ?2 ORDER BY occurred_at, id";
const EXPORT_POINTS: &str =
    "SELECT rule_id, event_id, model_version, dimension, delta, awarded_at \
    FROM points WHERE workspace = ?1 AND contact_id = ?2 ORDER BY awarded_at, rule_id";
const EXPORT_TRANSITIONS: &str = "SELECT to_status, from_status, cause, score, at \
    FROM lead_transitions WHERE workspace = ?1 AND contact_id = ?2 ORDER BY at";
const EXPORT_MERGES: &str = "SELECT from_contact, into_contact, cause, merged_at FROM merges \
    WHERE workspace = ?1 AND (from_contact = ?2 OR into_contact = ?2) ORDER BY merged_at";

fn rows_json(rows: &[Row], time_cols: &[&str]) -> Vec<Json> {
    rows.iter()
        .map(|r| {
            let mut o = r.clone();
            for c in time_cols {
                if let Some(t) = r.int(c) {
                    o.insert((*c).into(), Millis(t).rfc3339().into());
                }
            }
            if let Some(p) = r.text("properties") {
                o.insert(
                    "properties".into(),
                    serde_json::from_str(&p).unwrap_or(Json::Null),
                );
            }
            Json::Object(o)
        })
        .collect()
}

/// Everything Kindling holds about a contact, personal data decrypted: the answer to a
/// subject-access request. None when the contact does not exist.
pub async fn export(
    db: &impl Db,
    workspace: &str,
    contact_id: &str,
    keys: Option<&PiiKeys>,
) -> Result<Option<Json>, Error> {
    let Some(mut contact) = super::contacts::get(db, workspace, contact_id).await? else {
        return Ok(None);
    };
    contact.reveal(keys, true);
    let p = || vec![workspace.into(), contact_id.into()];
    let events = db.query(&Statement::new(EXPORT_EVENTS, p())).await?;
    let points = db.query(&Statement::new(EXPORT_POINTS, p())).await?;
    let transitions = db.query(&Statement::new(EXPORT_TRANSITIONS, p())).await?;
    let merges = db.query(&Statement::new(EXPORT_MERGES, p())).await?;
    let consents = super::consent::records(db, workspace, contact_id).await?;
    Ok(Some(json!({
        "contact": contact,
        "events": rows_json(&events, &["occurred_at"]),
        "points": rows_json(&points, &["awarded_at"]),
        "lead_transitions": rows_json(&transitions, &["at"]),
        "merges": rows_json(&merges, &["merged_at"]),
        "consents": consents,
    })))
}

// Erasure: personal data destroyed, the identifiers that lead to the person removed, events
// kept only as (name, time) for counts, consent withdrawn on every channel so nothing is sent.
// Contacts merged into this one held the same person's anonymous history: they are erased too.
const ERASE_CONTACTS: &str = "UPDATE contacts SET email_cipher = NULL, email_index = NULL, \
    phone_cipher = NULL, phone_index = NULL, name_cipher = NULL, attributes = '{}', \
    first_touch = NULL, last_touch = NULL, erased_at = ?3, updated_at = ?3 \
    WHERE workspace = ?1 AND (id = ?2 OR merged_into = ?2)";
const ERASE_IDENTITIES: &str = "DELETE FROM identities WHERE workspace = ?1 AND contact_id = ?2";
// Tags are derived from the destroyed attributes and from behaviour: none stays.
const ERASE_TAGS: &str = "DELETE FROM tags WHERE workspace = ?1 AND contact_id = ?2";
const ERASE_EVENTS: &str = "UPDATE events SET properties = '{}', visitor_id = NULL, session_id = NULL \
    WHERE workspace = ?1 AND contact_id IN (SELECT id FROM contacts WHERE workspace = ?1 AND (id = ?2 OR merged_into = ?2))";
const ERASE_CONSENT_PROVENANCE: &str =
    "UPDATE consents SET ip_hash = NULL, user_agent = NULL WHERE workspace = ?1 AND contact_id = ?2";
const WITHDRAW_ON_ERASURE: &str = "INSERT OR IGNORE INTO consents \
    (workspace, id, contact_id, channel, purpose, granted, source, recorded_at) \
    VALUES (?1, 'erasure:' || ?2 || ':' || ?4, ?2, ?4, 'marketing', 0, 'erasure', ?3)";

/// Erases a contact in one batch, with its audit entry. Returns false when there is no such
/// contact. Erasing twice changes nothing more.
pub async fn erase(
    db: &impl Db,
    workspace: &str,
    contact_id: &str,
    audit: Audit<'_>,
    now: Millis,
) -> Result<bool, Error> {
    if super::contacts::get(db, workspace, contact_id)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let p = || vec![workspace.into(), contact_id.into(), now.into()];
    let mut stmts = vec![
        Statement::new(ERASE_EVENTS, vec![workspace.into(), contact_id.into()]),
        Statement::new(ERASE_CONTACTS, p()),
        Statement::new(ERASE_IDENTITIES, vec![workspace.into(), contact_id.into()]),
        Statement::new(ERASE_TAGS, vec![workspace.into(), contact_id.into()]),
        Statement::new(
            ERASE_CONSENT_PROVENANCE,
            vec![workspace.into(), contact_id.into()],
        ),
    ];
    for c in Channel::ALL {
        let mut params = p();
        params.push(c.as_str().into());
        stmts.push(Statement::new(WITHDRAW_ON_ERASURE, params));
    }
    stmts.push(audit_statement(audit));
    db.batch(&stmts).await?;
    Ok(true)
}
