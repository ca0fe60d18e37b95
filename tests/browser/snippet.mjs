// Browser test of the website snippet (functions/track/snippet/k.js) in headless Chromium.
//
// Against a running stack (scripts/stack.sh: track on the base port, api on base + 4):
//   TRACK_URL=http://127.0.0.1:18787 API_URL=http://127.0.0.1:18791 ADMIN_TOKEN=dev-admin-token \
//     node tests/browser/snippet.mjs
// The journey's events must reach the visitor's contact timeline through the real pipeline.
// The `demo` site must allow the test site's origin, http://127.0.0.1:$SITE_PORT.
//
// Without a stack, MODE=record serves functions/track/snippet/k.min.js from a recording server
// and checks the requests the snippet sends (plus consent, fallbacks, retry, queue replay,
// session rotation):
//   MODE=record node tests/browser/snippet.mjs
//
// Other env: SITE_PORT (test site, default 18080), TEST_EMAIL, CHROMIUM (default /usr/bin/chromium),
// RECORD_PORT (record mode's track stand-in, default: any free port), SNIPPET_DEBUG=1 (print what
// the recorder saw).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';

const env = process.env;
const RECORD = env.MODE === 'record';
const SITE_PORT = Number(env.SITE_PORT || 18080);
const SITE = `http://127.0.0.1:${SITE_PORT}`;
const EMAIL = env.TEST_EMAIL || 'snippet.test@example.com';
const LANDING_QUERY = '?utm_source=newsletter&utm_campaign=launch';
const SNIPPET = new URL('../../functions/track/snippet/k.min.js', import.meta.url);
// The track function drops HeadlessChrome as a bot: present as an ordinary desktop Chrome.
const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/131.0.0.0 Safari/537.36';
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');
const URL_SAFE_ID = /^[A-Za-z0-9_-]{16,}$/;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something truthy, or gives up after `ms`. */
async function eventually(ms, probe) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v || Date.now() > end) return v;
    await sleep(200);
  }
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** The test site: `/`, `/pricing` (and `/cases/steel` on reload) with the snippet embedded. */
function sitePage(trackUrl, path, { queued = '', attrs = '' } = {}) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Kindling snippet test ${path}</title>
<script>window.kindling=window.kindling||function(){(kindling.q=kindling.q||[]).push(arguments)};${queued}</script>
<script async src="${trackUrl}/k.js" data-site="demo"${attrs}></script>
</head><body>
<h1 id="heading">${path}</h1>
<button id="track">Download the whitepaper</button>
<button id="identify">Sign up</button>
<a id="steel" href="/cases/steel">Steel case study</a>
<a id="pricing" href="/pricing">Pricing</a>
<script>
document.getElementById('track').onclick = function () {
  kindling('track', 'whitepaper_downloaded', { title: 'Industry whitepaper' });
};
document.getElementById('identify').onclick = function () {
  kindling('identify', { email: ${JSON.stringify(EMAIL)}, traits: { company: 'Acme' } });
};
document.getElementById('steel').onclick = function (e) {
  e.preventDefault();
  history.pushState({}, '', '/cases/steel');
  document.title = 'Steel case study';
  document.getElementById('heading').textContent = '/cases/steel';
};
</script>
</body></html>`;
}

function startSite(trackUrl) {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, SITE).pathname;
    const pages = {
      '/': {},
      '/pricing': {},
      '/cases/steel': {},
      // Record mode only: calls made before the snippet loads must be replayed in order.
      '/queued': {
        queued: "kindling('identify',{user_id:42});kindling('track','early',{n:1});",
      },
      // Record mode only: no automatic page views, Do-Not-Track ignored.
      '/manual': { attrs: ' data-auto-page="false" data-honor-dnt="false"' },
    };
    if (!(path in pages)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(sitePage(trackUrl, path, pages[path]));
  });
  return server;
}

/** MODE=record: a stand-in for the track function that records what the snippet sends. */
function startRecorder() {
  const rec = { posts: [], pixels: [], preflights: 0, failNext: false };
  rec.server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://recorder');
    const cors = { 'Access-Control-Allow-Origin': '*' };
    if (req.method === 'GET' && url.pathname === '/k.js') {
      res.writeHead(200, { 'Content-Type': 'application/javascript', 'Cache-Control': 'no-store' });
      res.end(readFileSync(SNIPPET));
    } else if (req.method === 'OPTIONS') {
      rec.preflights++;
      res.writeHead(204, { ...cors, 'Access-Control-Allow-Headers': '*' }).end();
    } else if (req.method === 'POST' && url.pathname === '/e') {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        let body;
        try {
          body = JSON.parse(text);
        } catch {
          body = { unparsable: text };
        }
        rec.posts.push({
          at: Date.now(),
          contentType: req.headers['content-type'],
          ua: req.headers['user-agent'],
          body,
        });
        if (rec.failNext) {
          rec.failNext = false;
          res.writeHead(503, {
            ...cors,
            'Retry-After': '1',
            'Access-Control-Expose-Headers': 'Retry-After',
          });
          res.end();
        } else {
          res.writeHead(202, cors).end();
        }
      });
    } else if (req.method === 'GET' && url.pathname === '/p.gif') {
      rec.pixels.push(Object.fromEntries(url.searchParams));
      res.writeHead(200, { 'Content-Type': 'image/gif', 'Cache-Control': 'no-store' }).end(GIF);
    } else {
      res.writeHead(404).end();
    }
  });
  rec.postsOf = (vid) => rec.posts.filter((p) => p.body.vid === vid);
  rec.eventsOf = (vid) => rec.postsOf(vid).flatMap((p) => p.body.events || []);
  return rec;
}

async function newPage(browser, initScript) {
  const context = await browser.newContext({ userAgent: USER_AGENT });
  if (initScript) await context.addInitScript(initScript);
  return context.newPage();
}

const storedVid = (page) =>
  page.waitForFunction(() => localStorage.getItem('kindling_vid'), null, { timeout: 10_000 })
    .then((h) => h.jsonValue());

/** The journey of steps 2-3: landing with UTM, download, SPA navigation, identify. */
async function journey(browser, { checks = false } = {}) {
  // Record mode: the globals there were before any page script, to find what the snippet adds.
  const page = await newPage(
    browser,
    checks &&
      (() => Object.defineProperty(window, '__globals', { value: Object.keys(window) }))
  );
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${SITE}/${LANDING_QUERY}`);
  const vid = await storedVid(page);
  if (checks) {
    const added = await page.evaluate(() =>
      Object.keys(window).filter((k) => !window.__globals.includes(k))
    );
    assert.deepEqual(added, ['kindling'], 'the only global is kindling');
  }
  await page.click('#track');
  await page.click('#steel');
  await page.waitForURL('**/cases/steel');
  await page.click('#identify');
  await sleep(1500);
  if (checks) {
    // Record mode: an event still buffered at close must leave with the pagehide flush.
    await page.evaluate(() => kindling('track', 'closing_flush'));
  }
  await page.close();
  assert.deepEqual(errors, [], 'the page threw');
  return vid;
}

