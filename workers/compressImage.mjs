// Bootstrap of the compression worker thread. Started by `npm start` (src/start.mjs), the process has
// compiled the task to JavaScript and names it in SQUEEZE_COMPRESS_WORKER_JS: the thread imports that
// and never loads tsx. Otherwise (`node --import tsx`, tsx, vitest) it loads the TypeScript: on
// Node 20, tsx's ESM hooks do not reach worker threads, so register tsx's CommonJS hook here and load
// the task through it. Works under plain node too.
const compiled = process.env.SQUEEZE_COMPRESS_WORKER_JS;
const task = compiled ? await import(compiled) : await loadTypeScript();

async function loadTypeScript() {
  const { register } = await import('tsx/cjs/api');
  const api = register({ namespace: 'squeeze-compress-worker' });
  return api.require('./compressImage.ts', import.meta.url);
}

export const compressImage = task.compressImage;
export const ping = task.ping;
export default task.default;
