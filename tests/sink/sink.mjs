// A local stand-in for every provider the deliver function talks to (SendGrid, Twilio, WeCom,
// generic webhooks): it records each request and answers as the real provider does on
// success, unless a test scripted other answers. Node 22, no packages.
//
//   node tests/sink/sink.mjs PORT        (PORT 0 picks a free port; the line printed names it)
//
// Prints `sink: listening on <port>` when ready; exits on SIGTERM or SIGINT.
//
// Control routes (never recorded):
//   GET  /_sink/requests?path_prefix=/v3/  recorded requests, oldest first, optionally those
//                                          whose path+query starts with the prefix
//   POST /_sink/reset                      forget records and scripts
//   POST /_sink/script                     {"path_prefix": "/v3/mail/send", "responses": [...]}
// A script's responses answer the next matching requests in order, then the default resumes.
// Each response is one of, or combines:
//   {"status": 500, "headers": {"Retry-After": "1"}, "body": "..."}   answer this
//   {"hang_ms": 15000}   wait that long (or until the client goes away), then answer (200 and
//                        an empty body unless status/body are given too)
//   {"close": true}      destroy the socket without answering (after hang_ms, if given)
// Several scripts may be queued; a request takes the first one (in the order posted) that
// matches it and still has responses.
//
// A record: {seq, method, path, headers, body, time, time_ms, scripted, answer}. `path` holds
// the query too, `headers` are as Node reads them (lower-case names), `body` is UTF-8 text,
// `answer` is what the sink did ({status, headers, body}, plus hang_ms / close / client_gone).
import http from 'node:http';

const MAX_BODY_BYTES = 16 * 1024 * 1024;

const port = Number(process.argv[2]);
if (process.argv[2] === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node tests/sink/sink.mjs PORT');
  process.exit(2);
}

let records = [];
let scripts = [];
// Never reset, so provider ids stay unique for the life of the process (a test that resets
// between cases cannot confuse an old message's id with a new one).
let seq = 0;

/** What the real provider answers on success, for the request's path. */
function defaultAnswer(path, n) {
  const json = (status, value) => ({
    status,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(value),
  });
  const pathname = path.split('?')[0];
  if (pathname === '/v3/mail/send') {
    return { status: 202, headers: { 'X-Message-Id': `sg-${n}` }, body: '' };
  }
  if (/^\/2010-04-01\/Accounts\/[^/]+\/Messages\.json$/.test(pathname)) {
    return json(201, { sid: `SM${n}`, status: 'queued' });
  }
  if (path.startsWith('/cgi-bin/webhook/send') || path.startsWith('/cgi-bin/message/send')) {
    return json(200, { errcode: 0, errmsg: 'ok', msgid: `w${n}` });
  }
  if (path.startsWith('/cgi-bin/gettoken')) {
    return json(200, { errcode: 0, access_token: `tok-${n}`, expires_in: 7200 });
  }
  return json(200, { ok: true });
}

/** The next scripted response for `path`, taken off its script; undefined when none. */
function takeScripted(path) {
  const script = scripts.find((s) => s.responses.length > 0 && path.startsWith(s.path_prefix));
  return script?.responses.shift();
}

/** A scripted answer's status, headers and body, with a content type guessed for a body. */
function scriptedAnswer(r) {
  const headers = { ...(r.headers ?? {}) };
  let body = r.body ?? '';
  if (typeof body !== 'string') body = JSON.stringify(body);
  const hasType = Object.keys(headers).some((k) => k.toLowerCase() === 'content-type');
  if (body !== '' && !hasType) {
    let isJson = true;
    try {
      JSON.parse(body);
    } catch {
      isJson = false;
    }
    headers['Content-Type'] = isJson ? 'application/json' : 'text/plain; charset=utf-8';
  }
  return { status: r.status ?? 200, headers, body };
}

