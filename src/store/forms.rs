//! Form definitions in D1: the current version per form and every version before it. The api
//! publishes each saved version to KV, where the forms function reads it.

use super::{Db, RowExt, Statement};
use crate::error::Error;
use crate::form::FormDefinition;
use crate::time::Millis;

const NEXT_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM form_versions WHERE workspace = ?1 AND id = ?2";
const SAVE_VERSION: &str =
    "INSERT INTO form_versions (workspace, id, version, definition, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5)";
const SAVE_CURRENT: &str = "INSERT INTO forms (workspace, id, version, definition, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (workspace, id) DO UPDATE SET \
    version = excluded.version, definition = excluded.definition, updated_at = excluded.updated_at \
    WHERE excluded.version > forms.version";
const LIST: &str = "SELECT definition FROM forms WHERE workspace = ?1 ORDER BY id";
const GET: &str = "SELECT definition FROM forms WHERE workspace = ?1 AND id = ?2";

/// Validates and stores `form` as its next version; returns it with the version set.
pub async fn save(
    db: &impl Db,
    workspace: &str,
    mut form: FormDefinition,
    now: Millis,
) -> Result<FormDefinition, Error> {
    form.validate()?;
    let rows = db
        .query(&Statement::new(
            NEXT_VERSION,
            vec![workspace.into(), form.id.as_str().into()],
        ))
        .await?;
    let version = rows.first().and_then(|r| r.int("v")).unwrap_or(1);
    form.version = u32::try_from(version).map_err(|_| Error::Store("form version".into()))?;
    let text = serde_json::to_string(&form).map_err(|e| Error::Store(e.to_string()))?;
    let params = vec![
        workspace.into(),
        form.id.as_str().into(),
        version.into(),
        text.into(),
        now.into(),
    ];
    // Two saves racing for one version: the primary key refuses the second, which is told so.
    db.batch(&[
        Statement::new(SAVE_VERSION, params.clone()),
        Statement::new(SAVE_CURRENT, params),
    ])
    .await?;
    Ok(form)
}

fn parse(row: &super::Row) -> Option<FormDefinition> {
    row.text("definition")
        .and_then(|d| serde_json::from_str(&d).ok())
}

pub async fn list(db: &impl Db, workspace: &str) -> Result<Vec<FormDefinition>, Error> {
    let rows = db
        .query(&Statement::new(LIST, vec![workspace.into()]))
        .await?;
    Ok(rows.iter().filter_map(parse).collect())
}

pub async fn get(db: &impl Db, workspace: &str, id: &str) -> Result<Option<FormDefinition>, Error> {
    let rows = db
        .query(&Statement::new(GET, vec![workspace.into(), id.into()]))
        .await?;
    Ok(rows.first().and_then(parse))
}
