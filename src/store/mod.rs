//! The SQL store. The core speaks to storage through [`Db`], a four-verb trait that D1 (in the
//! functions) and native SQLite (in tests and benchmarks) both implement, so the very same SQL
//! and the very same `schema/` migrations run in both places.

pub mod cleaning;
pub mod consent;
pub mod contacts;
pub mod documents;
pub mod forms;
pub mod ingest;
pub mod journeys;
pub mod lifecycle;
pub mod messages;
pub mod ops;
pub mod privacy;
pub mod scoring;
pub mod sites;
#[cfg(all(feature = "sqlite", not(target_arch = "wasm32")))]
pub mod sqlite;
pub mod tags;

use crate::error::Error;
use serde_json::{Map, Value as Json};

/// A bound parameter. Integers stay below 2^53 (D1 carries them as JS numbers).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(Text),
}

/// The text of a bound parameter, read as a `str`. An ingest batch binds the same few strings
/// (workspace, subject, event id, rule ids, day) into hundreds of statements: a shared text is
/// one allocation however many statements bind it, and SQL constants bind without allocating.
/// Shared texts are counted with `Rc`, not `Arc`: statements never leave the thread that built
/// them (a Worker has one; see [`Db`]), and a non-atomic count is cheaper to clone and drop.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Owned(String),
    Shared(std::rc::Rc<str>),
}

impl Text {
    /// A constant: binding it allocates nothing.
    pub const fn from_static(s: &'static str) -> Text {
        Text(Repr::Static(s))
    }

    /// One allocation; every clone after it shares it.
    pub fn shared(s: &str) -> Text {
        Text(Repr::Shared(s.into()))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Owned(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

// Compared and shown as the text it holds, whichever way it is stored.
impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Repr::Owned(s))
    }
}

impl Value {
    /// A constant text parameter (no allocation).
    pub const fn text_static(s: &'static str) -> Value {
        Value::Text(Text::from_static(s))
    }

    /// A text parameter many statements will bind: cloning it does not copy the text.
    pub fn text_shared(s: &str) -> Value {
        Value::Text(Text::shared(s))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(Text(Repr::Owned(s.to_string())))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(Text(Repr::Owned(s)))
    }
}
impl From<Text> for Value {
    fn from(t: Text) -> Self {
        Value::Text(t)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Integer(n)
    }
}
impl From<crate::Millis> for Value {
    fn from(t: crate::Millis) -> Self {
        Value::Integer(t.0)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One SQL statement with its parameters (`?1`, `?2`, … in the text). Almost all SQL is a
/// constant; a few statements are composed from configuration (the "sales ready" rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: std::borrow::Cow<'static, str>,
    pub params: Vec<Value>,
}

impl Statement {
    pub fn new(sql: impl Into<std::borrow::Cow<'static, str>>, params: Vec<Value>) -> Self {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

/// A result row: column name to JSON value, the shape D1 hands back.
pub type Row = Map<String, Json>;

/// What the core needs from a database. Futures are not `Send`: D1's are not, and nothing here
/// needs to cross threads.
#[allow(async_fn_in_trait)]
pub trait Db {
    /// Runs a read and returns every row.
    async fn query(&self, stmt: &Statement) -> Result<Vec<Row>, Error>;
    /// Runs a write and returns the number of rows it changed.
    async fn execute(&self, stmt: &Statement) -> Result<u64, Error>;
    /// Runs writes in order, in one round trip, all or nothing.
    async fn batch(&self, stmts: &[Statement]) -> Result<(), Error>;
}

/// A page of contacts due for a cron pass: `sql` takes ?1 workspace, ?2 now, ?3 the page size
/// and, from ?4 on, the pass's time windows.
pub(crate) async fn due_page(
    db: &impl Db,
    sql: &'static str,
    workspace: &str,
    now: crate::Millis,
    limit: u32,
    windows: &[i64],
) -> Result<Vec<Row>, Error> {
    let mut params = vec![workspace.into(), now.into(), i64::from(limit).into()];
    params.extend(windows.iter().map(|w| Value::Integer(*w)));
    db.query(&Statement::new(sql, params)).await
}

/// A list of ids as one JSON text parameter, for `IN (SELECT value FROM json_each(?n))`: a whole
/// queue batch's rows in one statement, whatever their number.
pub(crate) fn id_list<S: AsRef<str>>(ids: &[S]) -> Value {
    let list: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    Value::from(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
}

/// Typed access to row columns, tolerant of D1 handing integers back as floats.
pub trait RowExt {
    fn text(&self, col: &str) -> Option<String>;
    fn int(&self, col: &str) -> Option<i64>;
}

impl RowExt for Row {
    fn text(&self, col: &str) -> Option<String> {
        self.get(col).and_then(Json::as_str).map(str::to_string)
    }

    fn int(&self, col: &str) -> Option<i64> {
        let v = self.get(col)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }
}

#[cfg(all(test, feature = "sqlite", not(target_arch = "wasm32")))]
mod journey_tests;
#[cfg(all(test, feature = "sqlite", not(target_arch = "wasm32")))]
mod message_tests;
#[cfg(all(test, feature = "sqlite", not(target_arch = "wasm32")))]
mod privacy_tests;
#[cfg(all(test, feature = "sqlite", not(target_arch = "wasm32")))]
mod tag_tests;
#[cfg(all(test, feature = "sqlite", not(target_arch = "wasm32")))]
mod tests;
