/**
 * `npm run bench:progress`: fan-out of live progress. One Squeeze instance, a thousand graphql-ws
 * subscribers to one busy request.
 *
 *   1. A fresh Squeeze child process started as `npm start` does (`node <V8 settings> src/start.mjs`) on a scratch Postgres database
 *      (or PGlite with BENCH_DB=pglite), loopback only. It runs with the inspector on 127.0.0.1, used
 *      only to force a GC around the memory samples.
 *   2. A loopback image server (small photo-like JPEGs made with sharp) and a CSV of N images uploaded
 *      with autoStart: false.
 *   3. S subscribers (one graphql-ws client and socket each) opened from separate client processes
 *      (bench/progressClients.ts), each subscribed to `requestProgress(requestId)`. The server's VmRSS
 *      before the clients connect and once all are subscribed and idle gives the memory per idle subscriber.
 *   4. processRequest; every event is stamped on arrival. After the run the delay of every (subscriber,
 *      event) pair is arrival − images.finished_at of the event's image. finished_at is now(), the START of
 *      the finishing transaction, so this overstates the delay from the commit by that transaction's
 *      length; on Postgres the bench also LISTENs on the progress channel itself, which gives the time the
 *      NOTIFY was delivered (just after the commit) and splits the delay into "transaction + NOTIFY" and
 *      "NOTIFY → subscriber" (the instance's fan-out).
 *   5. A table, PASS/MISS for p99 ≤ 100 ms, and bench/results/progress-<date>.json.
 *
 * Settings (environment): BENCH_SHORT=1 (or --short) 100 subscribers × 30 images, under a minute;
 * BENCH_SUBSCRIBERS, BENCH_PROGRESS_IMAGES, BENCH_CLIENT_PROCESSES (default 2, 1 when short),
 * BENCH_RAMP_CONCURRENCY (subscribers being opened at once, default 50), BENCH_RUN_TIMEOUT_S;
 * BENCH_DB=pglite; BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres, where the
 * scratch database is created and dropped); BENCH_CPU_PROF=1 profiles the server's main thread during the
 * run (the .cpuprofile is kept in the temporary directory, its path printed); BENCH_BASELINE=0 skips the
 * same request processed once with no subscriber (the throughput the fan-out is compared with). The
 * server reads its own settings (PROGRESS_COALESCE_MS, WORKER_THREADS …) from the environment.
 * BENCH_SPLIT_ROLES=1 (Postgres only): the subscribers' instance runs with ROLE=api and a second child with
 * ROLE=worker does the compressing, so the fan-out and the image work do not share one event loop.
 *
 * A MISS never fails the run (exit 0); an error does (exit 1). Children, database and temporary
 * directories are removed on every path, errors and Ctrl-C included.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import sharp from 'sharp';
import type { Client } from 'graphql-ws';
import { PROGRESS_CHANNEL, type ProgressEvent } from '../src/events/progressBus.ts';
import { prng } from './corpus.ts';
import { InspectorSession, Profiler, saveProfile, summarise } from './profile.ts';
import { openSubscriber, wallNow, type ChildMessage, type ClientsResult, type ParentMessage } from './progressClients.ts';
import {
  ROOT,
  checkPostgres,
  createScratchDatabase,
  freePort,
  percentile,
  postgresBackendCpu,
  procStatus,
  processCpu,
  cpuByThreadName,
  round,
  scrapeMetrics,
  sleep,
  uploadCsv,
  type ScratchDatabase,
  intEnv,
  isShort,
  squeezeEnv,
  SERVER_NODE_FLAGS,
} from './support.ts';

const benchStarted = performance.now();
const loadAverageAtStart = os.loadavg().map((n) => Number(n.toFixed(2)));
const log = (line: string) => console.log(line);

const short = isShort;
const dbKind: 'postgres' | 'pglite' = process.env.BENCH_DB?.trim().toLowerCase() === 'pglite' ? 'pglite' : 'postgres';
const settings = {
  short,
  database: dbKind,
  subscribers: intEnv('BENCH_SUBSCRIBERS', short ? 100 : 1000),
  images: intEnv('BENCH_PROGRESS_IMAGES', short ? 30 : 300),
  clientProcesses: intEnv('BENCH_CLIENT_PROCESSES', short ? 1 : 2),
  rampConcurrency: intEnv('BENCH_RAMP_CONCURRENCY', 50),
  runTimeoutSeconds: intEnv('BENCH_RUN_TIMEOUT_S', short ? 60 : 150),
  imageWidth: 640,
  imageHeight: 480,
  imageVariants: 8,
  urlsPerRow: 3,
  warmImages: 6,
  warmSubscribers: 20,
  postgresAdminUrl: process.env.BENCH_POSTGRES_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/postgres',
  progressCoalesceMs: process.env.PROGRESS_COALESCE_MS?.trim() || '100 (default)',
  workerThreads: process.env.WORKER_THREADS?.trim() || `${os.availableParallelism()} (default: cores)`,
  cpuProfile: process.env.BENCH_CPU_PROF === '1',
  baseline: process.env.BENCH_BASELINE !== '0',
  splitRoles: process.env.BENCH_SPLIT_ROLES === '1',
};
const GOALS = { subscribers: settings.subscribers, p99Ms: 100 };

// ---------------------------------------------------------------------------------------------
// Clean-up: every resource registers how to let it go as soon as it exists; run in reverse order on
// every path (normal end, error, Ctrl-C). Children are also SIGKILLed on a hard exit.

const cleanups: { name: string; run: () => Promise<void> | void }[] = [];
const liveChildren = new Set<ChildProcess>();
function onCleanup(name: string, run: () => Promise<void> | void): () => Promise<void> {
  let done = false;
  const entry = {
    name,
    run: async () => {
      if (done) return;
      done = true;
      await run();
    },
  };
  cleanups.push(entry);
  return entry.run;
}
async function cleanUp() {
  while (cleanups.length) {
    const entry = cleanups.pop()!;
    try {
      await entry.run();
    } catch (error) {
      console.error(`! clean-up of ${entry.name} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
process.on('exit', () => {
  for (const child of liveChildren) if (child.exitCode === null && child.signalCode === null && child.pid) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

function trackChild(child: ChildProcess) {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Images: photo-like JPEGs (a smooth colour field, upscaled, with blurred grain), served from memory.

async function photoJpeg(seed: number, width: number, height: number): Promise<Buffer> {
  const random = prng(seed);
  const small = Buffer.alloc(16 * 12 * 3);
  for (let i = 0; i < small.length; i++) small[i] = Math.floor(random() * 256);
  const field = await sharp(small, { raw: { width: 16, height: 12, channels: 3 } }).resize(width, height, { kernel: 'cubic' }).raw().toBuffer();
  for (let i = 0; i < field.length; i++) field[i] = Math.max(0, Math.min(255, field[i]! + Math.floor((random() - 0.5) * 48)));
  return sharp(field, { raw: { width, height, channels: 3 } }).blur(0.8).jpeg({ quality: 90 }).toBuffer();
}

interface ImageServer {
  base: string;
  served: number;
  close(): Promise<void>;
}

async function startImageServer(variants: Buffer[]): Promise<ImageServer> {
  const state = { served: 0 };
  const server: Server = createServer((req, res) => {
    const match = /^\/img\/(\d+)\/[\w.-]+$/.exec(req.url ?? '');
    const bytes = match ? variants[Number(match[1])] : undefined;
    if (!bytes) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    state.served++;
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': bytes.length });
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    get served() {
      return state.served;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function csvOf(images: ImageServer, count: number, tag: string): string {
  const lines = ['S. No.,Product Name,Input Image Urls'];
  for (let row = 0; row * settings.urlsPerRow < count; row++) {
    const urls: string[] = [];
    for (let i = row * settings.urlsPerRow; i < Math.min(count, (row + 1) * settings.urlsPerRow); i++) {
      urls.push(`${images.base}/img/${i % settings.imageVariants}/${tag}-${i}.jpg`);
    }
    lines.push(`${row + 1},Product ${row + 1},"${urls.join(',')}"`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// The server child.

interface ServerChild {
  base: string;
  wsUrl: string;
  pid: number;
  dataDir: string;
  output(): string;
  /** Stops the process (SIGTERM, then SIGKILL after 15 s); the data directory stays until removeDataDir. */
  stop(): Promise<void>;
  removeDataDir(): Promise<void>;
}

