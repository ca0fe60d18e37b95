// Browser test of the demo landing page (examples/landing, served by scripts/landing.mjs) in
// headless Chromium, against a running stack: a visitor lands, the snippet records the visit,
// the visitor fills in the sign-up form as a person would and lands on the thank-you page; the
// api must then show ONE contact holding both the visit and the lead, with the email consent,
// and the unsubscribe link (signed here, as the deliver function signs it) must withdraw it.
//
//   LANDING_URL=http://127.0.0.1:18080/ API_URL=http://127.0.0.1:18791 \
//   FORMS_URL=http://127.0.0.1:18788 ADMIN_TOKEN=dev-admin-token node tests/browser/landing.mjs
//
// Other env: TRACK_URL (the snippet must come from there), TEST_EMAIL, LINK_KEY (the stack's
// KINDLING_LINK_KEY, default dev-link-key), CHROMIUM (default /usr/bin/chromium).
// Prints "landing: token <preference token>" and "landing: ok" on success.
import assert from 'node:assert/strict';
import { createHmac, randomInt } from 'node:crypto';
import { chromium } from 'playwright-core';

const env = process.env;
// The track function drops HeadlessChrome as a bot: present as an ordinary desktop Chrome.
const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/131.0.0.0 Safari/537.36';
// The demo form's min_fill_ms: a post sooner after the page started is taken for a bot's.
const MIN_FILL_MS = 2000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something truthy; fails naming `what` after `ms`. */
async function eventually(ms, what, probe) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(250);
  }
}

const trimmed = (url) => url.replace(/\/$/, '');

