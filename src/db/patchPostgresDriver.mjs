// Runs after `npm ci` / `npm install` (package.json "postinstall"): patches postgres.js 3.4.x so that a
// Postgres restart cannot crash the whole process. Upstream bug porsager/postgres#1154 and #1208, fix
// pull requests #1168 and #1209 not yet released: nextWrite() dereferences a socket that closed() has
// nulled, throwing from a setImmediate where no caller can catch it. We saw it kill an instance in
// about one Postgres restart in four. The patch settles the write with CONNECTION_CLOSED instead (the
// caller's query rejects and is retried), and resets the write buffer on teardown so a reconnected
// connection can flush again. Idempotent; does nothing when the driver's code has changed.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../node_modules/postgres');
const MARKER = '/* squeeze: nextWrite guard */';
const GUARD = `function nextWrite(fn) {
    ${MARKER}
    if (!socket) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }`;

let patched = 0;
for (const build of ['src', 'cjs/src', 'cf/src']) {
  const file = path.join(root, build, 'connection.js');
  if (!existsSync(file)) continue;
  let text = readFileSync(file, 'utf8');
  if (text.includes(MARKER)) continue;
  if (!text.includes('function nextWrite(fn) {') || !/\n {4}clearImmediate\(nextWriteTimer\)\n/.test(text)) {
    console.warn(`squeeze: postgres.js ${build}/connection.js has changed; the nextWrite guard was not applied`);
    continue;
  }
  text = text
    .replace('function nextWrite(fn) {', GUARD)
    .replace(/\n {4}clearImmediate\(nextWriteTimer\)\n/g, '\n    clearImmediate(nextWriteTimer)\n    nextWriteTimer = chunk = null\n');
  writeFileSync(file, text);
  patched++;
}
if (patched > 0) console.log(`squeeze: patched postgres.js in ${patched} place(s) (nextWrite guard, porsager/postgres#1154)`);
