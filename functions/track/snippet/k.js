// Kindling website snippet, served minified at GET /k.js by the track function.
// Build: functions/track/snippet/build.sh (writes k.min.js, which the worker embeds).
//
// Embed:
//   <script>window.kindling=window.kindling||function(){(kindling.q=kindling.q||[]).push(arguments)};</script>
//   <script async src="https://TRACK_HOST/k.js" data-site="demo"></script>
// Optional attributes: data-auto-page="false" (no automatic page views, neither at load nor on
// SPA navigation), data-honor-dnt="false" (ignore Do-Not-Track / Global Privacy Control).
//
// API: kindling('page') | kindling('track', name, props) |
//      kindling('identify', {email, phone, user_id, traits}) | kindling('consent', true|false)
//
// Forms posting to Kindling (action …/f/<form>) get two hidden fields on submit: `_kvid`, the
// visitor id (only while tracking is allowed), and `_kts`, when the page loaded.
//
// Events are batched (1 s, or at once on pagehide / hidden) and POSTed as text/plain JSON to
// <origin of this script>/e. Nothing here may throw into the host page, and the only global is
// `kindling`.
((w, d, n, L) => {
  try {
    // Loaded twice: the first copy already owns window.kindling and the history hooks.
    if ((w.kindling || 0).v) return;

    const script = d.currentScript || d.querySelector('script[data-site][src*="/k.js"]');
    const attr = (a) => script.getAttribute('data-' + a);
    const site = attr('site');
    if (!site) return;
    const origin = new URL(script.src).origin;
    const auto = attr('auto-page') != 'false';
    const dnt = attr('honor-dnt') != 'false' && (n.doNotTrack === '1' || n.globalPrivacyControl === true);

    // Storage: localStorage, or a first-party cookie when localStorage throws (blocked, sandboxed).
    const get = (k) => {
      try {
        return localStorage.getItem(k);
      } catch (e) {
        try {
          return (d.cookie.match('(^|; )' + k + '=([^;]*)') || [])[2];
        } catch (e) {}
      }
    };
    const set = (k, v) => {
      try {
        localStorage.setItem(k, v);
      } catch (e) {
        try {
          d.cookie = k + '=' + v + ';max-age=31536000;path=/;SameSite=Lax';
        } catch (e) {}
      }
    };

    // `prefix` + 24 url-safe random characters (base64url of 18 random bytes, 144 bits).
    const rnd = (prefix) =>
      prefix +
      btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(18))))
        .replace(/\+/g, '-')
        .replace(/\//g, '_');

    // Consent: '1' granted, '0' refused (nothing is sent), null undecided (send unless DNT/GPC).
    let consent = get('kindling_consent');
    const allowed = () => consent == '1' || (!consent && !dnt);

    let vid; // visitor id, read or created at the first event that may be sent
    let sid; // session of the events buffered now
    let fresh; // a session started and its landing page view has not been sent yet
    let buf = [];
    let timer;
    let lastPath; // path+search of the last page view (SPA navigation detection)
    let here; // URL of the last page view
    let ref = d.referrer; // what led to `here`: the referrer, then the previous SPA URL

    const send = (body, events, retried) => {
      const url = origin + '/e';
      try {
        if (n.sendBeacon(url, new Blob([body], { type: 'text/plain' }))) return;
      } catch (e) {} // no sendBeacon: fall through to fetch
      Promise.resolve()
        .then(() =>
          fetch(url, {
            method: 'POST',
            body,
            keepalive: true,
            headers: { 'Content-Type': 'text/plain' },
            credentials: 'omit',
          })
        )
        .then(
          (res) => {
            // Overloaded or rate limited: once more later, same body, so the same event ids.
            if (!retried && (res.status == 503 || res.status == 429))
              setTimeout(() => send(body, events, 1), (+res.headers.get('Retry-After') || 5) * 1e3);
          },
          () =>
            // The network refused fetch: page views still get through as pixels.
            events.forEach((e) => {
              if (e.type == 'page')
                new Image().src =
                  origin + '/p.gif?' + new URLSearchParams({ site, vid, url: e.url, ref: e.ref });
            })
        )
        .catch(() => {});
    };

    const flush = () => {
      try {
        clearTimeout(timer);
        timer = 0;
        while (buf.length) {
          const events = buf.splice(0, 50);
          send(
            JSON.stringify({ site, vid, sid, consent: consent == '1' || undefined, events }),
            events
          );
        }
      } catch (e) {}
    };

    const push = (type, fields) => {
      if (!allowed()) return;
      // Nothing is stored either (no visitor id) while tracking is not allowed.
      if (!vid && !(vid = get('kindling_vid'))) set('kindling_vid', (vid = rnd('v_')));
      const ts = Date.now();
      // A session ends after 30 minutes without events.
      sid = get('kindling_sid');
      if (!sid || ts - get('kindling_sts') > 18e5) {
        set('kindling_sid', (sid = rnd('s_')));
        fresh = 1;
      }
      set('kindling_sts', ts);
      const e = Object.assign({ id: rnd(''), type, ts }, fields);
      if (type == 'page' && fresh) {
        fresh = 0;
        // Landing page: campaign parameters from this URL, else from the referrer's.
        for (const u of [L.href, d.referrer]) {
          let utm;
          try {
            const q = new URL(u).searchParams;
            for (const k of ['source', 'medium', 'campaign', 'term', 'content']) {
              const v = q.get('utm_' + k);
              if (v) (utm = utm || {})[k] = v;
            }
          } catch (x) {}
          if ((e.utm = utm)) break;
        }
      }
      // A snapshot: later changes to props/traits by the page do not alter what was recorded,
      // and anything JSON cannot encode is rejected here rather than losing a whole batch.
      buf.push(JSON.parse(JSON.stringify(e)));
      timer = timer || setTimeout(flush, 1e3);
    };

    const page = () => {
      if (here != L.href) {
        if (here) ref = here;
        here = L.href;
      }
      lastPath = L.pathname + L.search;
      push('page', { url: here, ref, title: d.title.slice(0, 300) });
    };

    // SPA navigation: counted a task later, once the app has had its chance to set the title
    // (and so that a redirect within the same task is one page view, of where it ended).
    const nav = () =>
      setTimeout(() => {
        try {
          if (auto && lastPath != L.pathname + L.search) page();
        } catch (e) {}
      });

    const kindling = function (method, a, b) {
      try {
        if (method == 'page') page();
        if (method == 'track' && a != null) push('track', { name: '' + a, props: b, url: L.href });
        if (method == 'identify' && a) {
          // Identifiers as strings (a numeric user id must not fail the batch); absent ones omitted.
          const f = { traits: a.traits };
          for (const k of ['user_id', 'email', 'phone']) if (a[k] != null) f[k] = '' + a[k];
          push('identify', f);
        }
        if (method == 'consent') {
          const before = allowed();
          set('kindling_consent', (consent = a ? '1' : '0'));
          if (!a) buf = [];
          // Granted on a page whose view was withheld: count it now.
          else if (!before && auto) page();
        }
      } catch (e) {}
    };
    kindling.v = 1;

    const queued = (w.kindling || 0).q || [];
    w.kindling = kindling;
    queued.forEach((args) => kindling.apply(0, args));
    if (auto && lastPath == null) page();

    const h = w.history;
    ['pushState', 'replaceState'].forEach((m) => {
      const original = h[m];
      h[m] = function () {
        const r = original.apply(this, arguments);
        nav();
        return r;
      };
    });
    // Kindling forms (action …/f/<form>): the visitor id links the anonymous history to the
    // lead, and the page's start time lets the server tell people from instant bots. Fields are
    // added while the submit event runs, before the browser collects the form's data.
    const t0 = Date.now();
    d.addEventListener(
      'submit',
      (e) => {
        try {
          const f = e.target;
          const add = (k, v) => {
            if (v && !f.elements[k]) {
              const i = d.createElement('input');
              i.type = 'hidden';
              i.name = k;
              i.value = v;
              f.appendChild(i);
            }
          };
          if (/\/f\/[\w-]+$/.test(f.action)) {
            add('_kts', t0);
            if (allowed()) add('_kvid', vid || get('kindling_vid'));
          }
        } catch (x) {}
      },
      true
    );
    w.addEventListener('popstate', nav);
    w.addEventListener('pagehide', flush);
    d.addEventListener('visibilitychange', () => d.visibilityState == 'hidden' && flush());
  } catch (e) {}
})(window, document, navigator, location);
