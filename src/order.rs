//! Orders posted through the api (`POST /v1/orders`): validated here and turned into the
//! `order_completed` event every other part of Kindling consumes (stages, tags, RFM, scoring,
//! journeys). The engine records the order itself from that event, once per order id.

use crate::error::Error;
use crate::event::{Event, Subject};
use crate::time::Millis;
use serde_json::{Map, Value};

/// Who bought: by contact id, or by an identifier the api resolves through the blind index.
#[derive(Debug, Clone, PartialEq)]
pub enum Buyer {
    Contact(String),
    Email(String),
    Phone(String),
    UserId(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: String,
    pub buyer: Buyer,
    pub amount: f64,
    pub currency: String,
    pub ordered_at: Millis,
}

/// Orders may be reported late (a CRM catching up) but not from the future.
const MAX_AGE_MS: i64 = 365 * Millis::DAY;
const SKEW_MS: i64 = 5 * Millis::MINUTE;

/// Validates an order document; errors name the field.
pub fn parse(doc: &Value, now: Millis) -> Result<Order, Error> {
    let obj = doc
        .as_object()
        .ok_or_else(|| Error::invalid("body", "an order is a JSON object"))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::trim);
    let id = text("order_id")
        .filter(|s| (1..=128).contains(&s.len()) && !s.chars().any(char::is_control))
        .ok_or_else(|| Error::invalid("order_id", "order_id is 1-128 characters"))?;
    let buyer = if let Some(c) = text("contact_id") {
        if !crate::identity::is_valid_contact_id(c) {
            return Err(Error::invalid(
                "contact_id",
                "contact ids look like c_ followed by 24 hex digits",
            ));
        }
        Buyer::Contact(c.into())
    } else if let Some(e) = text("email") {
        Buyer::Email(e.into())
    } else if let Some(p) = text("phone") {
        Buyer::Phone(p.into())
    } else if let Some(u) = text("user_id") {
        Buyer::UserId(u.into())
    } else {
        return Err(Error::invalid(
            "contact_id",
            "name the buyer: contact_id, email, phone or user_id",
        ));
    };
    let amount = obj
        .get("amount")
        .and_then(Value::as_f64)
        .filter(|a| a.is_finite() && *a >= 0.0 && *a < 1e12)
        .ok_or_else(|| Error::invalid("amount", "amount is a number from 0"))?;
    let currency = match text("currency") {
        None => "CNY".to_string(),
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        Some(_) => {
            return Err(Error::invalid(
                "currency",
                "currency is a three-letter code such as CNY",
            ))
        }
    };
    let ordered_at = match obj.get("ordered_at") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => Millis(n.as_i64().ok_or_else(bad_time)?),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Millis(t.timestamp_millis()))
            .map_err(|_| bad_time())?,
        Some(_) => return Err(bad_time()),
    };
    if ordered_at.0 > now.0 + SKEW_MS || ordered_at.0 < now.0 - MAX_AGE_MS {
        return Err(Error::invalid(
            "ordered_at",
            "ordered_at is within the last 365 days and not in the future",
        ));
    }
    Ok(Order {
        id: id.into(),
        buyer,
        amount,
        currency,
        ordered_at,
    })
}

fn bad_time() -> Error {
    Error::invalid(
        "ordered_at",
        "ordered_at is epoch milliseconds or an RFC 3339 time",
    )
}

/// The event for an order whose buyer resolved to `contact_id`. Its id derives from the order
/// id, so posting the same order twice records it once.
pub fn to_event(order: &Order, contact_id: &str, workspace: &str, now: Millis) -> Event {
    let mut properties = Map::new();
    properties.insert("order_id".into(), order.id.clone().into());
    properties.insert(
        "amount".into(),
        serde_json::Number::from_f64(order.amount).map_or(Value::Null, Value::Number),
    );
    properties.insert("currency".into(), order.currency.clone().into());
    let digest = crate::hex(&<sha2::Sha256 as sha2::Digest>::digest(order.id.as_bytes())[..12]);
    Event {
        id: format!("order_{digest}"),
        workspace: workspace.into(),
        site: None,
        subject: Subject::Contact(contact_id.into()),
        session_id: None,
        name: "order_completed".into(),
        properties,
        claims: Default::default(),
        consents: Vec::new(),
        occurred_at: order.ordered_at,
        received_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = Millis(1_800_000_000_000);

    #[test]
    fn a_valid_order_becomes_one_idempotent_event() {
        let o = parse(
            &json!({"order_id": "SO-1", "email": "a@b.cn", "amount": 99.5, "currency": "usd"}),
            NOW,
        )
        .unwrap();
        assert_eq!(o.buyer, Buyer::Email("a@b.cn".into()));
        assert_eq!(o.currency, "USD");
        assert_eq!(o.ordered_at, NOW);
        let e = to_event(&o, "c_0123456789abcdef01234567", "default", NOW);
        assert_eq!(
            e.id,
            to_event(&o, "c_0123456789abcdef01234567", "default", NOW).id
        );
        assert!(crate::event::is_valid_event_id(&e.id));
        assert_eq!(e.properties["amount"], 99.5);
    }

    #[test]
    fn bad_orders_name_the_field() {
        let field = |doc| {
            parse(&doc, NOW)
                .unwrap_err()
                .body()
                .field
                .unwrap_or_default()
        };
        assert_eq!(field(json!({"email": "a@b.cn", "amount": 1})), "order_id");
        assert_eq!(field(json!({"order_id": "x", "amount": 1})), "contact_id");
        assert_eq!(
            field(json!({"order_id": "x", "email": "a@b.cn", "amount": -1})),
            "amount"
        );
        assert_eq!(
            field(json!({"order_id": "x", "email": "a@b.cn", "amount": 1, "currency": "元"})),
            "currency"
        );
        assert_eq!(
            field(
                json!({"order_id": "x", "email": "a@b.cn", "amount": 1, "ordered_at": NOW.0 + Millis::DAY})
            ),
            "ordered_at"
        );
        assert_eq!(
            field(json!({"order_id": "x", "contact_id": "c_bad", "amount": 1})),
            "contact_id"
        );
    }
}
