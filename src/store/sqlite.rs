//! The native SQLite adapter of [`Db`], for tests and benchmarks. It applies the same
//! `schema/` migrations that `wrangler d1 migrations apply` applies to D1 and runs the same SQL.

use super::{Db, Row, Statement, Value};
use crate::error::Error;
use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection};
use serde_json::Value as Json;
use std::cell::RefCell;
use std::path::Path;

pub struct Sqlite {
    conn: RefCell<Connection>,
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

impl Sqlite {
    /// An in-memory database with every migration in `schema_dir` applied in file-name order.
    pub fn open_in_memory(schema_dir: &Path) -> Result<Sqlite, Error> {
        let conn = Connection::open_in_memory().map_err(store_err)?;
        let db = Sqlite {
            conn: RefCell::new(conn),
        };
        db.migrate(schema_dir)?;
        Ok(db)
    }

    /// The project's own `schema/` folder.
    pub fn open_with_project_schema() -> Result<Sqlite, Error> {
        Self::open_in_memory(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schema"))
    }

    fn migrate(&self, dir: &Path) -> Result<(), Error> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(store_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        let conn = self.conn.borrow();
        for f in files {
            let sql = std::fs::read_to_string(&f).map_err(store_err)?;
            conn.execute_batch(&sql)
                .map_err(|e| Error::Store(format!("{}: {e}", f.display())))?;
        }
        Ok(())
    }

    /// Direct access for tests that need to look under the hood.
    pub fn connection(&self) -> std::cell::Ref<'_, Connection> {
        self.conn.borrow()
    }
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Integer(n) => S::Integer(*n),
        Value::Real(f) => S::Real(*f),
        Value::Text(s) => S::Text(s.as_str().to_owned()),
    }
}

fn to_json(v: ValueRef<'_>) -> Json {
    match v {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(n) => Json::from(n),
        ValueRef::Real(f) => Json::from(f),
        ValueRef::Text(t) => Json::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Json::from(b.to_vec()),
    }
}

fn run(conn: &Connection, stmt: &Statement) -> Result<u64, Error> {
    let n = conn
        .prepare_cached(&stmt.sql)
        .and_then(|mut s| s.execute(params_from_iter(stmt.params.iter().map(to_sql))))
        .map_err(store_err)?;
    Ok(n as u64)
}

impl Db for Sqlite {
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, Error> {
        let conn = self.conn.borrow();
        let mut s = conn.prepare_cached(&stmt.sql).map_err(store_err)?;
        let names: Vec<String> = s.column_names().iter().map(|n| n.to_string()).collect();
        let mut rows = s
            .query(params_from_iter(stmt.params.iter().map(to_sql)))
            .map_err(store_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(store_err)? {
            let mut row = Row::new();
            for (i, n) in names.iter().enumerate() {
                row.insert(n.clone(), to_json(r.get_ref(i).map_err(store_err)?));
            }
            out.push(row);
        }
        Ok(out)
    }

    async fn execute(&self, stmt: &Statement) -> Result<u64, Error> {
        run(&self.conn.borrow(), stmt)
    }

    async fn batch(&self, stmts: &[Statement]) -> Result<(), Error> {
        let mut conn = self.conn.borrow_mut();
        let tx = conn.transaction().map_err(store_err)?;
        for s in stmts {
            run(&tx, s)?;
        }
        tx.commit().map_err(store_err)
    }
}

/// Drives a future of the native adapter to completion. Its futures never wait on anything, so
/// a single poll with a no-op waker is enough; tests and benchmarks need no async runtime.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("native store futures complete on first poll"),
    }
}
