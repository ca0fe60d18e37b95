// Serves the demo landing page (examples/landing) the way a customer's web server would, with
// the track and forms addresses of the running stack filled in.
//   node scripts/landing.mjs PORT TRACK_URL FORMS_URL
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const [port, track, forms] = process.argv.slice(2);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'landing');
const pages = new Map([
  ['/', 'index.html'],
  ['/index.html', 'index.html'],
  ['/thanks.html', 'thanks.html'],
]);

createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  const file = pages.get(path);
  if (!file || !['GET', 'HEAD'].includes(req.method)) {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    return;
  }
  const html = (await readFile(join(root, file), 'utf8'))
    .replaceAll('{{TRACK}}', track)
    .replaceAll('{{FORMS}}', forms);
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : html);
}).listen(Number(port), '127.0.0.1', () => console.log(`landing: http://127.0.0.1:${port}/`));
