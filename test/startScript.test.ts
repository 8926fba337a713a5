/** `npm start` runs the server with the V8 settings and environment tests and benchmarks also start it with. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../src/serverNodeFlags.ts';
import { eventually } from './support/harness.ts';
import { freePort } from './support/processes.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
/** Still running (a zombie, exited but not yet reaped by whoever adopted it, counts as gone). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const glibc = process.platform === 'linux' && Boolean((process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime);

/** `node <flags> src/start.mjs` as a user runs it: none of the allocator settings of its own but `own`. */
async function startAsUser(own: Record<string, string> = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'squeeze-start-'));
  const env: Record<string, string> = { ...(process.env as Record<string, string>), HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
  for (const name of Object.keys(SERVER_ENV)) delete env[name];
  Object.assign(env, own);
  delete env.DATABASE_URL;
  const parent = spawn(process.execPath, [...SERVER_NODE_FLAGS, 'src/start.mjs'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  parent.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  parent.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => parent.once('exit', (code) => resolve(code)));
  await eventually(() =>
    fetch(`http://127.0.0.1:${port}/healthz`).then(
      (response) => response.ok,
      () => false,
    ),
  ).catch((error: Error) => {
    throw new Error(`the server on port ${port} did not answer: ${error.message}\n${output}`);
  });
  const childPid = Number(readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim().split(' ')[0]);
  return { parent, childPid, exited, cleanup: () => rmSync(dataDir, { recursive: true, force: true }) };
}

describe('npm start', () => {
  it('passes the server V8 settings and runs src/start.mjs', () => {
    const { scripts } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.start).toContain(`node ${SERVER_NODE_FLAGS.join(' ')} src/start.mjs`);
    // Set by the script itself, so `npm start` needs no second process (see src/start.mjs); the bench's
    // limit runs in the bench's own process, with the same settings as the servers it is compared with.
    for (const script of ['start', 'bench', 'bench:short']) {
      for (const [name, value] of Object.entries(SERVER_ENV)) expect(scripts[script], script).toContain(`${name}=\${${name}:-${value}}`);
    }
  });

  it.skipIf(!glibc)('started without the allocator settings (node src/start.mjs), runs the server with them set, stops it on SIGTERM with exit code 0, and never leaves it behind', { timeout: 90_000 }, async () => {
    const first = await startAsUser();
    try {
      const environ = readFileSync(`/proc/${first.childPid}/environ`, 'utf8').split('\0');
      for (const [name, value] of Object.entries(SERVER_ENV)) expect(environ).toContain(`${name}=${value}`);
      first.parent.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(running(first.childPid)).toBe(false);
    } finally {
      first.cleanup();
    }

    // Killed outright, the parent cannot pass anything on: the server notices it is gone and stops.
    const second = await startAsUser();
    try {
      second.parent.kill('SIGKILL');
      await eventually(async () => !running(second.childPid), 20_000);
    } finally {
      if (running(second.childPid)) process.kill(second.childPid, 'SIGKILL');
      second.cleanup();
    }
  });

  it.skipIf(!glibc)("keeps a user's own allocator setting and adds only the missing ones", { timeout: 60_000 }, async () => {
    const [own, ...missing] = Object.keys(SERVER_ENV) as [string, ...string[]];
    const started = await startAsUser({ [own]: '3' });
    try {
      const environ = readFileSync(`/proc/${started.childPid}/environ`, 'utf8').split('\0');
      expect(environ).toContain(`${own}=3`);
      expect(environ).not.toContain(`${own}=${SERVER_ENV[own]}`);
      for (const name of missing) expect(environ).toContain(`${name}=${SERVER_ENV[name]}`);
      started.parent.kill('SIGTERM');
      expect(await started.exited).toBe(0);
    } finally {
      if (running(started.childPid)) process.kill(started.childPid, 'SIGKILL');
      started.cleanup();
    }
  });
});

describe('npm start on a port that is taken', () => {
  it('says which address is in use and what to set, and exits 1 without a stack trace', { timeout: 60_000 }, async () => {
    const { createServer } = await import('node:net');
    const taken = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    const dataDir = mkdtempSync(path.join(tmpdir(), 'squeeze-start-'));
    try {
      const env: Record<string, string> = { ...(process.env as Record<string, string>), HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
      delete env.DATABASE_URL;
      const parent = spawn(process.execPath, [...SERVER_NODE_FLAGS, 'src/start.mjs'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      parent.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      parent.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => parent.once('exit', resolve));
      expect(output).toContain(`Squeeze cannot start: 127.0.0.1:${port} is already in use by another program; set PORT to a free port`);
      expect(output).not.toMatch(/^\s+at /m);
      expect(code).toBe(1);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
