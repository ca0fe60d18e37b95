// Form-capture benchmark: N submissions posted concurrently to a running stack, with the same
// people repeated in other spellings (email case and spacing, phone with +86, separators or
// full-width digits). Then checks integrity through the api: nothing lost, one contact per
// person, every ticked consent box in the ledger. Prints `key=value` lines for bench/run.sh.
//
//   FORMS_URL=http://127.0.0.1:28788 API_URL=http://127.0.0.1:28791 TOKEN=dev-admin-token \
//     node bench/forms.mjs [submissions=1000] [people=250] [in-flight=100]
//
// Baseline, in the same run and with the same client and concurrency: the same number of
// `GET /health` requests to the forms function (no validation, sealing or Queue send).
const env = process.env;
const [N = 1000, PEOPLE = 250, IN_FLIGHT = 100] = process.argv.slice(2).map(Number);
const FORMS = env.FORMS_URL;
const API = env.API_URL;
const AUTH = { Authorization: `Bearer ${env.TOKEN}` };
const ORIGIN = env.ORIGIN || 'http://127.0.0.1:8080';
const RUN = Date.now().toString(36);
const UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

const fullWidth = (s) => s.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d)));
const person = (i) => {
  const mobile = `139${String(RUN.length * 1e7 + i).padStart(8, '0').slice(-8)}`;
  return { email: `lead.${i}.${RUN}@bench.example`, mobile };
};
// The k-th spelling of person i's email and phone.
const spelling = (p, k) => {
  const [local, domain] = p.email.split('@');
  const emails = [p.email, `  ${local}@${domain.toUpperCase()} `, `${local.toUpperCase()}@${domain}`, ` ${p.email}`];
  const m = p.mobile;
  const phones = [m, `+86 ${m.slice(0, 3)} ${m.slice(3, 7)} ${m.slice(7)}`, fullWidth(m), `${m.slice(0, 3)}-${m.slice(3, 7)}-${m.slice(7)}`];
  return { email: emails[k % emails.length], phone: phones[k % phones.length] };
};

async function pool(count, task) {
  let next = 0;
  const results = new Array(count);
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, worker));
  return { results, secs: (performance.now() - t0) / 1000 };
}

async function withRetry(send) {
  // The client side of "nothing is lost": a 503 or 429 is retried after its Retry-After.
  for (let attempt = 0; ; attempt++) {
    const res = await send();
    if ((res.status === 503 || res.status === 429) && attempt < 5) {
      await new Promise((r) => setTimeout(r, (Number(res.headers.get('retry-after')) || 1) * 1000));
      continue;
    }
    return { status: res.status, body: await res.text(), retried: attempt };
  }
}

const expectedConsents = new Map(); // email -> ticked boxes
const submissions = Array.from({ length: N }, (_, j) => {
  const i = j % PEOPLE;
  const k = Math.floor(j / PEOPLE);
  const p = person(i);
  const s = spelling(p, k);
  const sms = (i + k) % 2 === 0;
  expectedConsents.set(p.email, (expectedConsents.get(p.email) || 0) + 1 + (sms ? 1 : 0));
  const body = {
    name: `线索 ${i}`,
    email: s.email,
    phone: s.phone,
    company: `Company ${i}`,
    industry: ['manufacturing', 'finance', 'retail'][i % 3],
    company_size: ['50', '500', '1000'][i % 3],
    job_title: i % 2 ? 'Marketing Director' : '工程师',
    consent_email: 'on',
    ...(sms ? { consent_sms: 'on' } : {}),
  };
  return { i, body };
});

const status = async () => (await fetch(`${API}/v1/system/status`, { headers: AUTH })).json();
const before = await status();

// Warm both paths once, then measure the baseline and the submissions back to back.
await fetch(`${FORMS}/health`);
const health = await pool(N, () => withRetry(() => fetch(`${FORMS}/health`)));
const submitted = await pool(N, (j) =>
  withRetry(() =>
    fetch(`${FORMS}/f/demo-signup`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Origin: ORIGIN,
        'User-Agent': UA,
        // One address per person (locally the edge takes the client's word for it): a person
        // posting four times stays within the per-IP limit, as in real life.
        'CF-Connecting-IP': `10.${(submissions[j].i >> 8) & 255}.${submissions[j].i & 255}.7`,
      },
      body: JSON.stringify(submissions[j].body),
    })
  )
);
const accepted = submitted.results.filter((r) => r.status === 200).length;
const retried = submitted.results.reduce((s, r) => s + r.retried, 0);

// Drain: the engine writes from the queue; wait until the counts stop moving.
const t0 = performance.now();
let after = await status();
for (let still = 0, last = -1; still < 6 && performance.now() - t0 < 120_000; ) {
  await new Promise((r) => setTimeout(r, 500));
  after = await status();
  const now = after.events + after.consent_records;
  still = now === last ? still + 1 : 0;
  last = now;
}
const drainSecs = (performance.now() - t0) / 1000;

// Integrity, person by person: found by email and by phone, the same contact, every consent.
let lost = 0;
let split = 0;
let consentsMissing = 0;
const people = await pool(PEOPLE, async (i) => {
  const p = person(i);
  const byEmail = await (await fetch(`${API}/v1/contacts?email=${encodeURIComponent(p.email)}`, { headers: AUTH })).json();
  const byPhone = await (await fetch(`${API}/v1/contacts?phone=${encodeURIComponent(p.mobile)}`, { headers: AUTH })).json();
  const a = byEmail.contacts?.[0];
  const b = byPhone.contacts?.[0];
  if (!a) return { lost: 1 };
  const ledger = await (await fetch(`${API}/v1/contacts/${a.id}/consents`, { headers: AUTH })).json();
  const timeline = await (await fetch(`${API}/v1/contacts/${a.id}/timeline?limit=50`, { headers: AUTH })).json();
  const forms = timeline.events.filter((e) => e.name === 'form_submitted').length;
  return {
    lost: Math.max(0, N / PEOPLE - forms),
    split: !b || b.id !== a.id ? 1 : 0,
    consentsMissing: Math.max(0, expectedConsents.get(p.email) - ledger.ledger.length),
  };
});
for (const r of people.results) {
  lost += r.lost || 0;
  split += r.split || 0;
  consentsMissing += r.consentsMissing || 0;
}
const expectedTotal = [...expectedConsents.values()].reduce((a, b) => a + b, 0);
const out = {
  FORMS_N: N,
  FORMS_PEOPLE: PEOPLE,
  FORMS_IN_FLIGHT: IN_FLIGHT,
  FORMS_ACCEPTED: accepted,
  FORMS_RETRIED: retried,
  FORMS_RPS: (N / submitted.secs).toFixed(1),
  FORMS_HEALTH_RPS: (N / health.secs).toFixed(1),
  FORMS_DRAIN_S: drainSecs.toFixed(1),
  FORMS_NEW_KNOWN: after.known_contacts - before.known_contacts,
  FORMS_NEW_CONSENTS: after.consent_records - before.consent_records,
  FORMS_EXPECTED_CONSENTS: expectedTotal,
  FORMS_LOST: lost,
  FORMS_SPLIT: split,
  FORMS_CONSENTS_MISSING: consentsMissing,
};
for (const [k, v] of Object.entries(out)) console.log(`${k}=${v}`);
