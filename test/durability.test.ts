import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openTestDatabase } from './support/database.ts';
import {
  eventually,
  photoJpeg,
  serveBytes,
  startImageServer,
  startSqueeze,
  startWebhookReceiver,
  uploadCsv,
  type LoopbackServer,
  type Squeeze,
  type WebhookReceiver,
} from './support/harness.ts';
import { killAllSqueezes, spawnSqueeze, waitForExit, type SqueezeProcess } from './support/processes.ts';
import { privatePostgresProblem, startPrivatePostgres, type PrivatePostgres } from './support/privatePostgres.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type Sql = ReturnType<typeof postgres>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Serves `bytes` after `delayMs`, like a slow image host. */
function slowly(bytes: Buffer, delayMs: number): Handler {
  const serve = serveBytes(bytes, 'image/jpeg');
  return (req, res) => {
    const timer = setTimeout(() => serve(req, res), delayMs);
    res.on('close', () => clearTimeout(timer));
  };
}

/** A CSV with `perRow` image URLs on each row. */
function csvOf(urls: string[], perRow = 2): string {
  const lines = ['S. No.,Product Name,Input Image Urls'];
  for (let i = 0; i < urls.length; i += perRow) lines.push(`${lines.length},SKU${lines.length},"${urls.slice(i, i + perRow).join(',')}"`);
  return lines.join('\n');
}

async function uploadedId(baseUrl: string, csv: string, variables: Record<string, unknown> = {}): Promise<string> {
  const upload = await uploadCsv(baseUrl, csv, variables);
  expect(upload.status, JSON.stringify(upload.body)).toBe(200);
  expect(upload.body.data?.uploadCsv?.__typename, JSON.stringify(upload.body)).toBe('UploadCsvSuccess');
  return upload.body.data.uploadCsv.request.id;
}

interface RequestState {
  status: string;
  total: number;
  done: number;
  failed: number;
  cancelled: number;
  completed_at: Date | null;
}

/** The request row, read straight from Postgres; undefined while the database is away (restart). */
async function requestRow(pg: Sql, id: string): Promise<RequestState | undefined> {
  try {
    const [row] = await pg<RequestState[]>`select status, total, done, failed, cancelled, completed_at from requests where id = ${id}`;
    return row;
  } catch {
    return undefined;
  }
}

interface ImageState {
  id: string;
  status: string;
  attempts: number;
  locked_by: string | null;
  output_key: string | null;
  output_bytes: number | null;
  input_url: string;
}

function imageRows(pg: Sql, id: string): Promise<ImageState[]> {
  return pg<ImageState[]>`select id, status, attempts, locked_by, output_key, output_bytes, input_url from images where request_id = ${id} order by position, id`;
}

/** The names of the files in DATA_DIR/files/requests/<id>/, sorted. */
async function outputFiles(dataDir: string, requestId: string): Promise<string[]> {
  return (await readdir(path.join(dataDir, 'files', 'requests', requestId))).sort();
}

/**
 * Polls the request row until it has ended. Fails at once, with the child's log, when `worker` (the
 * instance expected to finish it) has died; `onDeath` may instead return a replacement to carry on with.
 */
