//! Store tests of the forms path end to end on real SQLite: submissions validated and sealed by
//! the core, written by the ingest batch, then consent, erasure, export, cleaning and tokens.

use super::sqlite::{block_on, Sqlite};
use super::*;
use crate::auth::Scope;
use crate::consent::{preference_event, Channel, PreferenceChange, Refusal};
use crate::event::{IngestMessage, DEFAULT_WORKSPACE as WS};
use crate::form::lang::Lang;
use crate::form::submit::{self, Outcome, Provenance};
use crate::form::FormDefinition;
use crate::pii::{PiiKeys, PiiKind, DEV_PII_KEY};
use crate::time::Millis;

const T0: i64 = 1_800_000_000_000;

fn keys() -> PiiKeys {
    PiiKeys::from_secret(DEV_PII_KEY, "k1", true).unwrap()
}

fn demo() -> FormDefinition {
    let mut f: FormDefinition =
        serde_json::from_str(include_str!("../../config/forms/demo-signup.json")).unwrap();
    f.version = 1;
    f
}

/// Validates and seals a submission as the forms function does, then ingests it.
fn submit(db: &Sqlite, id: &str, pairs: &[(&str, &str)], at: i64) {
    let fields = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let Outcome::Accepted(a) = submit::validate(&demo(), &fields, Lang::En, Millis(at)) else {
        panic!("submission {id} refused")
    };
    let mut n = 0u8;
    let event = submit::to_event(
        &demo(),
        a,
        &keys(),
        &mut || {
            n = n.wrapping_add(1);
            [n; 12]
        },
        Provenance {
            event_id: id,
            ip_hash: Some(keys().index(PiiKind::Ip, "203.0.113.7")),
            user_agent: Some("Mozilla/5.0"),
            now: Millis(at),
            workspace: WS,
        },
    )
    .unwrap();
    ingest(db, &[IngestMessage::Event(event)]);
}

fn ingest(db: &Sqlite, batch: &[IngestMessage]) {
    block_on(db.batch(&ingest::batch_statements(batch, None))).unwrap();
}

fn by_email(db: &Sqlite, email: &str) -> contacts::ContactView {
    let index = keys().index(PiiKind::Email, email);
    block_on(contacts::find_by_identity(db, WS, "email", &index))
        .unwrap()
        .expect("contact by email")
}

fn live_contacts_with_email(db: &Sqlite) -> i64 {
    let rows = block_on(db.query(&Statement::new(
        "SELECT count(*) AS n FROM contacts WHERE email_index IS NOT NULL AND merged_into IS NULL",
        vec![],
    )))
    .unwrap();
    rows[0].int("n").unwrap()
}

const WEI: [(&str, &str); 8] = [
    ("name", "张伟"),
    ("email", "zhang.wei@example.com"),
    ("phone", "13812345678"),
    ("company", "Acme"),
    ("industry", "manufacturing"),
    ("company_size", "500"),
    ("job_title", "市场总监"),
    ("consent_email", "on"),
];

#[test]
fn repeats_in_other_spellings_become_one_contact_with_every_consent() {
    let db = Sqlite::open_with_project_schema().unwrap();
    submit(&db, "f_1", &WEI, T0);
    let mut again = WEI.to_vec();
    again[1] = ("email", "  Zhang.Wei@EXAMPLE.com ");
    again[2] = ("phone", "+86 138-1234-5678");
    again.push(("consent_sms", "on"));
    submit(&db, "f_2", &again, T0 + 60_000);
    let mut phone_only = WEI.to_vec();
    phone_only[1] = ("email", "wei.personal@example.cn");
    phone_only[2] = ("phone", "１３８１２３４５６７８");
    submit(&db, "f_3", &phone_only, T0 + 120_000);

    let c = by_email(&db, "zhang.wei@example.com");
    assert_eq!(live_contacts_with_email(&db), 1, "one person, one contact");
    let recs = block_on(consent::records(&db, WS, &c.id)).unwrap();
    assert_eq!(recs.len(), 4, "{recs:?}");
    // Besides the submissions, each record that became known announced it once (`lead.known`).
    let names: Vec<_> = block_on(contacts::timeline(&db, WS, &c.id, Millis::MAX, 10))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n != "lead.known")
        .collect();
    assert_eq!(names, ["form_submitted"; 3]);
    assert_eq!(c.attributes["company_size"], "500");
    assert_eq!(c.lead_status, "known");
    // The third submission's other address now finds the same person too.
    assert_eq!(by_email(&db, "wei.personal@example.cn").id, c.id);
    let mut shown = c.clone();
    shown.reveal(Some(&keys()), false);
    assert_eq!(shown.email.as_deref(), Some("z***@example.com"));
    assert_eq!(shown.phone.as_deref(), Some("138****5678"));
    assert_eq!(shown.name.as_deref(), Some("张*"));
    shown.reveal(Some(&keys()), true);
    assert_eq!(shown.phone.as_deref(), Some("+8613812345678"));
}

