import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/serverNodeFlags.ts';

/** The project root: children run `src/start.mjs` from here, as `npm start` does. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');


/** A free TCP port on loopback (released again before it is returned; good enough for tests). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface SqueezeProcess {
  name: string;
  pid: number;
  url: string;
  child: ChildProcess;
  /** Resolves when the process has exited, with its code or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True until the process has exited. */
  readonly alive: boolean;
  /** Everything it wrote to stdout and stderr so far (for failure messages). */
  output(): string;
  /** Images this process has claimed carry `locked_by` values that start with this. */
  lockPrefix(): string;
}

const running = new Set<SqueezeProcess>();
// Should the test process end without its afterEach (a crash, a timeout that kills the worker), take the children along.
process.once('exit', () => {
  for (const started of running) if (started.alive) started.child.kill('SIGKILL');
});

/**
 * Starts the real server as `npm start` does (`node <V8 settings> src/start.mjs`) as a child process on a free loopback port
 * and waits until `/readyz` answers 200. `env` is added to the parent's environment.
 */
export async function spawnSqueeze(name: string, env: Record<string, string>, readyTimeoutMs = 30_000): Promise<SqueezeProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, 'src/start.mjs'], {
    cwd: ROOT,
    env: { ...process.env, ...SERVER_ENV, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log += chunk.toString('utf8');
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let alive = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      alive = false;
      resolve({ code, signal });
    });
  });
  const started: SqueezeProcess = {
    name,
    pid: child.pid!,
    url: `http://127.0.0.1:${port}`,
    child,
    exited,
    get alive() {
      return alive;
    },
    output: () => log,
    // src/app.ts names the worker `${os.hostname()}:${process.pid}:<random>`.
    lockPrefix: () => `:${child.pid}:`,
  };
  running.add(started);
  void exited.then(() => running.delete(started));

  const deadline = Date.now() + readyTimeoutMs;
  while (true) {
    if (!alive) throw new Error(`squeeze ${name} exited before it was ready:\n${log}`);
    try {
      const response = await fetch(`${started.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) return started;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`squeeze ${name} was not ready within ${readyTimeoutMs} ms:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** SIGKILLs every child this module started that is still running, and waits until each has gone. */
export async function killAllSqueezes(): Promise<void> {
  const left = [...running];
  for (const started of left) if (started.alive) started.child.kill('SIGKILL');
  await Promise.all(left.map((started) => started.exited));
}

/** Waits for a child to exit, or fails after `timeoutMs`. */
export async function waitForExit(started: SqueezeProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const begin = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`squeeze ${started.name} did not exit within ${timeoutMs} ms:\n${started.output()}`)), timeoutMs);
  });
  try {
    const result = await Promise.race([started.exited, timeout]);
    return { ...result, ms: Date.now() - begin };
  } finally {
    clearTimeout(timer);
  }
}
