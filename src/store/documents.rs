//! Versioned configuration documents (forms, templates, journeys): the current version per id in one
//! table, every version in another. The api validates a document, saves it here as the next
//! version and publishes it to KV where the functions that use it read it.

use super::{Db, RowExt, Statement};
use crate::error::Error;
use crate::time::Millis;

/// The SQL of one kind of document.
pub struct Tables {
    next_version: &'static str,
    save_version: &'static str,
    save_current: &'static str,
    list: &'static str,
    get: &'static str,
    get_version: &'static str,
}

macro_rules! tables {
    ($current:literal, $versions:literal) => {
        Tables {
            next_version: concat!(
                "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM ",
                $versions,
                " WHERE workspace = ?1 AND id = ?2"
            ),
            save_version: concat!(
                "INSERT INTO ",
                $versions,
                " (workspace, id, version, definition, created_at) VALUES (?1, ?2, ?3, ?4, ?5)"
            ),
            save_current: concat!(
                "INSERT INTO ",
                $current,
                " (workspace, id, version, definition, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (workspace, id) DO UPDATE SET version = excluded.version, \
                 definition = excluded.definition, updated_at = excluded.updated_at \
                 WHERE excluded.version > version"
            ),
            list: concat!(
                "SELECT definition FROM ",
                $current,
                " WHERE workspace = ?1 ORDER BY id"
            ),
            get: concat!(
                "SELECT definition FROM ",
                $current,
                " WHERE workspace = ?1 AND id = ?2"
            ),
            get_version: concat!(
                "SELECT definition FROM ",
                $versions,
                " WHERE workspace = ?1 AND id = ?2 AND version = ?3"
            ),
        }
    };
}

pub const FORMS: Tables = tables!("forms", "form_versions");
pub const TEMPLATES: Tables = tables!("templates", "template_versions");
pub const JOURNEYS: Tables = tables!("journeys", "journey_versions");

/// Stores a validated document as the next version of `id`: `render` gets the version and
/// returns the text to store. Returns the version. Two saves racing for one version: the
/// primary key refuses the second, which is answered with an error.
pub async fn save(
    db: &impl Db,
    t: &Tables,
    workspace: &str,
    id: &str,
    now: Millis,
    render: impl FnOnce(i64) -> Result<String, Error>,
) -> Result<i64, Error> {
    let rows = db
        .query(&Statement::new(
            t.next_version,
            vec![workspace.into(), id.into()],
        ))
        .await?;
    let version = rows.first().and_then(|r| r.int("v")).unwrap_or(1);
    let text = render(version)?;
    let params = vec![
        workspace.into(),
        id.into(),
        version.into(),
        text.into(),
        now.into(),
    ];
    db.batch(&[
        Statement::new(t.save_version, params.clone()),
        Statement::new(t.save_current, params),
    ])
    .await?;
    Ok(version)
}

pub async fn list(db: &impl Db, t: &Tables, workspace: &str) -> Result<Vec<String>, Error> {
    let rows = db
        .query(&Statement::new(t.list, vec![workspace.into()]))
        .await?;
    Ok(rows.iter().filter_map(|r| r.text("definition")).collect())
}

pub async fn get(
    db: &impl Db,
    t: &Tables,
    workspace: &str,
    id: &str,
) -> Result<Option<String>, Error> {
    let rows = db
        .query(&Statement::new(t.get, vec![workspace.into(), id.into()]))
        .await?;
    Ok(rows.first().and_then(|r| r.text("definition")))
}

/// One exact version (messages keep the version they were enqueued with).
pub async fn get_version(
    db: &impl Db,
    t: &Tables,
    workspace: &str,
    id: &str,
    version: i64,
) -> Result<Option<String>, Error> {
    let rows = db
        .query(&Statement::new(
            t.get_version,
            vec![workspace.into(), id.into(), version.into()],
        ))
        .await?;
    Ok(rows.first().and_then(|r| r.text("definition")))
}
