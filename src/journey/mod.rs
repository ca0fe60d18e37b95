//! Journeys: the state machine that moves each contact through nurture, life-cycle and campaign
//! flows. A journey is data ([`definition`]); an enrollment is one contact's place in one version
//! of it; [`run::advance`] moves an enrollment on from its facts and the time, and the store
//! applies what it says in one batch, keyed so that every step happens once.

pub mod clock;
pub mod definition;
pub mod run;

pub use definition::{parse, Entry, EventMatch, Journey, Node, ReEntry};

/// A row of `journey_triggers`: what the SQL that enrols, ends and wakes enrollments joins on.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub role: &'static str,
    pub event: String,
    pub filter: serde_json::Map<String, serde_json::Value>,
    pub re_entry: ReEntry,
    pub at_property: Option<String>,
    pub at_offset: i64,
}

/// The triggers of a journey: its event entry (scheduled journeys have none; the cron enrols
/// their audience), its goal and its exits.
pub fn triggers(j: &Journey) -> Vec<Trigger> {
    let t = |role, m: &EventMatch| Trigger {
        role,
        event: m.event.clone(),
        filter: m.filter.clone(),
        re_entry: j.re_entry,
        at_property: None,
        at_offset: 0,
    };
    let mut out = Vec::new();
    match &j.entry {
        Entry::Event(m) => out.push(t("entry", m)),
        Entry::Date {
            on,
            property,
            offset_ms,
        } => out.push(Trigger {
            at_property: Some(property.clone()),
            at_offset: *offset_ms,
            ..t("entry", on)
        }),
        Entry::Schedule(_) => {}
    }
    if let Some(g) = &j.goal {
        out.push(t("goal", g));
    }
    for e in &j.exit_on {
        // One row per (role, event): a second exit on the same event adds nothing.
        if !out.iter().any(|o| o.role == "exit" && o.event == e.event) {
            out.push(t("exit", e));
        }
    }
    out
}

#[cfg(test)]
mod tests;