/** The expectations shared by both modes, on events normalised to {name, properties}. */
function checkJourney(events) {
  const pages = events.filter((e) => e.name === 'page');
  const landing = pages.find((e) => String(e.properties.url).endsWith(`/${LANDING_QUERY}`));
  assert.ok(landing, 'a page event for the landing URL with its UTM query');
  assert.equal(landing.properties.utm_source, 'newsletter', 'utm_source on the landing page');
  assert.ok(events.some((e) => e.name === 'whitepaper_downloaded'), 'a whitepaper_downloaded event');
  assert.ok(
    pages.some((e) => String(e.properties.url).endsWith('/cases/steel')),
    'a page event for the SPA navigation to /cases/steel'
  );
  assert.ok(events.some((e) => e.name === 'identify'), 'an identify event');
}

/** A snippet event as the server will flatten it: {name, properties} with utm_* and the rest. */
function flatten(e) {
  const { id, type, ts, name, props, utm, traits, ...rest } = e;
  const properties = { ...rest, ...props, ...traits };
  for (const [k, v] of Object.entries(utm || {})) properties[`utm_${k}`] = v;
  return { name: type === 'track' ? name : type, properties };
}

async function realRun(browser) {
  for (const k of ['TRACK_URL', 'API_URL', 'ADMIN_TOKEN']) assert.ok(env[k], `${k} is required`);
  const startedAt = Date.now();
  const vid = await journey(browser);
  console.log(`snippet: visitor ${vid}, waiting for the timeline`);

  const api = env.API_URL.replace(/\/$/, '');
  const get = async (path) => {
    const res = await fetch(api + path, { headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` } });
    const text = await res.text();
    assert.equal(res.status, 200, `GET ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  };
  let seen = { contact: null, events: [] };
  let failure;
  await eventually(30_000, async () => {
    const contact = (await get(`/v1/contacts?vid=${encodeURIComponent(vid)}`)).contacts?.[0];
    if (!contact) return false;
    const timeline = await get(`/v1/contacts/${contact.id}/timeline?limit=500`);
    // Only this run's events count (an identified contact may carry earlier runs' history).
    const events = (timeline.events || []).filter((e) => {
      const t = Date.parse(e.occurred_at);
      return !Number.isFinite(t) || t >= startedAt - 60_000;
    });
    seen = { contact, events };
    try {
      checkJourney(events);
      failure = null;
      return true;
    } catch (e) {
      failure = e;
      return false;
    }
  });
  if (!seen.contact) throw new Error(`no contact for visitor ${vid} within 30 s`);
  if (failure) {
    failure.message += `\ncontact: ${JSON.stringify(seen.contact)}\ntimeline: ${JSON.stringify(seen.events, null, 1)}`;
    throw failure;
  }
}

async function recordRun(browser, rec) {
  // 1. The journey, checked request by request.
  const vid = await journey(browser, { checks: true });
  const all = () => rec.eventsOf(vid);
  await eventually(5_000, () => all().some((e) => e.name === 'closing_flush'));
  const posts = rec.postsOf(vid);
  const events = all();
  assert.ok(/^v_[A-Za-z0-9_-]{22,}$/.test(vid), `visitor id ${vid}`);
  assert.ok(posts.length > 0, 'posts for the visitor');
  assert.ok(rec.posts.every((p) => p.body.vid === vid), 'vid in the body is the stored one');
  checkJourney(events.map(flatten));
  assert.ok(events.some((e) => e.name === 'closing_flush'), 'the pagehide flush');
  for (const p of posts) {
    assert.equal(p.contentType, 'text/plain', 'text/plain body (no preflight)');
    assert.equal(p.ua, USER_AGENT, 'beacons carry the desktop user agent (the server drops headless)');
    assert.equal(p.body.site, 'demo');
    assert.ok(/^s_[A-Za-z0-9_-]{16,}$/.test(p.body.sid), `session id ${p.body.sid}`);
    assert.equal(p.body.sid, posts[0].body.sid, 'one session for the journey');
    assert.ok(!('consent' in p.body), 'consent only when granted');
    assert.ok(p.body.events.length >= 1 && p.body.events.length <= 50, '1-50 events a request');
  }
  assert.equal(rec.preflights, 0, 'no CORS preflight');
  const ids = events.map((e) => e.id);
  assert.ok(ids.every((id) => URL_SAFE_ID.test(id)), `event ids ${ids}`);
  assert.equal(new Set(ids).size, ids.length, 'event ids are unique');
  for (const e of events) assert.ok(Number.isInteger(e.ts) && e.ts > 1.6e12, `ts of ${e.id}`);
  const withUtm = events.filter((e) => e.utm);
  assert.equal(withUtm.length, 1, 'utm on exactly one event');
  assert.equal(withUtm[0].type, 'page');
  assert.ok(withUtm[0].url.endsWith(`/${LANDING_QUERY}`), 'utm on the landing page view');
  assert.deepEqual(withUtm[0].utm, { source: 'newsletter', campaign: 'launch' });
  const [landing, steel] = events.filter((e) => e.type === 'page');
  assert.equal(events.filter((e) => e.type === 'page').length, 2, 'two page views');
  assert.equal(landing.ref, '');
  assert.equal(landing.title, 'Kindling snippet test /');
  assert.equal(steel.url, `${SITE}/cases/steel`);
  assert.equal(steel.title, 'Steel case study', 'SPA page view has the title the app set');
  assert.equal(steel.ref, `${SITE}/${LANDING_QUERY}`, 'SPA page view refers to the previous URL');
  const track = events.find((e) => e.name === 'whitepaper_downloaded');
  assert.deepEqual(track.props, { title: 'Industry whitepaper' });
  assert.equal(track.url, `${SITE}/${LANDING_QUERY}`);
  const identify = events.find((e) => e.type === 'identify');
  assert.equal(identify.email, EMAIL);
  assert.deepEqual(identify.traits, { company: 'Acme' });
  assert.ok(!('user_id' in identify) && !('phone' in identify), 'absent fields omitted');
  assert.equal(rec.pixels.length, 0, 'no pixel while beacons work');

  // 2. Global Privacy Control: nothing until consent, then the withheld page view with consent.
  {
    const page = await newPage(browser, () =>
      Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true })
    );
    const before = rec.posts.length;
    await page.goto(`${SITE}/pricing`);
    await page.waitForFunction(() => window.kindling && !window.kindling.q);
    await page.click('#track');
    await sleep(1500);
    assert.equal(rec.posts.length, before, 'GPC: nothing sent without consent');
    const stored = await page.evaluate(() => ({ ...localStorage }));
    assert.deepEqual(stored, {}, 'GPC: nothing stored without consent');
    await page.evaluate(() => kindling('consent', true));
    const gvid = await storedVid(page);
    await page.click('#track');
    const ok = await eventually(5_000, () => rec.eventsOf(gvid).length >= 2);
    const gposts = rec.postsOf(gvid);
    assert.ok(ok, 'GPC + consent: events sent');
    assert.ok(gposts.every((p) => p.body.consent === true), 'consent: true in the body');
    assert.deepEqual(rec.eventsOf(gvid).map((e) => e.name || e.type), ['page', 'whitepaper_downloaded']);
    assert.equal(rec.eventsOf(gvid)[0].ref, '', 'the withheld page view keeps its referrer');
    assert.equal(await page.evaluate(() => localStorage.getItem('kindling_consent')), '1');
    await page.evaluate(() => kindling('consent', false));
    await page.click('#track');
    await sleep(1500);
    assert.equal(rec.eventsOf(gvid).length, 2, 'nothing after consent is withdrawn');
    await page.close();
  }

  // 3. No sendBeacon: fetch; a 503 is retried once after Retry-After with the same event ids.
  {
    const page = await newPage(browser, () => {
      delete Navigator.prototype.sendBeacon;
    });
    rec.failNext = true;
    await page.goto(`${SITE}/pricing`);
    const fvid = await storedVid(page);
    const ok = await eventually(6_000, () => rec.postsOf(fvid).length >= 2);
    const [first, retry, extra] = rec.postsOf(fvid);
    assert.ok(ok, '503 retried');
    assert.equal(extra, undefined, 'retried once');
    assert.equal(first.contentType, 'text/plain');
    assert.deepEqual(retry.body, first.body, 'the retry repeats the batch, ids included');
    assert.ok(retry.at - first.at >= 900, `retry after Retry-After (${retry.at - first.at} ms)`);
    await page.close();
  }

  // 4. Neither sendBeacon nor fetch: page views fall back to the pixel.
  {
    const page = await newPage(browser, () => {
      delete Navigator.prototype.sendBeacon;
      window.fetch = () => Promise.reject(new TypeError('Failed to fetch'));
    });
    await page.goto(`${SITE}/pricing?x=1`);
    const pvid = await storedVid(page);
    const ok = await eventually(5_000, () => rec.pixels.some((p) => p.vid === pvid));
    assert.ok(ok, 'pixel fallback');
    const pixel = rec.pixels.find((p) => p.vid === pvid);
    assert.deepEqual(pixel, { site: 'demo', vid: pvid, url: `${SITE}/pricing?x=1`, ref: '' });
    await page.close();
  }

  // 5. Calls queued before load are replayed in order; the real function replaces the stub;
  //    30 minutes idle starts a new session whose landing page view carries its UTM.
  {
    const page = await newPage(browser);
    await page.goto(`${SITE}/queued`);
    const qvid = await storedVid(page);
    assert.equal(await page.evaluate(() => 'q' in window.kindling), false, 'stub replaced');
    await eventually(5_000, () => rec.eventsOf(qvid).length >= 3);
    const q = rec.eventsOf(qvid);
    assert.deepEqual(q.map((e) => e.name || e.type), ['identify', 'early', 'page'], 'queue order');
    assert.equal(q[0].user_id, '42', 'user_id sent as a string');
    assert.deepEqual(q[1].props, { n: 1 });
    assert.equal(q[2].utm, undefined, 'no utm without campaign parameters');
    const sid1 = rec.postsOf(qvid)[0].body.sid;
    await page.evaluate(() => {
      localStorage.setItem('kindling_sts', String(Date.now() - 31 * 60 * 1000));
      history.pushState({}, '', '/later?utm_source=ad&utm_medium=cpc');
      history.replaceState({}, '', '/later?utm_source=ad&utm_medium=cpc'); // same URL: no view
    });
    await eventually(5_000, () => rec.eventsOf(qvid).length >= 4);
    await sleep(300);
    const later = rec.eventsOf(qvid).slice(3);
    const sid2 = rec.postsOf(qvid).at(-1).body.sid;
    assert.equal(later.length, 1, 'one page view for the navigation');
    assert.notEqual(sid2, sid1, 'new session after 30 minutes idle');
    assert.deepEqual(later[0].utm, { source: 'ad', medium: 'cpc' }, 'new session landing UTM');
    await page.evaluate(() => history.pushState({}, '', '/again?utm_source=other'));
    await eventually(5_000, () => rec.eventsOf(qvid).length >= 5);
    const again = rec.eventsOf(qvid)[4];
    assert.ok(again && again.type === 'page' && !('utm' in again), 'UTM only on the landing view');
    // A burst goes out in requests of at most 50 events.
    await page.evaluate(() => {
      for (let i = 0; i < 120; i++) kindling('track', 'burst', { i });
    });
    const bursts = () => rec.postsOf(qvid).filter((p) => p.body.events.some((e) => e.name === 'burst'));
    await eventually(5_000, () => bursts().flatMap((p) => p.body.events).length >= 120);
    assert.deepEqual(bursts().map((p) => p.body.events.length), [50, 50, 20], 'batches of 50');
    const order = bursts().flatMap((p) => p.body.events.map((e) => e.props.i));
    assert.deepEqual(order, [...Array(120).keys()], 'burst events in order');
    await page.close();
  }

  // 6. localStorage unavailable: the visitor id lives in a first-party cookie.
  {
    const page = await newPage(browser, () =>
      Object.defineProperty(window, 'localStorage', {
        get() {
          throw new DOMException('denied', 'SecurityError');
        },
      })
    );
    await page.goto(`${SITE}/pricing`);
    const cookie = await eventually(5_000, async () =>
      (await page.context().cookies(SITE)).find((c) => c.name === 'kindling_vid')
    );
    assert.ok(cookie, 'kindling_vid cookie');
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.path, '/');
    assert.ok(cookie.expires * 1000 - Date.now() > 360 * 86_400_000, 'kept for a year');
    const ok = await eventually(5_000, () => rec.postsOf(cookie.value).length > 0);
    assert.ok(ok, 'events under the cookie visitor id');
    await page.close();
  }
  // 7. data-auto-page="false" and data-honor-dnt="false" (with Do-Not-Track on).
  {
    const page = await newPage(browser, () =>
      Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' })
    );
    await page.goto(`${SITE}/manual`);
    await page.waitForFunction(() => window.kindling && !window.kindling.q);
    await page.click('#steel');
    await page.click('#track');
    const mvid = await storedVid(page);
    await page.evaluate(() => kindling('page'));
    await eventually(5_000, () => rec.eventsOf(mvid).length >= 2);
    await sleep(1200);
    const m = rec.eventsOf(mvid);
    assert.deepEqual(m.map((e) => e.name || e.type), ['whitepaper_downloaded', 'page'], 'only manual');
    assert.equal(m[1].url, `${SITE}/cases/steel`);
    assert.ok(rec.postsOf(mvid).every((p) => !('consent' in p.body)), 'no consent claimed');
    await page.close();
  }
  assert.equal(rec.preflights, 0, 'no CORS preflight in any scenario');
}

