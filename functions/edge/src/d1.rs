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
    fn prepare(&self, stmt: &Statement) -> Result<D1PreparedStatement, Error> {
        let params: Vec<JsValue> = stmt.params.iter().map(to_js).collect();
        self.0
            .prepare(stmt.sql.as_ref())
            .bind(&params)
            .map_err(store_err)
    }
}

impl Db for D1 {
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, Error> {
        let result = self.prepare(stmt)?.all().await.map_err(store_err)?;
        result.results::<Row>().map_err(store_err)
    }

    async fn execute(&self, stmt: &Statement) -> Result<u64, Error> {
        let result = self.prepare(stmt)?.run().await.map_err(store_err)?;
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
        let prepared = stmts
            .iter()
            .map(|s| self.prepare(s))
            .collect::<Result<Vec<_>, _>>()?;
        self.0.batch(prepared).await.map_err(store_err)?;
        Ok(())
    }
}