async function untilEnded(
  pg: Sql,
  requestId: string,
  worker: SqueezeProcess,
  timeoutMs: number,
  onDeath?: (dead: SqueezeProcess) => Promise<SqueezeProcess>,
): Promise<RequestState> {
  let current = worker;
  try {
    return await eventually(
      async () => {
        if (!current.alive) {
          if (!onDeath) throw new Error(`squeeze ${current.name} died:\n${current.output()}`);
          current = await onDeath(current);
        }
        const row = await requestRow(pg, requestId);
        return row && row.status !== 'PROCESSING' ? row : undefined;
      },
      timeoutMs,
      200,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- ${current.name}'s log:\n${current.output()}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Real processes on Postgres: crash, SIGTERM, Postgres restart.
// ---------------------------------------------------------------------------------------------------
/**
 * The postgres.js nextWrite crash (porsager/postgres#1208) is patched at install (src/db/patchPostgresDriver.mjs),
 * so an instance must survive a Postgres restart: any crash fails the test.
 */
const TOLERATE_DRIVER_CRASH = false;
/** See the crash test: a temp file left by a write that SIGKILL cut short is reported, not failed, until storage sweeps them. */
const TOLERATE_TMP_LEFTOVERS = true;

describe.skipIf(!process.env.DATABASE_URL)('durability with real processes on Postgres', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  const later = (fn: () => Promise<unknown>) => cleanups.push(fn);

  afterEach(async () => {
    // Children first (nothing may hold the database or the directories), then the rest in reverse order.
    await killAllSqueezes();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error) => console.warn('cleanup failed:', error));
  });

  async function setup(name: string) {
    const database = await openTestDatabase(name);
    later(() => database.close());
    const pg = postgres(database.url!, { max: 2, onnotice: () => undefined });
    later(() => pg.end({ timeout: 5 }));
    const dataDir = await mkdtemp(path.join(os.tmpdir(), `squeeze-${name}-`));
    later(() => rm(dataDir, { recursive: true, force: true }));
    return { database, pg, dataDir, url: database.url! };
  }

  function childEnv(databaseUrl: string, dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: databaseUrl,
      DATA_DIR: dataDir,
      ALLOW_PRIVATE_NETWORKS: 'true',
      LOG_LEVEL: 'warn',
      LEASE_MS: '3000',
      WORKER_THREADS: '1',
      SHUTDOWN_GRACE_MS: '1000',
      WEBHOOK_RETRY_DELAYS: '0,1,1',
      ...extra,
    };
  }

  it('an instance killed with SIGKILL mid-request: the other finishes every image exactly once, one webhook', { timeout: 90_000 }, async (ctx) => {
    const { pg, dataDir, url } = await setup('crash');
    const photo = await photoJpeg(1024, 768);
    const total = 60;
    const routes: Record<string, Handler> = {};
    // 80–150 ms per image: the two instances take a couple of seconds in all, so the kill lands part-way.
    for (let i = 0; i < total; i++) routes[`/p/${i}.jpg`] = slowly(photo, 80 + ((i * 37) % 71));
    const images = await startImageServer(routes);
    later(() => images.close());
    const receiver = await startWebhookReceiver();
    later(() => receiver.close());

    const env = childEnv(url, dataDir);
    const [a, b] = await Promise.all([spawnSqueeze('A', env), spawnSqueeze('B', env)]);
    const urls = Array.from({ length: total }, (_, i) => `${images.url}/p/${i}.jpg`);
    const requestId = await uploadedId(a.url, csvOf(urls, 3), { webhookUrl: `${receiver.url}/hook` });

    // Kill A while some but not all images are done, and while it holds images of its own.
    await eventually(
      async () => {
        const [row] = await pg<{ done: number; held: number }[]>`
          select count(*) filter (where status = 'DONE')::int as done,
                 count(*) filter (where status = 'PROCESSING' and locked_by like ${`%${a.lockPrefix()}%`})::int as held
          from images where request_id = ${requestId}`;
        return row!.done >= 12 && row!.done <= total - 15 && row!.held > 0;
      },
      30_000,
      20,
    );
    a.child.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    const atKill = await imageRows(pg, requestId);
    const doneAtKill = atKill.filter((image) => image.status === 'DONE').length;
    const heldByA = atKill.filter((image) => image.status === 'PROCESSING' && image.locked_by?.includes(a.lockPrefix())).map((image) => image.id);
    expect(doneAtKill).toBeGreaterThan(0);
    expect(doneAtKill).toBeLessThan(total);
    expect(heldByA.length).toBeGreaterThan(0);

    // B alone finishes: A's leases run out (LEASE_MS 3 s), B's sweep puts them back, B claims them.
    const ended = await untilEnded(pg, requestId, b, 45_000);
    expect(ended.status).toBe('COMPLETED');
    expect([ended.total, ended.done, ended.failed, ended.cancelled]).toEqual([total, total, 0, 0]);
    expect(ended.completed_at).toBeInstanceOf(Date);

    const finalImages = await imageRows(pg, requestId);
    expect(finalImages).toHaveLength(total);
    expect(finalImages.filter((image) => image.status !== 'DONE')).toEqual([]);
    expect(finalImages.every((image) => image.locked_by === null)).toBe(true);
    const rerun = finalImages.filter((image) => image.attempts > 1);
    // Every image A held when it died was done again, by B.
    for (const id of heldByA) expect(finalImages.find((image) => image.id === id)!.attempts).toBeGreaterThan(1);

    // One file per image, each the size the database recorded, plus the output CSV, and nothing else but (see below) temp files.
    const files = await outputFiles(dataDir, requestId);
    const expected = [...finalImages.map((image) => path.basename(image.output_key!)), 'output.csv'].sort();
    // storage.write writes `<key>.<random>.tmp` and renames it: SIGKILL between the two leaves the temp file,
    // and nothing removes it later (src/storage/localStorage.ts). It can only be one of the images A held.
    const leftovers = files.filter((file) => file.endsWith('.tmp'));
    for (const file of leftovers) expect(heldByA.map((id) => `${id}.jpg`)).toContain(file.replace(/\.[0-9a-f]{12}\.tmp$/, ''));
    if (leftovers.length > 0) {
      const note = `SIGKILL landed inside storage.write: temp file(s) left behind: ${leftovers.join(', ')}`;
      console.warn(`[crash test] ${note}`);
      ctx.annotate(note, 'warning');
      if (!TOLERATE_TMP_LEFTOVERS) expect(leftovers).toEqual([]);
    }
    expect(files.filter((file) => !file.endsWith('.tmp'))).toEqual(expected);
    for (const image of finalImages) {
      expect(image.output_key).toBe(`requests/${requestId}/${image.id}.jpg`);
      expect((await stat(path.join(dataDir, 'files', image.output_key!))).size).toBe(image.output_bytes);
    }
    const duplicates = files.length - leftovers.length - expected.length;

    // The request ended once: one outbox row, one webhook, and no second one a few seconds later.
    const deliveries = await pg<{ round: number; event_type: string }[]>`select round, event_type from webhook_deliveries where request_id = ${requestId}`;
    expect(deliveries).toEqual([{ round: 1, event_type: 'request.completed' }]);
    await receiver.waitFor(1, 20_000);
    await sleep(3_000);
    expect(receiver.deliveries).toHaveLength(1);
    const body = JSON.parse(receiver.deliveries[0]!.body);
    expect(body.type).toBe('request.completed');
    expect(body.data.requestId).toBe(requestId);
    expect(body.data.progress).toEqual({ total, done: total, failed: 0, cancelled: 0, pending: 0 });

    console.log(
      `[crash test] images: ${total}; done when A was killed: ${doneAtKill}; held by A at the kill: ${heldByA.length}; ` +
        `re-run after the kill (attempts > 1): ${rerun.length}; duplicate output files: ${duplicates}; ` +
        `temp files left by the killed instance: ${leftovers.length}; webhooks received: ${receiver.deliveries.length}`,
    );
  });

  it('SIGTERM mid-request: exits 0 within seconds, gives its images back at once; another instance completes the request', { timeout: 60_000 }, async () => {
    const { pg, dataDir, url } = await setup('sigterm');
    const photo = await photoJpeg(640, 480);
    const total = 12;
    const routes: Record<string, Handler> = {};
    for (let i = 0; i < total; i++) routes[`/s/${i}.jpg`] = slowly(photo, 1_000);
    const images = await startImageServer(routes);
    later(() => images.close());

    // A long lease: an image found PENDING right after the exit was released, not left to expire.
    const env = childEnv(url, dataDir, { SHUTDOWN_GRACE_MS: '1000', LEASE_MS: '30000' });
    const a = await spawnSqueeze('term-A', env);
    const requestId = await uploadedId(a.url, csvOf(Array.from({ length: total }, (_, i) => `${images.url}/s/${i}.jpg`)));
    await eventually(async () => {
      const rows = await imageRows(pg, requestId);
      return rows.some((image) => image.status === 'DONE') && rows.some((image) => image.status === 'PROCESSING');
    }, 20_000, 50);

    a.child.kill('SIGTERM');
    const exit = await waitForExit(a, 10_000);
    expect(exit.code, a.output()).toBe(0);
    expect(exit.ms).toBeLessThan(6_000);

    const [left] = await pg<{ processing: number }[]>`select count(*)::int as processing from images where status = 'PROCESSING'`;
    expect(left!.processing).toBe(0);
    const afterExit = await imageRows(pg, requestId);
    expect(afterExit.filter((image) => image.locked_by !== null)).toEqual([]);
    const doneByA = afterExit.filter((image) => image.status === 'DONE').length;
    const pendingAfter = afterExit.filter((image) => image.status === 'PENDING').length;
    expect(doneByA + pendingAfter).toBe(total);
    expect(pendingAfter).toBeGreaterThan(0);
    expect((await requestRow(pg, requestId))!.status).toBe('PROCESSING');

    const b = await spawnSqueeze('term-B', env);
    const ended = await untilEnded(pg, requestId, b, 30_000);
    expect(ended.status).toBe('COMPLETED');
    expect(ended.done).toBe(total);
    const finalImages = await imageRows(pg, requestId);
    expect(finalImages.every((image) => image.status === 'DONE')).toBe(true);
    // A released image does not use up an attempt.
    expect(finalImages.map((image) => image.attempts)).toEqual(Array(total).fill(1));
    console.log(`[sigterm test] images: ${total}; done before exit: ${doneByA}; given back at exit: ${pendingAfter}; exit took ${exit.ms} ms`);
  });

  describe('a Postgres restart while a request runs', () => {
    const problem = privatePostgresProblem();
    let cluster: PrivatePostgres | undefined;

    afterAll(async () => {
      await killAllSqueezes();
      await cluster?.destroy();
    });

    it(`completes the request with every image done once${problem ? ` (skipped: ${problem})` : ''}`, { timeout: 90_000 }, async (ctx) => {
      if (problem) ctx.skip(problem);
      try {
        cluster = await startPrivatePostgres();
      } catch (error) {
        ctx.skip(`could not start a private Postgres cluster: ${(error as Error).message}`);
      }
      const pg = postgres(cluster!.url, { max: 1, onnotice: () => undefined });
      later(() => pg.end({ timeout: 2 }));
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'squeeze-pgrestart-'));
      later(() => rm(dataDir, { recursive: true, force: true }));
      const photo = await photoJpeg(640, 480);
      const total = 20;
      const routes: Record<string, Handler> = {};
      for (let i = 0; i < total; i++) routes[`/r/${i}.jpg`] = slowly(photo, 200);
      const images = await startImageServer(routes);
      later(() => images.close());
      const receiver = await startWebhookReceiver();
      later(() => receiver.close());

      const env = childEnv(cluster!.url, dataDir);
      const child = await spawnSqueeze('pg-restart', env);
      const requestId = await uploadedId(child.url, csvOf(Array.from({ length: total }, (_, i) => `${images.url}/r/${i}.jpg`)), {
        webhookUrl: `${receiver.url}/hook`,
      });
      const doneBefore = await eventually(async () => {
        const row = await requestRow(pg, requestId);
        return row && row.done >= 3 ? row.done : undefined;
      }, 30_000, 50);
      expect(doneBefore).toBeLessThan(total);

      const restartStarted = Date.now();
      await cluster!.restart();
      const restartMs = Date.now() - restartStarted;

      // postgres.js 3.4.9 unpatched crashed the whole process in about one restart in four (TypeError
      // "reading 'write'" in nextWrite, porsager/postgres#1154 / #1208). With TOLERATE_DRIVER_CRASH the
      // test would play the supervisor and start a replacement; it is off since the install-time patch.
      const crashes: string[] = [];
      const ended = await untilEnded(pg, requestId, child, 60_000, async (dead) => {
        const log = dead.output();
        if (!TOLERATE_DRIVER_CRASH || !log.includes("Cannot read properties of null (reading 'write')")) {
          throw new Error(`squeeze ${dead.name} died after the Postgres restart:\n${log}\n--- Postgres log:\n${await cluster!.log()}`);
        }
        crashes.push(log.slice(log.indexOf('TypeError'), log.indexOf('TypeError') + 300));
        console.warn(`[postgres restart test] the instance crashed on the restart (postgres.js nextWrite bug); starting a replacement`);
        ctx.annotate(`instance crashed on the Postgres restart (postgres.js 3.4.9 nextWrite, porsager/postgres#1208); replaced`, 'warning');
        return spawnSqueeze(`pg-restart-${crashes.length + 1}`, env);
      });
      expect(ended.status).toBe('COMPLETED');
      expect([ended.done, ended.failed, ended.cancelled]).toEqual([total, 0, 0]);
      const finalImages = await imageRows(pg, requestId);
      expect(finalImages.filter((image) => image.status !== 'DONE')).toEqual([]);
      const files = await outputFiles(dataDir, requestId);
      expect(files).toEqual([...finalImages.map((image) => `${image.id}.jpg`), 'output.csv'].sort());
      const deliveries = await pg`select round from webhook_deliveries where request_id = ${requestId}`;
      expect(deliveries).toHaveLength(1);
      await receiver.waitFor(1, 20_000);
      await sleep(2_000);
      expect(receiver.deliveries).toHaveLength(1);
      console.log(
        `[postgres restart test] images: ${total}; done before the restart: ${doneBefore}; restart took ${restartMs} ms; ` +
          `re-run (attempts > 1): ${finalImages.filter((image) => image.attempts > 1).length}; webhooks: ${receiver.deliveries.length}; ` +
          `instance crashes (driver bug): ${crashes.length}`,
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// In-process, on either database (PGlite, or Postgres when DATABASE_URL is set).
// ---------------------------------------------------------------------------------------------------
describe('flaky downloads and the request flows', () => {
  let images: LoopbackServer;
  let receiver: WebhookReceiver;
  let squeeze: Squeeze;
  let photo: Buffer;
  const served = new Map<string, number>();
  let flipBroken = true;

  /** Counts calls per path; `first` handles the first `times` calls, the photo the rest. */
  const failing = (name: string, times: number, first: Handler): Handler => (req, res) => {
    const count = (served.get(name) ?? 0) + 1;
    served.set(name, count);
    if (count <= times) return first(req, res);
    serveBytes(photo, 'image/jpeg')(req, res);
  };

  beforeAll(async () => {
    photo = await photoJpeg(400, 300);
    const routes: Record<string, Handler> = {
      '/ok.jpg': serveBytes(photo, 'image/jpeg'),
      '/500-twice.jpg': failing('500-twice', 2, (_req, res) => {
        res.writeHead(500);
        res.end('try later');
      }),
      '/reset-once.jpg': failing('reset-once', 1, (req) => req.socket.destroy()),
      // Never answers the first time: the download timeout (1.5 s) cuts it.
      '/stall-once.jpg': failing('stall-once', 1, () => undefined),
      '/flip.jpg': (req, res) => {
        if (flipBroken) {
          res.writeHead(404);
          res.end('not yet');
        } else serveBytes(photo, 'image/jpeg')(req, res);
      },
      // In flight when its request is cancelled, then a transient failure.
      '/slow-500.jpg': (_req, res) => {
        const timer = setTimeout(() => {
          res.writeHead(503);
          res.end('busy');
        }, 2_500);
        res.on('close', () => clearTimeout(timer));
      },
    };
    for (let i = 0; i < 29; i++) routes[`/slow/${i}.jpg`] = slowly(photo, 800);
    for (let i = 0; i < 3; i++) routes[`/later/${i}.jpg`] = slowly(photo, 100);
    images = await startImageServer(routes);
    receiver = await startWebhookReceiver();
    squeeze = await startSqueeze('durability-flows', {
      env: { DOWNLOAD_TIMEOUT_MS: '1500', WEBHOOK_RETRY_DELAYS: '0,1,1' },
      allowHosts: [images.host, receiver.host],
    });
  });

  afterAll(async () => {
    await squeeze?.close();
    await images?.close();
    await receiver?.close();
  });

  const REQUEST = `query($id: ID!) { request(id: $id) { id status completedAt outputCsvUrl progress { total done failed cancelled pending }
    products(first: 30) { edges { node { images { id inputUrl status attempts error { code message } } } } } } }`;

  async function request(id: string) {
    const result = await squeeze.graphql<any>(REQUEST, { id });
    expect(result.errors).toBeUndefined();
    const found = result.data.request;
    return { ...found, images: found.products.edges.flatMap((edge: any) => edge.node.images) as any[] };
  }

  const ended = (id: string, timeoutMs = 30_000) =>
    eventually(async () => {
      const found = await request(id);
      return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(found.status) ? found : undefined;
    }, timeoutMs);

  const hitsOf = (pathPrefix: string) => images.hits.filter((hit) => hit.startsWith(pathPrefix)).length;

  it('retries 5xx, a reset connection and a stalled download with backoff; a 404 fails at once', { timeout: 45_000 }, async () => {
    const paths = ['/ok.jpg', '/500-twice.jpg', '/reset-once.jpg', '/stall-once.jpg', '/missing.jpg'];
    const id = await uploadedId(squeeze.url, csvOf(paths.map((p) => `${images.url}${p}`), 1));
    const found = await ended(id);
    const byPath = Object.fromEntries(found.images.map((image: any) => [image.inputUrl.replace(images.url, ''), image]));
    expect(found.status).toBe('FAILED');
    expect(found.progress).toEqual({ total: 5, done: 4, failed: 1, cancelled: 0, pending: 0 });
    expect(byPath['/ok.jpg']).toMatchObject({ status: 'DONE', attempts: 1, error: null });
    expect(byPath['/500-twice.jpg']).toMatchObject({ status: 'DONE', attempts: 3, error: null });
    expect(byPath['/reset-once.jpg']).toMatchObject({ status: 'DONE', attempts: 2, error: null });
    expect(byPath['/stall-once.jpg']).toMatchObject({ status: 'DONE', attempts: 2, error: null });
    expect(byPath['/missing.jpg']).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'HTTP_ERROR' } });
    expect(byPath['/missing.jpg'].error.message).toContain('404');
    expect([hitsOf('/500-twice.jpg'), hitsOf('/reset-once.jpg'), hitsOf('/stall-once.jpg'), hitsOf('/missing.jpg')]).toEqual([3, 2, 2, 1]);
  });

  it('autoStart: false waits for processRequest; processRequest on an ended or unknown request is refused', async () => {
    const paths = ['/later/0.jpg', '/later/1.jpg', '/later/2.jpg'];
    const upload = await uploadCsv(squeeze.url, csvOf(paths.map((p) => `${images.url}${p}`)), { autoStart: false });
    const created = upload.body.data.uploadCsv.request;
    expect(created.status).toBe('PENDING');
    // The runner polls every second: after 1.5 s it has looked at least once and taken nothing.
    await sleep(1_500);
    expect(hitsOf('/later/')).toBe(0);
    const waiting = await request(created.id);
    expect(waiting.status).toBe('PENDING');
    expect(waiting.progress).toEqual({ total: 3, done: 0, failed: 0, cancelled: 0, pending: 3 });

    const started = await squeeze.graphql<any>(`mutation($id: ID!) { processRequest(id: $id) { id status } }`, { id: created.id });
    expect(started.errors).toBeUndefined();
    expect(started.data.processRequest.status).toBe('PROCESSING');
    const done = await ended(created.id);
    expect(done.status).toBe('COMPLETED');
    expect(done.outputCsvUrl).toMatch(/output\.csv$/);
    expect(hitsOf('/later/')).toBe(3);

    const again = await squeeze.graphql<any>(`mutation($id: ID!) { processRequest(id: $id) { id status } }`, { id: created.id });
    expect(again.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    for (const unknown of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      for (const mutation of ['processRequest(id: $id)', 'cancelRequest(id: $id)', 'retryFailedImages(requestId: $id)']) {
        const missing = await squeeze.graphql<any>(`mutation($id: ID!) { ${mutation} { id } }`, { id: unknown });
        expect(missing.errors?.[0]?.extensions?.code, `${mutation} ${unknown}`).toBe('NOT_FOUND');
      }
    }
    const retryCompleted = await squeeze.graphql<any>(`mutation($id: ID!) { retryFailedImages(requestId: $id) { id } }`, { id: created.id });
    expect(retryCompleted.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
  });

  it('cancelRequest part-way: CANCELLED at once, images not yet claimed are never fetched, in-flight ones are not retried', { timeout: 45_000 }, async () => {
    // The first image is slow and then fails transiently: it is still in flight when the request is cancelled.
    const paths = ['/slow-500.jpg', ...Array.from({ length: 29 }, (_, i) => `/slow/${i}.jpg`)];
    const id = await uploadedId(squeeze.url, csvOf(paths.map((p) => `${images.url}${p}`)), { webhookUrl: `${receiver.url}/hook` });
    await eventually(async () => {
      const found = await request(id);
      const slow = found.images.find((image: any) => image.inputUrl.endsWith('/slow-500.jpg'));
      return found.progress.done >= 2 && slow.status === 'PROCESSING';
    }, 20_000, 50);

    const cancel = await squeeze.graphql<any>(`mutation($id: ID!) { cancelRequest(id: $id) { status progress { total done failed cancelled pending } } }`, { id });
    expect(cancel.errors).toBeUndefined();
    expect(cancel.data.cancelRequest.status).toBe('CANCELLED');
    expect(cancel.data.cancelRequest.progress.cancelled).toBeGreaterThan(0);
    expect(cancel.data.cancelRequest.progress.done).toBeLessThan(paths.length);

    const twice = await squeeze.graphql<any>(`mutation($id: ID!) { cancelRequest(id: $id) { status } }`, { id });
    expect(twice.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    const processCancelled = await squeeze.graphql<any>(`mutation($id: ID!) { processRequest(id: $id) { status } }`, { id });
    expect(processCancelled.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');

    // The images in flight come back and are counted as cancelled (or done, if they finished first).
    const settled = await eventually(async () => {
      const found = await request(id);
      // The request row and its images are separate reads: wait until both show the end.
      return found.progress.pending === 0 && found.images.every((image: any) => ['DONE', 'CANCELLED'].includes(image.status)) ? found : undefined;
    }, 20_000);
    expect(settled.status).toBe('CANCELLED');
    expect(settled.progress.done + settled.progress.cancelled).toBe(paths.length);
    expect(settled.progress.done).toBe(settled.images.filter((image: any) => image.status === 'DONE').length);
    // Give a wrongly re-queued image the time to be claimed again (its backoff is under 1 s).
    await sleep(1_500);
    const unclaimed = settled.images.filter((image: any) => image.attempts === 0);
    expect(unclaimed.length).toBeGreaterThan(0);
    for (const image of unclaimed) {
      expect(image.status).toBe('CANCELLED');
      expect(hitsOf(image.inputUrl.replace(images.url, ''))).toBe(0);
    }
    // The slow image failed transiently after the cancel: it is not put back in line and fetched again.
    expect(hitsOf('/slow-500.jpg')).toBe(1);
    const slow = (await request(id)).images.find((image: any) => image.inputUrl.endsWith('/slow-500.jpg'));
    expect(slow).toMatchObject({ status: 'CANCELLED', attempts: 1 });

    await eventually(async () => receiver.deliveries.some((delivery) => JSON.parse(delivery.body).data.requestId === id), 20_000);
    const webhook = receiver.deliveries.map((delivery) => JSON.parse(delivery.body)).filter((body) => body.data.requestId === id);
    expect(webhook.map((body) => body.type)).toEqual(['request.cancelled']);
  });

  it('retryFailedImages on a FAILED request: back to PROCESSING, then COMPLETED, with a second webhook', { timeout: 45_000 }, async () => {
    flipBroken = true;
    const id = await uploadedId(squeeze.url, csvOf([`${images.url}/ok.jpg`, `${images.url}/flip.jpg`]), { webhookUrl: `${receiver.url}/hook` });
    const failed = await ended(id);
    expect(failed.status).toBe('FAILED');
    expect(failed.progress).toEqual({ total: 2, done: 1, failed: 1, cancelled: 0, pending: 0 });
    const forThis = () => receiver.deliveries.filter((delivery) => JSON.parse(delivery.body).data.requestId === id);
    await eventually(async () => forThis().length >= 1, 20_000);
    expect(JSON.parse(forThis()[0]!.body).type).toBe('request.failed');

    flipBroken = false;
    const retried = await squeeze.graphql<any>(`mutation($id: ID!) { retryFailedImages(requestId: $id) { status completedAt progress { done failed pending } } }`, { id });
    expect(retried.errors).toBeUndefined();
    expect(retried.data.retryFailedImages).toMatchObject({ status: 'PROCESSING', completedAt: null, progress: { done: 1, failed: 0, pending: 1 } });

    const completed = await ended(id);
    expect(completed.status).toBe('COMPLETED');
    expect(completed.progress).toEqual({ total: 2, done: 2, failed: 0, cancelled: 0, pending: 0 });
    expect(completed.images.find((image: any) => image.inputUrl.endsWith('/flip.jpg'))).toMatchObject({ status: 'DONE', attempts: 1, error: null });

    await eventually(async () => forThis().length >= 2, 20_000);
    const [first, second] = forThis();
    const body = JSON.parse(second!.body);
    expect(body.type).toBe('request.completed');
    expect(body.data.status).toBe('COMPLETED');
    expect(body.data.progress).toEqual({ total: 2, done: 2, failed: 0, cancelled: 0, pending: 0 });
    expect(second!.headers['webhook-id']).not.toBe(first!.headers['webhook-id']);
    const rounds = await squeeze.database.rows<{ round: number; event_type: string }>(
      sql`select round, event_type from webhook_deliveries where request_id = ${id} order by round`,
    );
    expect(rounds.map((row) => [Number(row.round), row.event_type])).toEqual([
      [1, 'request.failed'],
      [2, 'request.completed'],
    ]);
  });
});
