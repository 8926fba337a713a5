// Bootstrap for the TypeScript worker: on Node 20, tsx's hooks (from `node --import tsx` or from
// vitest) do not reach worker threads, so register tsx's CommonJS hook here and load the task
// through it. Works under plain node, `node --import tsx`, tsx and vitest.
import { register } from 'tsx/cjs/api';

const api = register({ namespace: 'squeeze-compress-worker' });
const task = api.require('./compressImage.ts', import.meta.url);

export const compressImage = task.compressImage;
export const ping = task.ping;
export default task.default;
