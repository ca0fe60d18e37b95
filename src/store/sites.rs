//! Registered sites in D1, the source of truth behind the KV copy ingress reads.

use super::{Db, RowExt, Statement};
use crate::error::Error;
use crate::site::{is_valid_site_key, Site};
use crate::time::Millis;

const UPSERT: &str = "INSERT INTO sites (workspace, key, name, allowed_origins, updated_at, honor_dnt) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (workspace, key) DO UPDATE SET \
    name = excluded.name, allowed_origins = excluded.allowed_origins, updated_at = excluded.updated_at, \
    honor_dnt = excluded.honor_dnt";
const LIST: &str =
    "SELECT key, name, allowed_origins, honor_dnt FROM sites WHERE workspace = ?1 ORDER BY key";

/// Checks a site definition before it is stored; errors name the field.
pub fn validate(site: &Site) -> Result<(), Error> {
    if !is_valid_site_key(&site.key) {
        return Err(Error::invalid(
            "key",
            "site key must be 1-64 lowercase letters, digits or dashes",
        ));
    }
    if site.name.trim().is_empty() || site.name.chars().count() > 200 {
        return Err(Error::invalid("name", "name must be 1-200 characters"));
    }
    validate_origins(&site.allowed_origins)
}

/// Origins as sites and forms list them: `scheme://host[:port]`, nothing more.
pub fn validate_origins(origins: &[String]) -> Result<(), Error> {
    for (i, o) in origins.iter().enumerate() {
        let ok = (o.starts_with("https://") || o.starts_with("http://"))
            && !o[o.find("//").map_or(0, |p| p + 2)..].contains('/')
            && o.len() <= 255;
        if !ok {
            return Err(Error::invalid(
                format!("allowed_origins[{i}]"),
                "an origin is scheme://host[:port] with no path",
            ));
        }
    }
    Ok(())
}

pub async fn upsert(db: &impl Db, workspace: &str, site: &Site, now: Millis) -> Result<(), Error> {
    validate(site)?;
    let origins =
        serde_json::to_string(&site.allowed_origins).map_err(|e| Error::Store(e.to_string()))?;
    db.execute(&Statement::new(
        UPSERT,
        vec![
            workspace.into(),
            site.key.as_str().into(),
            site.name.as_str().into(),
            origins.into(),
            now.into(),
            i64::from(site.honor_dnt).into(),
        ],
    ))
    .await?;
    Ok(())
}

pub async fn list(db: &impl Db, workspace: &str) -> Result<Vec<Site>, Error> {
    let rows = db
        .query(&Statement::new(LIST, vec![workspace.into()]))
        .await?;
    Ok(rows
        .iter()
        .map(|r| Site {
            key: r.text("key").unwrap_or_default(),
            name: r.text("name").unwrap_or_default(),
            allowed_origins: r
                .text("allowed_origins")
                .and_then(|o| serde_json::from_str(&o).ok())
                .unwrap_or_default(),
            honor_dnt: r.int("honor_dnt") != Some(0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(key: &str, origins: &[&str]) -> Site {
        Site {
            key: key.into(),
            name: "Demo".into(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            honor_dnt: true,
        }
    }

    #[test]
    fn origins_must_not_carry_paths() {
        assert!(validate(&site("demo", &["https://shop.example"])).is_ok());
        let e = validate(&site("demo", &["https://shop.example/x"])).unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("allowed_origins[0]"));
        assert!(validate(&site("demo", &["ftp://x"])).is_err());
    }

    #[test]
    fn bad_keys_are_named() {
        let e = validate(&site("Bad Key", &[])).unwrap_err();
        assert_eq!(e.body().field.as_deref(), Some("key"));
    }
}