async function startServer(databaseUrl: string | undefined, extraEnv: Record<string, string> = {}): Promise<ServerChild> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'squeeze-bench-progress-'));
  const removeDir = onCleanup('server data directory', () => rm(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const env = squeezeEnv(port, dataDir, databaseUrl, extraEnv);
  // As `npm start` runs it (its V8 settings, then the compiled JavaScript), so the figures are production's.
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--inspect=127.0.0.1:0', 'src/start.mjs'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const stopServer = onCleanup('server process', () => stopChild(child, 'SIGTERM', 15_000));
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-50_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Squeeze exited (${child.exitCode ?? child.signalCode}) while starting:\n${output}`);
    try {
      const response = await fetch(`${base}/readyz`);
      await response.text();
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`Squeeze did not become ready in 60 s:\n${output}`);
    await sleep(100);
  }
  return {
    base,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    pid: child.pid!,
    dataDir,
    output: () => output,
    stop: stopServer,
    removeDataDir: removeDir,
  };
}

/** The child's output without the inspector's lines. */
const serverWarnings = (server: ServerChild) =>
  server
    .output()
    .split('\n')
    .filter((line) => line.trim() && !/^(Debugger listening on|Debugger ending on|For help, see:|Debugger attached|Waiting for the debugger)/.test(line))
    .join('\n')
    .trim();

async function graphql<T = any>(base: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  let body: { data?: T; errors?: { message: string }[] };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`GraphQL answered ${response.status} with non-JSON: ${text.slice(0, 300)}`);
  }
  if (body.errors?.length) throw new Error(`GraphQL errors: ${body.errors.map((e) => e.message).join('; ')}`);
  if (!body.data) throw new Error(`GraphQL answered ${response.status} without data`);
  return body.data;
}

const PROCESS_REQUEST = `mutation Start($id: ID!) { processRequest(id: $id) { id status } }`;
const REQUEST_STATE = `query State($id: ID!) { request(id: $id) { status progress { total done failed pending } } }`;

// ---------------------------------------------------------------------------------------------
// Memory samples.

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : NaN;
};

async function rssSamples(pid: number, count: number, everyMs: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(everyMs);
    const status = procStatus(pid);
    if (!status || !Number.isFinite(status.rssKb)) throw new Error(`cannot read /proc/${pid}/status (the server is gone?)`);
    samples.push(status.rssKb);
  }
  return samples;
}

interface MemoryPoint {
  /** VmRSS samples (KB) as the process runs, no GC forced. */
  rssKb: number[];
  /** VmRSS samples (KB) just after a full GC forced through the inspector. */
  rssAfterGcKb: number[];
  /** process.memoryUsage() in the server after that GC (bytes). */
  usage: NodeJS.MemoryUsage;
}

/**
 * `clearFirst`: a full GC before the plain samples too. The baseline takes it, so the warm-up's garbage
 * is not counted against the subscribers; the idle point does not, so its plain samples are RSS as the
 * server really runs (garbage of subscribing and allocator slack included).
 */
async function memoryPoint(pid: number, inspector: InspectorSession, clearFirst: boolean): Promise<MemoryPoint> {
  if (clearFirst) {
    await inspector.collectGarbage();
    await inspector.collectGarbage();
    await sleep(500);
  }
  const rssKb = await rssSamples(pid, 5, 200);
  await inspector.collectGarbage();
  await inspector.collectGarbage();
  await sleep(300);
  const rssAfterGcKb = await rssSamples(pid, 3, 200);
  const usage = await inspector.memoryUsage();
  return { rssKb, rssAfterGcKb, usage };
}

// ---------------------------------------------------------------------------------------------
// Client processes.

interface ClientProcess {
  child: ChildProcess;
  count: number;
  ready: Promise<Extract<ChildMessage, { type: 'ready' }>>;
  result: Promise<ClientsResult>;
  send(message: ParentMessage): void;
  close(): Promise<void>;
}

function startClientProcess(url: string, requestId: string, firstIndex: number, count: number, concurrency: number, onSubscribed: () => void): ClientProcess {
  const child = fork(path.join(ROOT, 'bench', 'progressClients.ts'), [], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  trackChild(child);
  let resolveReady!: (message: Extract<ChildMessage, { type: 'ready' }>) => void;
  let resolveResult!: (message: ClientsResult) => void;
  let fail!: (error: Error) => void;
  const failed = new Promise<never>((_resolve, reject) => (fail = reject));
  failed.catch(() => undefined);
  const ready = Promise.race([new Promise<Extract<ChildMessage, { type: 'ready' }>>((resolve) => (resolveReady = resolve)), failed]);
  const result = Promise.race([new Promise<ClientsResult>((resolve) => (resolveResult = resolve)), failed]);
  ready.catch(() => undefined);
  result.catch(() => undefined);
  let closing = false;
  child.on('message', (message: ChildMessage) => {
    if (message.type === 'subscribed') onSubscribed();
    else if (message.type === 'ready') resolveReady(message);
    else if (message.type === 'result') resolveResult(message);
    else if (message.type === 'fatal') fail(new Error(`client process failed: ${message.message}`));
  });
  child.once('exit', (code, signal) => {
    if (!closing) fail(new Error(`client process exited early (${code ?? signal})`));
  });
  const send = (message: ParentMessage) => {
    if (child.connected) child.send(message);
  };
  const close = onCleanup('client process', async () => {
    closing = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    send({ type: 'close' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  send({ type: 'start', url, requestId, count, firstIndex, concurrency });
  return { child, count, ready, result, send, close };
}

function timeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${Math.round(ms / 1000)} s`)), ms);
    }),
  ]);
}

