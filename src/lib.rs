//! Kindling's domain core. Everything here is platform-free: no Workers types, no clocks, no
//! network. The functions under `functions/` parse requests, call into this crate, perform the
//! I/O it asks for and answer. Time always arrives as a parameter (`Millis`).

pub mod auth;
pub mod beacon;
pub mod bot;
pub mod error;
pub mod event;
pub mod identity;
pub mod lifecycle;
pub mod link;
pub mod pii;
pub mod pixel;
pub mod scoring;
pub mod segment;
pub mod site;
pub mod store;
pub mod time;

pub use error::{Error, Result};
pub use time::Millis;
