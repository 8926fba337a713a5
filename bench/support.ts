/**
 * The bench's moving parts: a loopback image server, a Squeeze server as a child process, process
 * sampling from /proc, GraphQL calls, /metrics scraping and throwaway Postgres databases.
 * Every connection goes to 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { Agent, request } from 'undici';
import type { CorpusImage } from './corpus.ts';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../src/serverNodeFlags.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// The image server: bytes from memory, nothing else.

export interface ImageServer {
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** URL of corpus image `index`; `tag` makes the URL distinct (the bytes are the same). */
  urlOf(index: number, tag: string): string;
  readonly served: { requests: number; bytes: number };
  close(): Promise<void>;
}

export async function startImageServer(images: CorpusImage[]): Promise<ImageServer> {
  const served = { requests: 0, bytes: 0 };
  const server: Server = createServer((req, res) => {
    const match = /^\/img\/(\d+)\//.exec(req.url ?? '');
    const image = match ? images[Number(match[1])] : undefined;
    if (!image) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    served.requests++;
    served.bytes += image.bytes.length;
    res.writeHead(200, { 'content-type': image.contentType, 'content-length': image.bytes.length });
    res.end(image.bytes);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    urlOf: (index, tag) => `${base}/img/${index}/${tag}/${encodeURIComponent(images[index]!.name)}`,
    served,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// ---------------------------------------------------------------------------------------------
// /proc sampling (Linux).

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux this runs on

export interface ProcStatus {
  rssKb: number;
  hwmKb: number;
}

export function procStatus(pid: number): ProcStatus | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
  } catch {
    return undefined;
  }
}

/** utime + stime of a process or thread, in seconds (from /proc/<pid>[/task/<tid>]/stat). */
export function cpuSeconds(statPath: string): number {
  try {
    const text = readFileSync(statPath, 'utf8');
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

export interface ProcessCpu {
  /** The whole process, threads that have exited included. */
  total: number;
  main: number;
  /** Live threads other than the main one, by id. */
  threads: Map<string, { name: string; seconds: number }>;
}

/** CPU seconds of a process: total, its main thread, and each other live thread. */
export function processCpu(pid: number): ProcessCpu {
  const threads = new Map<string, { name: string; seconds: number }>();
  let main = 0;
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    // gone
  }
  for (const tid of tids) {
    const seconds = cpuSeconds(`/proc/${pid}/task/${tid}/stat`);
    if (Number(tid) === pid) {
      main = seconds;
      continue;
    }
    let name = '?';
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      // gone
    }
    threads.set(tid, { name, seconds });
  }
  return { total: cpuSeconds(`/proc/${pid}/stat`), main, threads };
}

/** Named thread that stands for CPU of threads which exited between two readings. */
export const EXITED_THREADS = 'exited threads';

/**
 * CPU seconds each thread name used between two readings of one process. libvips starts and ends
 * worker threads as it goes, and a thread that exits takes its own counters with it (while the process
 * total keeps them): summing live threads by name under-counted "libvips worker" by up to half in some
 * runs. So each thread is diffed by id, and what the process used beyond its live threads is reported
 * as EXITED_THREADS.
 */
export function cpuByThreadName(before: ProcessCpu, after: ProcessCpu): Record<string, number> {
  const byName: Record<string, number> = {};
  let live = after.main - before.main;
  for (const [tid, thread] of after.threads) {
    const delta = thread.seconds - (before.threads.get(tid)?.seconds ?? 0);
    byName[thread.name] = (byName[thread.name] ?? 0) + delta;
    live += delta;
  }
  const exited = after.total - before.total - live;
  if (exited >= 0.01) byName[EXITED_THREADS] = exited;
  for (const name of Object.keys(byName)) byName[name] = Math.round(byName[name]! * 100) / 100;
  return byName;
}

/** CPU seconds of every Postgres backend connected to `database` (found by its process title). */
export function postgresBackendCpu(database: string): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (title.startsWith('postgres:') && title.includes(` ${database} `)) total += cpuSeconds(`/proc/${entry}/stat`);
    } catch {
      // gone, or not ours to read
    }
  }
  return total;
}

/** CPU seconds the whole machine has been busy (every core; steal included: a neighbour VM's time is not ours either). */
export function machineBusySeconds(): number {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Samples a process's VmRSS every `everyMs` until stopped; reports the highest. */
export function sampleRss(pid: number, everyMs = 50): { stop(): { peakRssMb: number; samples: number } } {
  let peakKb = 0;
  let samples = 0;
  const take = () => {
    const status = procStatus(pid);
    if (status && Number.isFinite(status.rssKb)) {
      peakKb = Math.max(peakKb, status.rssKb);
      samples++;
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peakRssMb: peakKb / 1024, samples };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP and GraphQL.

/** Keep-alive connections for every call the bench makes to Squeeze (the latency clients share it). */
export const agent = new Agent({ connections: 128, keepAliveTimeout: 10_000, pipelining: 1 });

export async function graphql<T = any>(base: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await request(`${base}/graphql`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.body.text();
  let body: { data?: T; errors?: { message: string }[] };
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`GraphQL answered ${response.statusCode} with non-JSON: ${text.slice(0, 300)}`);
  }
  if (body.errors?.length) throw new Error(`GraphQL errors: ${body.errors.map((e) => e.message).join('; ')}`);
  if (!body.data) throw new Error(`GraphQL answered ${response.statusCode} without data`);
  return body.data;
}

export const STATUS_QUERY = `query Status($id: ID!) { request(id: $id) { status progress { total done failed pending } } }`;

/** Uploads a CSV by the GraphQL multipart request spec; returns the request id. */
export async function uploadCsv(base: string, csv: string, options: { autoStart: boolean }): Promise<{ id: string; total: number }> {
  const form = new FormData();
  form.set(
    'operations',
    JSON.stringify({
      query: `mutation Upload($file: Upload!, $autoStart: Boolean) {
        uploadCsv(file: $file, autoStart: $autoStart) {
          __typename
          ... on UploadCsvSuccess { request { id status progress { total } } }
          ... on Error { code message }
          ... on CsvInvalidError { problems { line column message } }
        }
      }`,
      variables: { file: null, autoStart: options.autoStart },
    }),
  );
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([csv], { type: 'text/csv' }), 'products.csv');
  const response = await fetch(`${base}/graphql`, { method: 'POST', body: form, headers: { 'x-graphql-yoga-csrf': 'bench' } });
  const text = await response.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`upload answered ${response.status} with non-JSON: ${text.slice(0, 300)}`);
  }
  const result = body?.data?.uploadCsv;
  if (result?.__typename !== 'UploadCsvSuccess') {
    throw new Error(`upload refused (${response.status}): ${JSON.stringify(body?.errors ?? result).slice(0, 1000)}`);
  }
  return { id: result.request.id, total: result.request.progress.total };
}