/** A few subscribers on a small request run to its end in this process: warms the subscription path, the pool and the finish path. */
async function warmUp(server: ServerChild, images: ImageServer): Promise<number> {
  const started = performance.now();
  const { id } = await uploadCsv(server.base, csvOf(images, settings.warmImages, 'warm'), { autoStart: false });
  const clients: Client[] = [];
  try {
    let subscribedCount = 0;
    let allSubscribed!: () => void;
    const subscribed = new Promise<void>((resolve) => (allSubscribed = resolve));
    const ends = Array.from(
      { length: settings.warmSubscribers },
      () =>
        new Promise<{ completed: boolean; error?: string }>((resolve) => {
          let first = true;
          clients.push(
            openSubscriber(server.wsUrl, id, {
              onEvent() {
                if (!first) return;
                first = false;
                if (++subscribedCount === settings.warmSubscribers) allSubscribed();
              },
              onDone: resolve,
            }),
          );
        }),
    );
    await timeout(subscribed, 30_000, 'warm-up subscriptions');
    await graphql(server.base, PROCESS_REQUEST, { id });
    const outcomes = await timeout(Promise.all(ends), 60_000, 'warm-up request end');
    const bad = outcomes.find((outcome) => !outcome.completed);
    if (bad) throw new Error(`a warm-up subscriber ended without completing: ${bad.error}`);
    const { request } = await graphql(server.base, REQUEST_STATE, { id });
    if (request.status !== 'COMPLETED') throw new Error(`the warm-up request ended ${request.status}: ${JSON.stringify(request.progress)}\n${serverWarnings(server)}`);
  } finally {
    await Promise.allSettled(clients.map((client) => client.dispose()));
  }
  return (performance.now() - started) / 1000;
}

