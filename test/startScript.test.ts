/** `npm start` runs the server with the V8 settings tests and benchmarks also start it with. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_FLAGS } from '../src/serverNodeFlags.ts';

describe('npm start', () => {
  it('passes the server V8 settings and runs src/start.mjs', () => {
    const { scripts } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.start).toContain(`node ${SERVER_NODE_FLAGS.join(' ')} src/start.mjs`);
  });
});
