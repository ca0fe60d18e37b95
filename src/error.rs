//! The core's one error type. Each variant knows which HTTP answer it becomes, so every
//! function turns domain failures into the same JSON error shape.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Input that breaks a rule; `field` names the offending part of the request.
    Invalid { field: String, message: String },
    /// The thing asked for does not exist.
    NotFound(String),
    /// The caller is not authenticated.
    Unauthorized(String),
    /// The caller is authenticated but may not do this.
    Forbidden(String),
    /// A required secret or setting is missing on this deployment.
    NotConfigured(String),
    /// The storage layer failed; the message is for logs, never for clients.
    Store(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid { .. } => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::NotConfigured(_) => 503,
            Error::Store(_) => 500,
        }
    }

    /// The body a client sees. Store errors are reduced to a generic message: internals stay in
    /// the log line the shell writes next to the error id.
    pub fn body(&self) -> ErrorBody {
        match self {
            Error::Invalid { field, message } => ErrorBody {
                error: "invalid_request".into(),
                message: message.clone(),
                field: Some(field.clone()),
            },
            Error::NotFound(what) => ErrorBody::new("not_found", what),
            Error::Unauthorized(why) => ErrorBody::new("unauthorized", why),
            Error::Forbidden(why) => ErrorBody::new("forbidden", why),
            Error::NotConfigured(what) => ErrorBody::new("not_configured", what),
            Error::Store(_) => ErrorBody::new("internal", "internal error"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { field, message } => write!(f, "invalid {field}: {message}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Unauthorized(m) => write!(f, "unauthorized: {m}"),
            Error::Forbidden(m) => write!(f, "forbidden: {m}"),
            Error::NotConfigured(m) => write!(f, "not configured: {m}"),
            Error::Store(m) => write!(f, "store: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// The JSON error every Kindling endpoint answers with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(error: &str, message: &str) -> Self {
        ErrorBody {
            error: error.into(),
            message: message.into(),
            field: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_do_not_leak_internals() {
        let e = Error::Store("no such table: contacts".into());
        assert_eq!(e.status(), 500);
        let body = serde_json::to_string(&e.body()).unwrap();
        assert!(!body.contains("contacts"), "{body}");
    }

    #[test]
    fn invalid_input_names_the_field() {
        let e = Error::invalid("vid", "must be 8-64 characters");
        assert_eq!(e.status(), 400);
        assert_eq!(e.body().field.as_deref(), Some("vid"));
    }
}