/** The same request with nobody subscribed: what the fan-out costs the processing. Polled every 50 ms. */
async function baselineRun(server: ServerChild, images: ImageServer): Promise<{ seconds: number; imagesPerSecond: number; status: string }> {
  const { id } = await uploadCsv(server.base, csvOf(images, settings.images, 'baseline'), { autoStart: false });
  const started = performance.now();
  await graphql(server.base, PROCESS_REQUEST, { id });
  const deadline = started + settings.runTimeoutSeconds * 1000;
  while (true) {
    const { request } = await graphql(server.base, REQUEST_STATE, { id });
    if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(request.status)) {
      const seconds = (performance.now() - started) / 1000;
      if (request.status !== 'COMPLETED') throw new Error(`the baseline request ended ${request.status}: ${JSON.stringify(request.progress)}\n${serverWarnings(server)}`);
      return { seconds: round(seconds, 2), imagesPerSecond: round(settings.images / seconds, 1), status: request.status };
    }
    if (performance.now() > deadline) throw new Error(`the baseline request did not end within ${settings.runTimeoutSeconds} s: ${JSON.stringify(request)}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Figures.

function stats(values: number[]) {
  const sorted = Float64Array.from(values).sort();
  const list = sorted as unknown as number[];
  return {
    n: sorted.length,
    p50Ms: round(percentile(list, 50), 1),
    p90Ms: round(percentile(list, 90), 1),
    p99Ms: round(percentile(list, 99), 1),
    maxMs: round(sorted.length ? sorted[sorted.length - 1]! : NaN, 1),
    meanMs: round(sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : NaN, 1),
  };
}
type Stats = ReturnType<typeof stats>;

interface ImageInfo {
  finishedAt: number;
  status: string;
  /** When the bench's own LISTEN connection got this image's NOTIFY (Postgres only). */
  notifyAt?: number;
  /** The request's done count in this image's event. */
  done?: number;
}

/** Arrival of one event at one subscriber. */
interface Arrival {
  at: number;
  image: string | null;
  status: string;
  done: number;
}

function arrivalsOf(result: ClientsResult): { index: number; events: Arrival[]; completed: boolean; error?: string }[] {
  return result.subscribers.map((subscriber) => {
    const events: Arrival[] = [];
    for (let i = 0; i < subscriber.events.length; i += 4) {
      const image = subscriber.events[i + 1]!;
      events.push({
        at: result.base + subscriber.events[i]!,
        image: image >= 0 ? result.images[image]! : null,
        status: result.statuses[subscriber.events[i + 2]!]!,
        done: subscriber.events[i + 3]!,
      });
    }
    return { index: subscriber.index, events, completed: subscriber.completed, ...(subscriber.error ? { error: subscriber.error } : {}) };
  });
}

async function readFinishTimes(kind: 'postgres' | 'pglite', url: string | undefined, dataDir: string, requestId: string): Promise<Map<string, { finishedAt: number; status: string }>> {
  const query = `select id::text as id, status, (extract(epoch from finished_at) * 1000)::float8 as finished_ms from images where request_id = $1`;
  let rows: { id: string; status: string; finished_ms: number | null }[];
  if (kind === 'postgres') {
    const sql = postgres(url!, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
    try {
      rows = (await sql.unsafe(query, [requestId])) as unknown as typeof rows;
    } finally {
      await sql.end({ timeout: 5 });
    }
  } else {
    const db = new PGlite(path.join(dataDir, 'pglite'));
    try {
      rows = (await db.query<(typeof rows)[number]>(query, [requestId])).rows;
    } finally {
      await db.close();
    }
  }
  return new Map(rows.filter((row) => row.finished_ms !== null).map((row) => [row.id, { finishedAt: Number(row.finished_ms), status: row.status }]));
}

function versions() {
  const version = (name: string) => {
    try {
      return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  return Object.fromEntries(['graphql-ws', 'ws', 'graphql-yoga', 'graphql', 'postgres', '@electric-sql/pglite', 'sharp'].map((name) => [name, version(name)]));
}

function gitCommit(): string {
  try {
    let commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim()) commit += '-dirty';
    return commit;
  } catch {
    return 'unknown';
  }
}

function eventLoopOf(metrics: Map<string, number> | undefined) {
  const max = metrics?.get('squeeze_process_nodejs_eventloop_lag_max_seconds');
  if (max === undefined) return null;
  return {
    maxMs: round(max * 1000, 1),
    p99Ms: round((metrics!.get('squeeze_process_nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000, 1),
    meanMs: round((metrics!.get('squeeze_process_nodejs_eventloop_lag_mean_seconds') ?? NaN) * 1000, 1),
  };
}

// ---------------------------------------------------------------------------------------------
// The run.

async function run() {
  const S = settings.subscribers;
  log(
    `Squeeze progress fan-out bench${short ? ' (short)' : ''}: ${S} subscribers × ${settings.images} images on ${settings.database}, ` +
      `${settings.clientProcesses} client process(es), ${os.availableParallelism()} cores, load average ${os.loadavg().map((n) => n.toFixed(2)).join(' ')}`,
  );

  if (settings.splitRoles && settings.database === 'pglite') throw new Error('BENCH_SPLIT_ROLES=1 needs Postgres: PGlite lives inside one process');
  let postgresVersion: string | null = null;
  let scratch: ScratchDatabase | undefined;
  if (settings.database === 'postgres') {
    const check = await checkPostgres(settings.postgresAdminUrl);
    if (check !== true) throw new Error(`Postgres at ${settings.postgresAdminUrl} is not reachable (${check}); start it, set BENCH_POSTGRES_URL, or run with BENCH_DB=pglite`);
    scratch = await createScratchDatabase(settings.postgresAdminUrl);
    const database = scratch;
    onCleanup('scratch database', () => database.drop());
    const admin = postgres(settings.postgresAdminUrl, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
    try {
      postgresVersion = String((await admin`select version() as v`)[0]!.v);
    } finally {
      await admin.end({ timeout: 5 });
    }
    log(`  scratch database ${scratch.name}`);
  }

  const variants = await Promise.all(Array.from({ length: settings.imageVariants }, (_, i) => photoJpeg(1000 + i, settings.imageWidth, settings.imageHeight)));
  const images = await startImageServer(variants);
  onCleanup('image server', () => images.close());
  const imageBytes = Math.round(variants.reduce((sum, bytes) => sum + bytes.length, 0) / variants.length);
  log(`  images: ${settings.imageVariants} JPEGs ${settings.imageWidth}×${settings.imageHeight}, ~${Math.round(imageBytes / 1024)} KB each, served from ${images.base}`);

  const serverStartedAt = performance.now();
  // Split roles: the instance that holds the subscribers (ROLE=api) is not the one that compresses (ROLE=worker).
  const [server, worker] = await Promise.all([
    startServer(scratch?.url, settings.splitRoles ? { ROLE: 'api' } : {}),
    settings.splitRoles ? startServer(scratch!.url, { ROLE: 'worker' }) : undefined,
  ]);
  const startupSeconds = (performance.now() - serverStartedAt) / 1000;
  log(`  server pid ${server.pid} at ${server.base}${worker ? ` (ROLE=api), worker pid ${worker.pid} (ROLE=worker)` : ''} (ready in ${startupSeconds.toFixed(1)} s)`);

  const warmupSeconds = await warmUp(server, images);
  log(`  warm-up: ${settings.warmSubscribers} subscribers followed a ${settings.warmImages}-image request to its end in ${warmupSeconds.toFixed(1)} s`);

  const baseline = settings.baseline ? await baselineRun(server, images) : null;
  if (baseline) log(`  baseline, no subscribers: ${settings.images} images ${baseline.status} in ${baseline.seconds.toFixed(2)} s = ${baseline.imagesPerSecond.toFixed(1)} img/s`);

  const { id: requestId, total } = await uploadCsv(server.base, csvOf(images, settings.images, 'run'), { autoStart: false });
  if (total !== settings.images) throw new Error(`the request holds ${total} images, expected ${settings.images}`);
  log(`  request ${requestId}: ${total} images, autoStart false`);

  // ---- Memory: before the clients connect, and with every subscriber idle.
  const inspector = await InspectorSession.connect(server.output);
  const closeInspector = onCleanup('inspector', () => inspector.close());
  await sleep(1_000);
  const before = await memoryPoint(server.pid, inspector, true);
  log(`  server RSS before the subscribers: ${(median(before.rssKb) / 1024).toFixed(1)} MB (after a forced GC ${(median(before.rssAfterGcKb) / 1024).toFixed(1)} MB, heap used ${(before.usage.heapUsed / 2 ** 20).toFixed(1)} MB)`);

  const perProcess = Math.ceil(S / settings.clientProcesses);
  const clientProcesses: ClientProcess[] = [];
  let subscribedSoFar = 0;
  const rampStarted = performance.now();
  for (let first = 0; first < S; first += perProcess) {
    const count = Math.min(perProcess, S - first);
    const concurrency = Math.max(1, Math.round(settings.rampConcurrency / settings.clientProcesses));
    clientProcesses.push(
      startClientProcess(server.wsUrl, requestId, first, count, concurrency, () => {
        subscribedSoFar += 100;
        if (subscribedSoFar % 200 === 0) log(`    … ${subscribedSoFar} subscribed`);
      }),
    );
  }
  const readies = await timeout(Promise.all(clientProcesses.map((c) => c.ready)), Math.max(90_000, S * 100), 'subscribing every client');
  const rampSeconds = (performance.now() - rampStarted) / 1000;
  const subscribed = readies.reduce((sum, r) => sum + r.subscribed, 0);
  const subscribeFailures = readies.reduce((sum, r) => sum + r.failed, 0);
  const firstSubscribeError = readies.find((r) => r.firstError)?.firstError;
  log(`  ${subscribed} of ${S} subscribed in ${rampSeconds.toFixed(1)} s${subscribeFailures ? `; ${subscribeFailures} failed (first: ${firstSubscribeError})` : ''}`);
  if (subscribed === 0) throw new Error(`no subscriber could subscribe: ${firstSubscribeError}\n${serverWarnings(server)}`);

  await sleep(2_000);
  const after = await memoryPoint(server.pid, inspector, false);
  await closeInspector();
  const perSubscriberKb = (a: number, b: number) => round((a - b) / subscribed, 1);
  const memory = {
    subscribers: subscribed,
    rssBeforeMb: round(median(before.rssKb) / 1024, 1),
    rssIdleMb: round(median(after.rssKb) / 1024, 1),
    perSubscriberKb: perSubscriberKb(median(after.rssKb), median(before.rssKb)),
    afterForcedGc: {
      rssBeforeMb: round(median(before.rssAfterGcKb) / 1024, 1),
      rssIdleMb: round(median(after.rssAfterGcKb) / 1024, 1),
      perSubscriberKb: perSubscriberKb(median(after.rssAfterGcKb), median(before.rssAfterGcKb)),
      heapUsedPerSubscriberKb: perSubscriberKb(after.usage.heapUsed / 1024, before.usage.heapUsed / 1024),
      externalPerSubscriberKb: perSubscriberKb(after.usage.external / 1024, before.usage.external / 1024),
    },
    samplesKb: { before, after },
  };
  log(
    `  server RSS with ${subscribed} idle subscribers: ${memory.rssIdleMb} MB → ${memory.perSubscriberKb} KB per subscriber ` +
      `(after a forced GC: ${memory.afterForcedGc.perSubscriberKb} KB RSS, ${memory.afterForcedGc.heapUsedPerSubscriberKb} KB of V8 heap)`,
  );

  // ---- The run: the bench's own LISTEN gives the time each NOTIFY left the commit.
  const notifies = new Map<string, { at: number; done: number; status: string }>();
  let listener: postgres.Sql | undefined;
  if (scratch) {
    listener = postgres(scratch.url, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
    const sql = listener;
    onCleanup('LISTEN connection', () => sql.end({ timeout: 5 }));
    await listener.listen(PROGRESS_CHANNEL, (payload) => {
      const at = wallNow();
      const event = JSON.parse(payload) as ProgressEvent;
      if (event.requestId !== requestId) return;
      if (event.imageId) notifies.set(event.imageId, { at, done: event.done, status: event.status });
    });
  }

  const profiler = settings.cpuProfile ? await Profiler.connect(server.output) : undefined;
  if (profiler) onCleanup('profiler', () => profiler.close());
  await scrapeMetrics(server.base); // resets the server's event-loop histogram
  const cpuBefore = { server: processCpu(server.pid), worker: worker ? processCpu(worker.pid).total : null, postgres: scratch ? postgresBackendCpu(scratch.name) : null };
  let peakRssKb = 0;
  const rssTimer = setInterval(() => {
    const status = procStatus(server.pid);
    if (status && Number.isFinite(status.rssKb)) peakRssKb = Math.max(peakRssKb, status.rssKb);
  }, 100);
  onCleanup('RSS sampler', () => clearInterval(rssTimer));
  await profiler?.start();
  for (const c of clientProcesses) c.send({ type: 'go' });
  const runStartedAt = wallNow();
  await graphql(server.base, PROCESS_REQUEST, { id: requestId });
  log(`  processRequest sent; waiting for every subscriber's end (at most ${settings.runTimeoutSeconds} s)`);

  let timedOut = false;
  let results: ClientsResult[];
  try {
    results = await timeout(Promise.all(clientProcesses.map((c) => c.result)), settings.runTimeoutSeconds * 1000, 'every subscriber completing');
  } catch (error) {
    if (!(error instanceof Error && /did not happen/.test(error.message))) throw error;
    timedOut = true;
    log(`  ! ${error.message}: taking what the subscribers have`);
    for (const c of clientProcesses) c.send({ type: 'finish' });
    results = await timeout(Promise.all(clientProcesses.map((c) => c.result)), 30_000, 'the clients reporting');
  }
  const runEndedAt = wallNow();
  clearInterval(rssTimer);
  const cpuAfter = { server: processCpu(server.pid), worker: worker ? processCpu(worker.pid).total : null, postgres: scratch ? postgresBackendCpu(scratch.name) : null };
  let profile: (ReturnType<typeof summarise> & { file: string }) | undefined;
  if (profiler) {
    const cpuProfile = await profiler.stop();
    profiler.close();
    const file = path.join(os.tmpdir(), `squeeze-progress-${Date.now()}.cpuprofile`);
    await saveProfile(file, cpuProfile);
    profile = { ...summarise(cpuProfile), file };
  }
  const metricsAfter = await scrapeMetrics(server.base);
  const serverLoop = eventLoopOf(metricsAfter);
  const finalState = (await graphql(server.base, REQUEST_STATE, { id: requestId })).request as { status: string; progress: { total: number; done: number; failed: number; pending: number } };
  if (timedOut && !['COMPLETED', 'FAILED', 'CANCELLED'].includes(finalState.status)) {
    throw new Error(`the request did not end within ${settings.runTimeoutSeconds} s: ${JSON.stringify(finalState)}\n${serverWarnings(server)}`);
  }
  const warnings = [serverWarnings(server), worker ? serverWarnings(worker) : ''].filter(Boolean).join('\n');

  // ---- Stop everything that talks to the server, then the server (PGlite can only be read once it has let go).
  await Promise.all(clientProcesses.map((c) => c.close()));
  await listener?.end({ timeout: 5 });
  await Promise.all([server.stop(), worker?.stop()]).catch(() => undefined);
  await worker?.removeDataDir();
  const finishTimes = await readFinishTimes(settings.database, scratch?.url, server.dataDir, requestId).finally(() => server.removeDataDir());
  let databaseTransactions: number | null = null;
  if (scratch) {
    // Read once the server has stopped: every backend flushes its counters when it exits.
    await sleep(500);
    const admin = postgres(settings.postgresAdminUrl, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
    try {
      const [row] = await admin`select (xact_commit + xact_rollback)::float8 as n from pg_stat_database where datname = ${scratch.name}`;
      databaseTransactions = row ? Number(row.n) : null;
    } finally {
      await admin.end({ timeout: 5 });
    }
  }

  // ---- Figures.
  const imagesInfo = new Map<string, ImageInfo>();
  for (const [id, row] of finishTimes) {
    const notify = notifies.get(id);
    imagesInfo.set(id, { finishedAt: row.finishedAt, status: row.status, ...(notify ? { notifyAt: notify.at, done: notify.done } : {}) });
  }
  const subscribers = results.flatMap(arrivalsOf);
  // Without a LISTEN of our own (PGlite), an image's done count comes from any subscriber that got its event.
  for (const subscriber of subscribers) {
    for (const event of subscriber.events) {
      const info = event.image ? imagesInfo.get(event.image) : undefined;
      if (info && info.done === undefined) info.done = event.done;
    }
  }

  const delays: number[] = [];
  const fromNotify: number[] = [];
  const perImage = new Map<string, { first: number; last: number; count: number }>();
  const freshness: number[] = [];
  let unknownImages = 0;
  let freshnessMissing = 0;
  const imageEventsPer: number[] = [];
  const eventsPer: number[] = [];
  let gotCompletedEvent = 0;
  let gotComplete = 0;
  let negative = 0;
  const subscriberErrors: string[] = [];
  const doneImages = [...imagesInfo.values()].filter((info) => info.status === 'DONE' && info.done !== undefined).sort((a, b) => a.done! - b.done!);
  for (const subscriber of subscribers) {
    let imageEvents = 0;
    for (const event of subscriber.events) {
      if (!event.image) continue;
      imageEvents++;
      const info = imagesInfo.get(event.image);
      if (!info) {
        unknownImages++;
        continue;
      }
      const delay = event.at - info.finishedAt;
      if (delay < 0) negative++;
      delays.push(delay);
      if (info.notifyAt !== undefined) fromNotify.push(event.at - info.notifyAt);
      const seen = perImage.get(event.image);
      if (seen) {
        seen.first = Math.min(seen.first, event.at);
        seen.last = Math.max(seen.last, event.at);
        seen.count++;
      } else perImage.set(event.image, { first: event.at, last: event.at, count: 1 });
    }
    imageEventsPer.push(imageEvents);
    eventsPer.push(subscriber.events.length);
    if (subscriber.events.some((event) => event.status === 'COMPLETED')) gotCompletedEvent++;
    if (subscriber.completed) gotComplete++;
    if (subscriber.error) subscriberErrors.push(subscriber.error);
    // How long until this subscriber's view showed each image: its first event whose done count covers it.
    let p = 0;
    for (const info of doneImages) {
      while (p < subscriber.events.length && subscriber.events[p]!.done < info.done!) p++;
      if (p < subscriber.events.length) freshness.push(subscriber.events[p]!.at - info.finishedAt);
      else freshnessMissing++;
    }
  }
  const transactionToNotify = [...imagesInfo.values()].filter((info) => info.notifyAt !== undefined).map((info) => info.notifyAt! - info.finishedAt);
  const spread = [...perImage.entries()].map(([, seen]) => seen.last - seen.first);
  const notifyToFirst = [...perImage.entries()].flatMap(([id, seen]) => {
    const info = imagesInfo.get(id);
    return info?.notifyAt !== undefined ? [seen.first - info.notifyAt] : [];
  });
  const fullFanOutImages = [...perImage.values()].filter((seen) => seen.count === subscribers.length).length;
  const finishTimesSorted = [...imagesInfo.values()].map((info) => info.finishedAt).sort((a, b) => a - b);
  const processingSeconds = finishTimesSorted.length ? (finishTimesSorted[finishTimesSorted.length - 1]! - runStartedAt) / 1000 : NaN;
  const cpu = {
    serverMainThread: round(cpuAfter.server.main - cpuBefore.server.main),
    serverOtherThreads: round(cpuAfter.server.total - cpuBefore.server.total - (cpuAfter.server.main - cpuBefore.server.main)),
    serverByThreadName: cpuByThreadName(cpuBefore.server, cpuAfter.server),
    postgresBackends: cpuAfter.postgres !== null && cpuBefore.postgres !== null ? round(cpuAfter.postgres - cpuBefore.postgres) : null,
    workerInstance: cpuAfter.worker !== null && cpuBefore.worker !== null ? round(cpuAfter.worker - cpuBefore.worker) : null,
    clientProcesses: round(results.reduce((sum, r) => sum + r.cpuSeconds, 0)),
  };
  const clientLoop = {
    p99Ms: round(Math.max(...results.map((r) => r.loop.p99Ms)), 1),
    maxMs: round(Math.max(...results.map((r) => r.loop.maxMs)), 1),
  };
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const figures = {
    requestStatus: finalState.status,
    progress: finalState.progress,
    timedOut,
    runSeconds: round((runEndedAt - runStartedAt) / 1000),
    processingSeconds: round(processingSeconds),
    imagesPerSecond: round(settings.images / processingSeconds),
    delay: stats(delays),
    delayFromNotify: fromNotify.length ? stats(fromNotify) : null,
    transactionAndNotify: transactionToNotify.length ? stats(transactionToNotify) : null,
    notifyToFirstSubscriber: notifyToFirst.length ? stats(notifyToFirst) : null,
    fanOutSpread: stats(spread),
    viewFreshness: { ...stats(freshness), missing: freshnessMissing },
    imageEventsPerSubscriber: {
      min: Math.min(...imageEventsPer),
      avg: round(sum(imageEventsPer) / imageEventsPer.length, 1),
      max: Math.max(...imageEventsPer),
      of: settings.images,
    },
    eventsPerSubscriber: { min: Math.min(...eventsPer), avg: round(sum(eventsPer) / eventsPer.length, 1), max: Math.max(...eventsPer) },
    deliveredImageEvents: sum(imageEventsPer),
    imagesDeliveredToEverySubscriber: fullFanOutImages,
    completedEvent: gotCompletedEvent,
    completedSubscription: gotComplete,
    subscriberErrors: subscriberErrors.length,
    firstSubscriberError: subscriberErrors[0] ?? null,
    eventsOfUnknownImages: unknownImages,
    negativeDelays: negative,
    cpuSeconds: cpu,
    serverEventLoop: serverLoop,
    clientEventLoop: clientLoop,
    serverPeakRssMb: round(peakRssKb / 1024, 1),
    databaseTransactionsOverServerLife: databaseTransactions,
    ...(profile ? { serverMainThreadProfile: profile } : {}),
  };

  // ---- Report.
  const fmt = (value: number | null | undefined, digits = 1) => (value === null || value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits));
  const st = (s: Stats | null) => (s ? `${fmt(s.p50Ms)} / ${fmt(s.p90Ms)} / ${fmt(s.p99Ms)} / ${fmt(s.maxMs)} ms` : '—');
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const rows: [string, string, string, string][] = [
    ['subscribers held (graphql-ws, 1 socket each)', `${subscribed} of ${S}, subscribed in ${fmt(rampSeconds)} s${subscribeFailures ? `, ${subscribeFailures} failed` : ''}`, `${GOALS.subscribers}`, verdict(subscribed >= GOALS.subscribers)],
    ['memory per idle subscriber (ΔVmRSS / n)', `${fmt(memory.perSubscriberKb)} KB (RSS ${memory.rssBeforeMb} → ${memory.rssIdleMb} MB)`, 'measured', ''],
    ['  same, after a forced full GC', `${fmt(memory.afterForcedGc.perSubscriberKb)} KB RSS, ${fmt(memory.afterForcedGc.heapUsedPerSubscriberKb)} KB V8 heap`, '(info)', ''],
    [
      `request: ${settings.images} images, ${subscribers.length} subscribers`,
      `${finalState.status} in ${fmt(processingSeconds, 2)} s = ${fmt(figures.imagesPerSecond)} img/s` +
        (baseline ? ` (no subscribers: ${fmt(baseline.seconds, 2)} s = ${fmt(baseline.imagesPerSecond)} img/s)` : ''),
      '(info)',
      '',
    ],
    ['delay finished_at → subscriber p50/p90/p99/max', st(figures.delay), `p99 ≤ ${GOALS.p99Ms} ms`, verdict(figures.delay.p99Ms <= GOALS.p99Ms)],
  ];
  if (figures.delayFromNotify) rows.push(['  NOTIFY delivered → subscriber', st(figures.delayFromNotify), '(info)', '']);
  if (figures.transactionAndNotify) rows.push(['  finished_at → NOTIFY delivered (txn+notify)', st(figures.transactionAndNotify), '(info)', '']);
  if (figures.notifyToFirstSubscriber) rows.push(['  NOTIFY → first subscriber of an event', st(figures.notifyToFirstSubscriber), '(info)', '']);
  rows.push(['  first → last subscriber of an event', st(figures.fanOutSpread), '(info)', '']);
  rows.push([
    '  view freshness (image → a state covering it)',
    `${st(figures.viewFreshness)}${freshnessMissing ? ` (${freshnessMissing} never)` : ''}`,
    '(info)',
    '',
  ]);
  rows.push([
    'image events per subscriber min/avg/max',
    `${figures.imageEventsPerSubscriber.min} / ${fmt(figures.imageEventsPerSubscriber.avg)} / ${figures.imageEventsPerSubscriber.max} of ${settings.images}; ${fullFanOutImages} images reached all`,
    '(info)',
    '',
  ]);
  rows.push([
    'got the final COMPLETED event',
    `${gotCompletedEvent} of ${subscribers.length} (subscription completed: ${gotComplete}${subscriberErrors.length ? `, ${subscriberErrors.length} errors` : ''})`,
    'all',
    verdict(gotCompletedEvent === S && gotComplete === S),
  ]);
  rows.push([
    'CPU s during the run',
    `server main ${fmt(cpu.serverMainThread, 2)}, other threads ${fmt(cpu.serverOtherThreads, 2)}` +
      `${cpu.workerInstance !== null ? `, worker instance ${fmt(cpu.workerInstance, 2)}` : ''}, ` +
      `postgres ${cpu.postgresBackends === null ? '(PGlite: in the server)' : fmt(cpu.postgresBackends, 2)}, clients ${fmt(cpu.clientProcesses, 2)}`,
    '(info)',
    '',
  ]);
  rows.push([
    'event-loop delay p99/max',
    `server ${serverLoop ? `${fmt(serverLoop.p99Ms)} / ${fmt(serverLoop.maxMs)} ms` : '—'}, clients ${fmt(clientLoop.p99Ms)} / ${fmt(clientLoop.maxMs)} ms`,
    '(info)',
    '',
  ]);
  rows.push(['server RSS peak during the run', `${fmt(figures.serverPeakRssMb)} MB`, '(info)', '']);
  if (databaseTransactions !== null) {
    rows.push(['database transactions (server lifetime)', `${databaseTransactions} (delivered image events: ${figures.deliveredImageEvents})`, '(info)', '']);
  }

  const machine = {
    cores: os.cpus().length,
    availableParallelism: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    totalMemoryGb: round(os.totalmem() / 2 ** 30, 1),
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart,
    loadAverageAtEnd: os.loadavg().map((n) => round(n)),
  };
  const commit = gitCommit();
  const durationSeconds = round((performance.now() - benchStarted) / 1000, 1);
  const header =
    `Squeeze progress fan-out${short ? ' (short)' : ''} — ${machine.cores} cores (${machine.cpuModel}), ${machine.totalMemoryGb} GB, node ${process.version}, ` +
    `${settings.database === 'postgres' ? (postgresVersion?.split(' on ')[0] ?? 'Postgres') : 'PGlite'}, commit ${commit}`;
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]!.length), ['measure', 'figure', 'goal', ''][i]!.length));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  console.log('');
  console.log(header);
  console.log(
    `${S} subscribers (${settings.clientProcesses} client processes) × ${settings.images} images ${settings.imageWidth}×${settings.imageHeight}; ` +
      `${settings.splitRoles ? 'subscribers on a ROLE=api instance, a ROLE=worker instance compresses; ' : ''}` +
      `PROGRESS_COALESCE_MS ${settings.progressCoalesceMs}; WORKER_THREADS ${settings.workerThreads}`,
  );
  console.log(line(['measure', 'figure', 'goal', '']));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(row));
  if (negative) console.log(`! ${negative} delays were negative (clock trouble?)`);
  if (unknownImages) console.log(`! ${unknownImages} events named images without a finished_at`);
  if (subscriberErrors.length) console.log(`! subscriber error: ${subscriberErrors[0]}`);
  if (warnings) console.log(`server output:\n${warnings.split('\n').slice(-20).join('\n')}`);
  if (profile) {
    console.log(`server main thread during the run: busy ${profile.busyMs} of ${profile.totalMs} ms; ${profile.byPackage.map((p) => `${p.name} ${p.ms}`).join(', ')}`);
    console.log(`  profile (open in Chrome DevTools): ${profile.file}`);
  }
  console.log(`run took ${durationSeconds} s`);

  const stamp = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const fileName = `progress-${stamp.getFullYear()}-${pad(stamp.getMonth() + 1)}-${pad(stamp.getDate())}-${pad(stamp.getHours())}${pad(stamp.getMinutes())}${short ? '-short' : ''}.json`;
  const resultsDir = path.join(ROOT, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const report = {
    date: stamp.toISOString(),
    commit,
    durationSeconds,
    machine,
    versions: { node: process.version, postgres: postgresVersion, libvips: (sharp.versions as Record<string, string | undefined>).vips ?? 'unknown', ...versions() },
    settings: { ...settings, postgresAdminUrl: settings.postgresAdminUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') },
    goals: GOALS,
    notes: [
      'delay = arrival at the subscriber (wall clock, client process) − images.finished_at (now() = the START of the finishing transaction): it overstates the delay from the commit by that transaction\'s length',
      'delayFromNotify = arrival − the moment the bench\'s own LISTEN connection got the same NOTIFY (just after the commit): the instance\'s fan-out plus the client process',
      'viewFreshness = for each subscriber and each DONE image, the first arrival of an event whose done count covers it − the image\'s finished_at: it counts images merged away by coalescing',
      'memory per idle subscriber = ΔVmRSS of the server / subscribers, medians of 5 samples; kernel socket buffers are not in VmRSS',
    ],
    startupSeconds: round(startupSeconds),
    warmupSeconds: round(warmupSeconds),
    imageBytes,
    baselineWithoutSubscribers: baseline,
    memory,
    run: figures,
    table: rows.map(([measure, figure, goal, result]) => ({ measure, figure, goal, result })),
    serverWarnings: warnings,
  };
  await writeFile(path.join(resultsDir, fileName), JSON.stringify(report, null, 2) + '\n');
  console.log(`results: ${path.relative(ROOT, path.join(resultsDir, fileName))}`);
}

let failed = false;
try {
  await run();
} catch (error) {
  failed = true;
  console.error(`✗ bench:progress failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  await cleanUp();
}
// Idle keep-alive sockets and timers must not hold the process open.
process.exit(failed ? 1 : 0);