const recorded = (rec) =>
  JSON.stringify({ posts: rec.posts, pixels: rec.pixels, preflights: rec.preflights }, null, 1);

async function main() {
  let rec;
  let trackUrl = (env.TRACK_URL || '').replace(/\/$/, '');
  let site;
  let browser;
  try {
    if (RECORD) {
      rec = startRecorder();
      trackUrl = `http://127.0.0.1:${await listen(rec.server, Number(env.RECORD_PORT || 0))}`;
    } else {
      assert.ok(trackUrl, 'TRACK_URL is required (or MODE=record)');
    }
    site = startSite(trackUrl);
    await listen(site, SITE_PORT);
    browser = await chromium.launch({
      executablePath: env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    if (RECORD) {
      try {
        await recordRun(browser, rec);
        if (env.SNIPPET_DEBUG) console.log(recorded(rec));
      } catch (e) {
        e.message += `\nthe recorder saw:\n${recorded(rec)}`;
        throw e;
      }
    }
    else await realRun(browser);
    console.log(RECORD ? 'snippet: ok (record mode)' : 'snippet: ok');
    return 0;
  } catch (e) {
    // The message, not the stack's copy of it: context is appended to messages after the fact.
    const frames = String(e?.stack || '').split('\n').filter((l) => l.startsWith('    at '));
    console.error(`snippet: FAILED\n${e?.message ?? e}\n${frames.join('\n')}`);
    return 1;
  } finally {
    await browser?.close().catch(() => {});
    site?.closeAllConnections?.();
    site?.close();
    rec?.server.closeAllConnections();
    rec?.server.close();
  }
}

process.exitCode = await main();