#[test]
fn consent_decides_marketing_per_channel_and_unsubscribes_hold_at_once() {
    let db = Sqlite::open_with_project_schema().unwrap();
    submit(&db, "f_1", &WEI, T0);
    let c = by_email(&db, "zhang.wei@example.com");
    let may = |ch, at| block_on(consent::may_market(&db, WS, &c.id, ch, Millis(at))).unwrap();
    assert_eq!(may(Channel::Email, T0 + 1), Ok(()));
    assert_eq!(may(Channel::Sms, T0 + 1), Err(Refusal::NoConsent));
    assert_eq!(may(Channel::Email, T0 - 1), Err(Refusal::NoConsent));

    let unsubscribe = preference_event(PreferenceChange {
        workspace: WS,
        contact_id: &c.id,
        event_id: "u_1",
        source: "unsubscribe",
        changes: vec![(Channel::Email, false)],
        ip_hash: None,
        user_agent: None,
        now: Millis(T0 + 10_000),
    });
    assert_eq!(unsubscribe.name, "unsubscribed");
    let batch = [IngestMessage::Event(unsubscribe)];
    ingest(&db, &batch);
    ingest(&db, &batch); // a repeated click records nothing more
    assert_eq!(may(Channel::Email, T0 + 10_000), Err(Refusal::Withdrawn));
    assert_eq!(
        may(Channel::Email, T0 + 5_000),
        Ok(()),
        "the past is unchanged"
    );
    assert_eq!(block_on(consent::records(&db, WS, &c.id)).unwrap().len(), 2);

    // A bounced address is no contact point, whatever the consent says.
    let regrant = preference_event(PreferenceChange {
        workspace: WS,
        contact_id: &c.id,
        event_id: "u_2",
        source: "preferences",
        changes: vec![(Channel::Email, true)],
        ip_hash: None,
        user_agent: None,
        now: Millis(T0 + 20_000),
    });
    ingest(&db, &[IngestMessage::Event(regrant)]);
    assert_eq!(may(Channel::Email, T0 + 20_000), Ok(()));
    block_on(db.execute(&Statement::new(
        "UPDATE contacts SET email_status = 'bounced' WHERE id = ?1",
        vec![c.id.as_str().into()],
    )))
    .unwrap();
    assert_eq!(
        may(Channel::Email, T0 + 20_000),
        Err(Refusal::ContactPointUnusable)
    );
}

