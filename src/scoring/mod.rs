//! Lead scoring: the model as data (rules, thresholds, decay, "sales ready"), its validation,
//! and the pure decision of which rules an event or a contact's attributes earn.
//! The SQL that records points lives in `store::scoring`.

pub mod model;
pub mod rules;

pub use model::{validate, Condition, Dimension, Model, Op, Repeat, Rule};
pub use rules::{attribute_awards, event_awards, Award};
