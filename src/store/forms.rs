//! Form definitions in D1 (versioned documents). The api publishes each saved version to KV,
//! where the forms function reads it.

use super::documents::{self, FORMS};
use super::Db;
use crate::error::Error;
use crate::form::FormDefinition;
use crate::time::Millis;

/// Validates and stores `form` as its next version; returns it with the version set.
pub async fn save(
    db: &impl Db,
    workspace: &str,
    mut form: FormDefinition,
    now: Millis,
) -> Result<FormDefinition, Error> {
    form.validate()?;
    let id = form.id.clone();
    let version = documents::save(db, &FORMS, workspace, &id, now, |v| {
        form.version = u32::try_from(v).map_err(|_| Error::Store("form version".into()))?;
        serde_json::to_string(&form).map_err(|e| Error::Store(e.to_string()))
    })
    .await?;
    form.version = u32::try_from(version).map_err(|_| Error::Store("form version".into()))?;
    Ok(form)
}

pub async fn list(db: &impl Db, workspace: &str) -> Result<Vec<FormDefinition>, Error> {
    let texts = documents::list(db, &FORMS, workspace).await?;
    Ok(texts
        .iter()
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect())
}

pub async fn get(db: &impl Db, workspace: &str, id: &str) -> Result<Option<FormDefinition>, Error> {
    let text = documents::get(db, &FORMS, workspace, id).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}
