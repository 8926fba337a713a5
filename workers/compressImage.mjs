// Bootstrap of the worker threads: the compression task (Piscina's threads) and the download thread
// (src/net/downloadThread.ts, started with workerData.role 'downloads'). Started by `npm start`
// (src/start.mjs), the process has compiled the compression task to JavaScript and names it in
// SQUEEZE_COMPRESS_WORKER_JS: the thread imports that (its bundle carries workers/downloads.ts too) and
// never loads tsx. Otherwise (`node --import tsx`, tsx, vitest) it loads the TypeScript: on Node 20,
// tsx's ESM hooks do not reach worker threads, so register tsx's CommonJS hook here and load the task
// through it. Works under plain node too.
import { writeFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

const compiled = process.env.SQUEEZE_COMPRESS_WORKER_JS;
const downloads = workerData?.role === 'downloads';

// Every thread Node starts is called "node"; named, top -H and the bench's CPU by thread tell them apart.
if (process.platform === 'linux') {
  try {
    writeFileSync('/proc/thread-self/comm', downloads ? 'squeeze fetch' : 'squeeze sharp');
  } catch {
    // Not allowed here: the thread keeps its name.
  }
}
const task = compiled ? await import(compiled) : await loadTypeScript(downloads ? './downloads.ts' : './compressImage.ts');

if (downloads) {
  const serve = compiled ? (await task.loadDownloads()).serveDownloads : task.serveDownloads;
  serve(parentPort);
}

async function loadTypeScript(file) {
  const { register } = await import('tsx/cjs/api');
  const api = register({ namespace: 'squeeze-compress-worker' });
  return api.require(file, import.meta.url);
}

export const compressImage = task.compressImage;
export const ping = task.ping;
export default task.default;