async function api(path) {
  const res = await fetch(trimmed(env.API_URL) + path, {
    headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` },
  });
  const text = await res.text();
  assert.equal(res.status, 200, `GET ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

const contactBy = async (key, value) =>
  (await api(`/v1/contacts?${key}=${encodeURIComponent(value)}`)).contacts?.[0];

/** kindling::link::sign_preferences: base64url(id) "." base64url(HMAC-SHA256 tag, 16 bytes). */
function preferencesToken(contactId, key) {
  const id = Buffer.from(contactId, 'utf8');
  const tag = createHmac('sha256', key)
    .update(Buffer.from('kindling/preferences/v1\0', 'utf8'))
    .update(id)
    .digest()
    .subarray(0, 16);
  return `${id.toString('base64url')}.${tag.toString('base64url')}`;
}

async function run(browser) {
  const landing = new URL(env.LANDING_URL);
  const email = env.TEST_EMAIL || `landing.${Date.now()}@landing.example`;
  const lastDigits = String(randomInt(1000)).padStart(3, '0');
  const typedPhone = `138 0013 9${lastDigits}`;
  const mobile = `+8613800139${lastDigits}`;

  const context = await browser.newContext({ userAgent: USER_AGENT });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  // 1. The visit: the snippet stores a visitor id and its page view reaches a contact.
  await page.goto(landing.href);
  const loadedAt = Date.now();
  if (env.TRACK_URL) {
    const src = await page.getAttribute('script[data-site]', 'src');
    assert.equal(src, `${trimmed(env.TRACK_URL)}/k.js`, 'the page embeds the stack snippet');
  }
  const vid = await page
    .waitForFunction(() => localStorage.getItem('kindling_vid'), null, { timeout: 10_000 })
    .then((h) => h.jsonValue());
  const visitor = await eventually(30_000, `the page view of visitor ${vid}`, () =>
    contactBy('vid', vid)
  );
  assert.equal(visitor.lead_status, 'anonymous', 'a visitor, not a lead yet');

  // 2. The sign-up, no sooner than a person could fill it in.
  await sleep(Math.max(0, loadedAt + MIN_FILL_MS + 500 - Date.now()));
  await page.fill('input[name=name]', '李娜');
  await page.fill('input[name=email]', email);
  await page.fill('input[name=phone]', typedPhone);
  await page.fill('input[name=company]', 'Acme 制造');
  await page.selectOption('select[name=industry]', 'manufacturing');
  await page.selectOption('select[name=company_size]', '500');
  await page.fill('input[name=job_title]', 'Marketing Director');
  await page.check('input[name=consent_email]');
  const posted = page.waitForRequest(
    (r) => r.method() === 'POST' && new URL(r.url()).pathname === '/f/demo-signup'
  );
  await Promise.all([
    page.waitForURL('**/thanks.html', { timeout: 15_000 }),
    page.click('#signup button[type=submit]'),
  ]);
  const sent = new URLSearchParams((await posted).postData() || '');
  assert.equal(sent.get('_kvid'), vid, 'the snippet added the visitor id to the form');
  assert.ok(Number(sent.get('_kts')) > 1.6e12, `the page start time: ${sent.get('_kts')}`);
  assert.equal(sent.get('website'), '', 'the honeypot stays empty');
  await page.locator('h1#thanks').waitFor({ state: 'visible', timeout: 5_000 });
  const thanks = new URL(page.url());
  assert.equal(thanks.origin, landing.origin, 'the thank-you page is on the landing site');
  assert.ok(thanks.pathname.endsWith('/thanks.html'), page.url());

  // 3. One contact: the visitor became the lead.
  const lead = await eventually(30_000, `the contact of ${email}`, async () => {
    const c = await contactBy('email', email);
    return c?.has_email && c;
  });
  const about = () => `\ncontact: ${JSON.stringify(lead)}`;
  assert.equal(lead.id, visitor.id, `the lead is the visitor who browsed${about()}`);
  assert.ok(lead.visitor_ids.includes(vid), `visitor id on the lead${about()}`);
  assert.equal(lead.has_phone, true);
  assert.equal(lead.phone, mobile, 'the typed number, normalised');
  assert.equal(lead.lead_status, 'known');
  assert.equal(lead.attributes.company_size, '500');
  const events = await eventually(30_000, 'the page view and the submission', async () => {
    const t = (await api(`/v1/contacts/${lead.id}/timeline?limit=500`)).events || [];
    const names = t.map((e) => e.name);
    return names.includes('page') && names.includes('form_submitted') && t;
  });
  const landingView = events.find(
    (e) => e.name === 'page' && trimmed(String(e.properties.url)) === trimmed(landing.href)
  );
  assert.ok(landingView, `the landing page view: ${JSON.stringify(events)}`);
  const consents = await api(`/v1/contacts/${lead.id}/consents`);
  assert.equal(consents.current.email, true, JSON.stringify(consents));
  assert.equal(consents.current.sms, null, JSON.stringify(consents));

  // 4. The unsubscribe link: the page in the browser, then the mail provider's one-click POST.
  const token = preferencesToken(lead.id, env.LINK_KEY || 'dev-link-key');
  const prefs = `${trimmed(env.FORMS_URL)}/u/${token}`;
  const shown = await page.goto(prefs);
  assert.equal(shown.status(), 200, `GET ${prefs}`);
  const [local, domain] = email.split('@');
  assert.ok(
    (await page.content()).includes(`${local[0]}***@${domain}`),
    'the preference page shows the address masked'
  );
  assert.equal(await page.isChecked('input[name=email]'), true, 'email box ticked');
  const res = await fetch(`${prefs}?channel=email`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'List-Unsubscribe=One-Click',
  });
  assert.equal(res.status, 200, `one-click: ${res.status} ${await res.text()}`);
  const after = await api(`/v1/contacts/${lead.id}/consents`);
  assert.equal(after.current.email, false, `withdrawn at once: ${JSON.stringify(after)}`);
  await page.reload();
  assert.equal(await page.isChecked('input[name=email]'), false, 'email box now unticked');

  assert.deepEqual(errors, [], 'the pages threw');
  await context.close();
  console.log(`landing: token ${token}`);
}

async function main() {
  let browser;
  try {
    for (const k of ['LANDING_URL', 'API_URL', 'FORMS_URL', 'ADMIN_TOKEN']) {
      assert.ok(env[k], `${k} is required`);
    }
    browser = await chromium.launch({
      executablePath: env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    await run(browser);
    console.log('landing: ok');
    return 0;
  } catch (e) {
    const frames = String(e?.stack || '').split('\n').filter((l) => l.startsWith('    at '));
    console.error(`landing: FAILED\n${e?.message ?? e}\n${frames.join('\n')}`);
    return 1;
  } finally {
    await browser?.close().catch(() => {});
  }
}

process.exitCode = await main();
