//! D1 as the core's [`Db`]: the same SQL the native SQLite tests run.

use kindling::store::{Db, Row, Statement, Value};
use kindling::Error;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

pub struct D1(pub D1Database);

fn store_err(e: worker::Error) -> Error {
    Error::Store(e.to_string())
}

fn to_js(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        // Safe: the core keeps integers below 2^53.
        Value::Integer(n) => JsValue::from_f64(*n as f64),
        Value::Real(f) => JsValue::from_f64(*f),
        Value::Text(s) => JsValue::from_str(s),
    }
}

impl D1 {
    fn prepare(&self, stmt: &Statement) -> worker::Result<D1PreparedStatement> {
        let params: Vec<JsValue> = stmt.params.iter().map(to_js).collect();
        self.0.prepare(stmt.sql.as_ref()).bind(&params)
    }
}

/// Tries before a busy database is reported as an error.
const BUSY_TRIES: u32 = 6;

/// Whether D1 refused because another writer held the database. On the local runtime every
/// function is its own process over one SQLite file, so a cron tick and a queue consumer can
/// collide; the refused statement or batch did not run (a batch is one transaction), so it is
/// safe to run again.
fn busy(e: &worker::Error) -> bool {
    let text = e.to_string();
    text.contains("SQLITE_BUSY") || text.contains("database is locked")
}

/// Runs `op` again after a short, growing pause while the database is busy.
async fn patiently<T, F, Fut>(mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = worker::Result<T>>,
{
    let mut pause = 20;
    for _ in 1..BUSY_TRIES {
        match op().await {
            Err(e) if busy(&e) => {
                worker::Delay::from(std::time::Duration::from_millis(pause)).await;
                pause *= 2;
            }
            other => return other.map_err(store_err),
        }
    }
    op().await.map_err(store_err)
}

impl Db for D1 {
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, Error> {
        let result = patiently(|| async { self.prepare(stmt)?.all().await }).await?;
        result.results::<Row>().map_err(store_err)
    }

    async fn execute(&self, stmt: &Statement) -> Result<u64, Error> {
        let result = patiently(|| async { self.prepare(stmt)?.run().await }).await?;
        let changes = result
            .meta()
            .map_err(store_err)?
            .and_then(|m| m.changes)
            .unwrap_or(0);
        Ok(changes as u64)
    }

    async fn batch(&self, stmts: &[Statement]) -> Result<(), Error> {
        if stmts.is_empty() {
            return Ok(());
        }
        patiently(|| async {
            let prepared = stmts
                .iter()
                .map(|s| self.prepare(s))
                .collect::<worker::Result<Vec<_>>>()?;
            self.0.batch(prepared).await
        })
        .await?;
        Ok(())
    }
}