#[test]
fn the_consent_ledger_cannot_be_rewritten_or_deleted() {
    let db = Sqlite::open_with_project_schema().unwrap();
    submit(&db, "f_1", &WEI, T0);
    for sql in [
        "UPDATE consents SET granted = 0",
        "UPDATE consents SET recorded_at = 1",
        "DELETE FROM consents",
    ] {
        let e = block_on(db.execute(&Statement::new(sql, vec![]))).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
}

#[test]
fn export_shows_everything_and_erasure_destroys_the_personal_data() {
    let db = Sqlite::open_with_project_schema().unwrap();
    submit(&db, "f_1", &WEI, T0);
    let c = by_email(&db, "zhang.wei@example.com");
    let export = block_on(privacy::export(&db, WS, &c.id, Some(&keys())))
        .unwrap()
        .unwrap();
    assert_eq!(export["contact"]["email"], "zhang.wei@example.com");
    assert_eq!(export["contact"]["name"], "张伟");
    assert_eq!(export["events"][0]["name"], "form_submitted");
    assert_eq!(export["events"][0]["properties"]["company"], "Acme");
    assert_eq!(export["consents"][0]["channel"], "email");

    let audit = privacy::Audit {
        workspace: WS,
        id: "au_1".into(),
        at: Millis(T0 + 1),
        actor: "admin",
        action: "contact.erased",
        contact_id: Some(&c.id),
        detail: serde_json::json!({}),
    };
    assert!(block_on(privacy::erase(&db, WS, &c.id, audit, Millis(T0 + 1))).unwrap());
    let after = block_on(contacts::get(&db, WS, &c.id)).unwrap().unwrap();
    assert_eq!(after.sealed, contacts::SealedPii::default());
    assert!(after.erased_at.is_some() && after.visitor_ids.is_empty());
    assert_eq!(after.attributes, serde_json::json!({}));
    let index = keys().index(PiiKind::Email, "zhang.wei@example.com");
    assert!(
        block_on(contacts::find_by_identity(&db, WS, "email", &index))
            .unwrap()
            .is_none()
    );
    let events = block_on(contacts::timeline(&db, WS, &c.id, Millis::MAX, 10)).unwrap();
    let own: Vec<_> = events.iter().filter(|e| e.name != "lead.known").collect();
    assert_eq!(own.len(), 1, "kept for counts");
    assert!(events.iter().all(|e| e.properties == serde_json::json!({})));
    assert_eq!(
        block_on(consent::may_market(
            &db,
            WS,
            &c.id,
            Channel::Email,
            Millis(T0 + 2)
        ))
        .unwrap(),
        Err(Refusal::Erased)
    );
    let log = block_on(privacy::audit_log(&db, WS, Some(&c.id), 10)).unwrap();
    assert_eq!(log[0]["action"], "contact.erased");
    // Nothing of the person is left anywhere in the database.
    let dump = block_on(db.query(&Statement::new(
        "SELECT group_concat(properties) AS p FROM events",
        vec![],
    )))
    .unwrap();
    assert!(!dump[0].text("p").unwrap_or_default().contains("Acme"));
}

#[test]
fn monthly_cleaning_merges_duplicates_and_flags_invalid_points_once() {
    let db = Sqlite::open_with_project_schema().unwrap();
    // Two records of one person that slipped in before any merge could see them: the same
    // phone under two different emails, both already known.
    submit(&db, "f_1", &WEI, T0);
    let mut other = WEI.to_vec();
    other[1] = ("email", "wei@other.example");
    other[2] = ("phone", "13900000000");
    submit(&db, "f_2", &other, T0 + 1_000);
    let younger = by_email(&db, "wei@other.example");
    let phone_index = keys().index(PiiKind::Phone, "+8613812345678");
    block_on(db.execute(&Statement::new(
        "UPDATE contacts SET phone_index = ?1 WHERE id = ?2",
        vec![phone_index.into(), younger.id.as_str().into()],
    )))
    .unwrap();
    // A contact point sealed before today's validation rules: not an email at all.
    let bad = keys().seal(PiiKind::Email, "not an email", "x", [9; 12]);
    block_on(db.execute(&Statement::new(
        "INSERT INTO contacts (id, workspace, first_seen_at, last_seen_at, created_at, updated_at, \
         email_cipher, email_index, lead_status) VALUES ('c_ffffffffffffffffffffffff', ?1, 1, 1, 1, 1, ?2, ?3, 'known')",
        vec![WS.into(), bad.cipher.into(), bad.index.into()],
    )))
    .unwrap();

    let now = Millis(T0 + 86_400_000);
    let mut run = None;
    for _ in 0..5 {
        run = block_on(cleaning::step(&db, WS, Some(&keys()), now))
            .unwrap()
            .or(run);
    }
    let run = run.expect("a run");
    assert_eq!(run.merged, 1);
    assert_eq!(run.invalid_flagged, 1);
    assert!(run.finished_at.is_some());
    let survivor = by_email(&db, "zhang.wei@example.com");
    let merged = block_on(contacts::get(&db, WS, &younger.id))
        .unwrap()
        .unwrap();
    assert_eq!(merged.merged_into.as_deref(), Some(survivor.id.as_str()));
    let names = block_on(contacts::timeline(&db, WS, &survivor.id, Millis::MAX, 10)).unwrap();
    let own = names.iter().filter(|e| e.name != "lead.known").count();
    assert_eq!(own, 2, "the merged record's history moved");
    let flagged = block_on(contacts::get(&db, WS, "c_ffffffffffffffffffffffff"))
        .unwrap()
        .unwrap();
    assert_eq!(flagged.email_status.as_deref(), Some("invalid"));
    // The month is done: more ticks change nothing.
    assert_eq!(
        block_on(cleaning::step(&db, WS, Some(&keys()), now)).unwrap(),
        None
    );
    assert_eq!(block_on(cleaning::runs(&db, WS)).unwrap().len(), 1);
}

#[test]
fn created_tokens_carry_their_scopes_until_revoked() {
    let db = Sqlite::open_with_project_schema().unwrap();
    let t = block_on(privacy::create_token(
        &db,
        WS,
        "analyst",
        vec![Scope::Read],
        ("0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        Millis(T0),
    ))
    .unwrap();
    let p = block_on(privacy::principal_of(&db, WS, &t.token))
        .unwrap()
        .unwrap();
    assert_eq!(p.scopes, vec![Scope::Read]);
    assert_eq!(p.actor, "token:0123456789abcdef");
    let wrong = t
        .token
        .replace("0123456789abcdef0123", "ffff456789abcdef0123");
    assert!(block_on(privacy::principal_of(&db, WS, &wrong))
        .unwrap()
        .is_none());
    assert!(block_on(privacy::revoke_token(&db, WS, &t.id, Millis(T0 + 1))).unwrap());
    assert!(block_on(privacy::principal_of(&db, WS, &t.token))
        .unwrap()
        .is_none());
    let stored = block_on(db.query(&Statement::new(
        "SELECT secret_hash FROM api_tokens",
        vec![],
    )))
    .unwrap();
    assert!(!stored[0]
        .text("secret_hash")
        .unwrap()
        .contains("0123456789abcdef0123"));
}

#[test]
fn form_definitions_are_versioned() {
    let db = Sqlite::open_with_project_schema().unwrap();
    let first = block_on(forms::save(&db, WS, demo(), Millis(T0))).unwrap();
    let mut changed = demo();
    changed.name = "Demo sign-up, v2".into();
    let second = block_on(forms::save(&db, WS, changed, Millis(T0 + 1))).unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    let now = block_on(forms::get(&db, WS, "demo-signup"))
        .unwrap()
        .unwrap();
    assert_eq!(now.name, "Demo sign-up, v2");
    let mut bad = demo();
    bad.fields.clear();
    let e = block_on(forms::save(&db, WS, bad, Millis(T0 + 2))).unwrap_err();
    assert_eq!(e.body().field.as_deref(), Some("fields"));
}

#[test]
fn a_server_side_user_naming_a_known_email_joins_that_contact() {
    use crate::event::{Event, Subject};
    use crate::identity::{claims_from, ClaimInput};
    let db = Sqlite::open_with_project_schema().unwrap();
    submit(&db, "f_1", &WEI, T0);
    let form_contact = by_email(&db, "zhang.wei@example.com");
    let traits = serde_json::json!({"email": "zhang.wei@example.com", "timezone": "+05:00"});
    let (claims, rest) = claims_from(
        ClaimInput {
            user_id: Some("crm-42"),
            email: None,
            phone: None,
            traits: traits.as_object().cloned().unwrap(),
        },
        Some(&keys()),
        &mut || [8; 12],
    )
    .unwrap();
    let user = keys().index(PiiKind::UserId, "crm-42");
    let identify = Event {
        id: "s_1".into(),
        workspace: WS.into(),
        site: None,
        subject: Subject::User(user.as_str().into()),
        session_id: None,
        name: "identify".into(),
        properties: rest,
        claims,
        consents: Vec::new(),
        occurred_at: Millis(T0 + 1_000),
        received_at: Millis(T0 + 1_000),
    };
    ingest(&db, &[IngestMessage::Event(identify)]);
    let c = by_email(&db, "zhang.wei@example.com");
    assert_eq!(
        c.id, form_contact.id,
        "the email's contact stays the person"
    );
    assert_eq!(c.attributes["timezone"], "+05:00", "the traits land on it");
    let by_user = block_on(contacts::find_by_identity(&db, WS, "user_id", &user))
        .unwrap()
        .unwrap();
    assert_eq!(by_user.id, c.id, "the user id now finds the same contact");
    assert_eq!(live_contacts_with_email(&db), 1);
}