function validScript(s) {
  const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(s) || typeof s.path_prefix !== 'string' || !s.path_prefix.startsWith('/')) {
    return 'path_prefix: a path starting with /';
  }
  if (!Array.isArray(s.responses)) return 'responses: an array';
  for (const r of s.responses) {
    if (!isObject(r)) return 'each response is an object';
    if (r.status !== undefined && !(Number.isInteger(r.status) && r.status >= 100 && r.status <= 999)) {
      return 'status: an HTTP status code';
    }
    if (r.hang_ms !== undefined && !(Number.isFinite(r.hang_ms) && r.hang_ms >= 0)) {
      return 'hang_ms: milliseconds';
    }
    if (r.headers !== undefined && !isObject(r.headers)) return 'headers: an object';
    if (r.close !== undefined && typeof r.close !== 'boolean') return 'close: true or false';
  }
  return null;
}

function send(res, { status, headers, body }) {
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res, status, value) {
  send(res, { status, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
}

function control(req, res, url, body) {
  const route = `${req.method} ${url.pathname}`;
  if (route === 'GET /_sink/requests') {
    const prefix = url.searchParams.get('path_prefix') ?? '';
    return sendJson(res, 200, records.filter((r) => r.path.startsWith(prefix)));
  }
  if (route === 'POST /_sink/reset') {
    records = [];
    scripts = [];
    return sendJson(res, 200, { ok: true });
  }
  if (route === 'POST /_sink/script') {
    let script;
    try {
      script = JSON.parse(body.toString('utf8'));
    } catch {
      return sendJson(res, 400, { error: 'the body is a JSON script' });
    }
    const problem = validScript(script);
    if (problem) return sendJson(res, 400, { error: problem });
    // Copies, so a later script cannot alter the queue through shared objects.
    scripts.push({
      path_prefix: script.path_prefix,
      responses: script.responses.map((r) => ({ ...r })),
    });
    return sendJson(res, 200, { ok: true, queued: script.responses.length });
  }
  return sendJson(res, 404, { error: `no control route ${route}` });
}

async function respond(req, res, record, scripted) {
  if (!scripted) {
    const answer = defaultAnswer(record.path, record.seq);
    record.answer = answer;
    return send(res, answer);
  }
  const answer = scripted.close ? { close: true } : scriptedAnswer(scripted);
  if (scripted.hang_ms !== undefined) answer.hang_ms = scripted.hang_ms;
  record.answer = answer;
  if (scripted.hang_ms) {
    const gone = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        res.off('close', onClose);
        resolve(false);
      }, scripted.hang_ms);
      // `close` on the response before it was sent: the client went away (or timed out).
      const onClose = () => {
        clearTimeout(timer);
        resolve(true);
      };
      res.once('close', onClose);
    });
    if (gone) {
      answer.client_gone = true;
      return;
    }
  }
  if (scripted.close) {
    req.socket.destroy();
    return;
  }
  send(res, answer);
}

const server = http.createServer((req, res) => {
  const arrived = new Date();
  const path = req.url ?? '/';
  const url = new URL(path, 'http://sink.invalid');
  const isControl = url.pathname.startsWith('/_sink/');
  // Scripted answers go to requests in the order they arrive, not the order bodies finish.
  const scripted = isControl ? undefined : takeScripted(path);
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on('error', () => {});
  req.on('end', () => {
    if (tooLarge) return sendJson(res, 413, { error: `bodies are at most ${MAX_BODY_BYTES} bytes` });
    const body = Buffer.concat(chunks);
    if (isControl) return control(req, res, url, body);
    seq += 1;
    const record = {
      seq,
      method: req.method,
      path,
      headers: req.headers,
      body: body.toString('utf8'),
      time: arrived.toISOString(),
      time_ms: arrived.getTime(),
      scripted: scripted !== undefined,
      answer: null,
    };
    records.push(record);
    respond(req, res, record, scripted).catch((e) => {
      console.error('sink: answering failed', e);
      req.socket.destroy();
    });
  });
});

server.on('clientError', (_err, socket) => socket.destroy());

function stop() {
  server.close(() => process.exit(0));
  // Hanging requests and keep-alive connections would hold close() open.
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, '127.0.0.1', () => {
  console.log(`sink: listening on ${server.address().port}`);
});