/** Prometheus text → `name{labels}` → value. Undefined when /metrics is not served. */
export async function scrapeMetrics(base: string): Promise<Map<string, number> | undefined> {
  try {
    const response = await request(`${base}/metrics`, { dispatcher: agent });
    const text = await response.body.text();
    if (response.statusCode !== 200) return undefined;
    const values = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      values.set(line.slice(0, space), Number(line.slice(space + 1)));
    }
    return values;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Squeeze as a child process.

export interface SqueezeProcess {
  base: string;
  pid: number;
  dataDir: string;
  /** The child's stdout and stderr so far (warnings and errors: it runs with LOG_LEVEL=warn). */
  output(): string;
  /** Stops the child; its data folder is removed now, or by removeKeptData when `keepData` (see there). */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

/**
 * Data folders of stopped servers, left until the timed runs are over. Deleting a server's folder
 * (PGlite's files and the outputs: about 1 500 files) just before the next server starts made that
 * server's file creation slow on this machine's ext4, which has no journal: creating an inode then
 * skips every recently deleted one, checking each on disk. Each output's open took 0.9 ms of the
 * compression thread's CPU in the Postgres run after the PGlite one; a file took 12 µs to create on
 * tmpfs and 150–400 µs here within minutes of other deletions. Deleting is the bench's doing, not the
 * server's, so it waits for the end.
 */
const keptData = new Set<string>();

export async function removeKeptData(): Promise<void> {
  for (const dir of keptData) await rm(dir, { recursive: true, force: true });
  keptData.clear();
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  for (const dir of keptData) rmSync(dir, { recursive: true, force: true });
});

/** The environment of a benchmarked server: this process's, less its database and Node options, plus the bench's settings. */
export function squeezeEnv(port: number, dataDir: string, databaseUrl: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  // npm start's environment, unless this process sets otherwise (the limit runs in this process: the two
  // are measured with the same allocator settings).
  const env: Record<string, string> = { ...SERVER_ENV };
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  delete env.DATABASE_URL;
  delete env.NODE_OPTIONS;
  return Object.assign(env, {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    ALLOW_PRIVATE_NETWORKS: 'true',
    LOG_LEVEL: 'warn',
    UV_THREADPOOL_SIZE: '16',
    SHUTDOWN_GRACE_MS: '3000',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...extra,
  });
}

/** An integer setting from the environment, with a clear error for a bad value. */
export function intEnv(name: string, fallback: number, min = 1): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
  return value;
}

/** BENCH_SHORT=1 (or --short): the small run CI uses to prove a benchmark works. */
export const isShort = process.env.BENCH_SHORT === '1' || process.env.BENCH_SHORT === 'true' || process.argv.includes('--short');

export { SERVER_NODE_FLAGS };

export async function startSqueeze(options: { databaseUrl?: string; name: string; env?: Record<string, string>; nodeArgs?: string[] }): Promise<SqueezeProcess> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `squeeze-bench-${options.name}-`));
  const port = await freePort();
  const env = squeezeEnv(port, dataDir, options.databaseUrl, options.env);
  // As `npm start` runs it (its V8 settings, then the compiled JavaScript), so the figures are production's.
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...(options.nodeArgs ?? []), 'src/start.mjs'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + 60_000;
  while (true) {
    if (child.exitCode !== null) throw new Error(`Squeeze exited with ${child.exitCode} while starting:\n${output}`);
    try {
      const response = await request(`${base}/readyz`, { dispatcher: agent });
      await response.body.text();
      if (response.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Squeeze did not become ready in 60 s:\n${output}`);
    }
    await sleep(100);
  }

  return {
    base,
    pid: child.pid!,
    dataDir,
    output: () => output,
    async stop(options = {}) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      children.delete(child);
      if (options.keepData) keptData.add(dataDir);
      else await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Throwaway Postgres databases.

export interface ScratchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createScratchDatabase(adminUrl: string): Promise<ScratchDatabase> {
  const name = `squeeze_bench_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.href,
    async drop() {
      const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
      try {
        await sql.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  };
}

/** True when Postgres answers at `adminUrl`; the error message otherwise. */
export async function checkPostgres(adminUrl: string): Promise<true | string> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
  try {
    await sql`select 1`;
    return true;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

// ---------------------------------------------------------------------------------------------
// Numbers.

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const round = (value: number, digits = 2) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : value);
