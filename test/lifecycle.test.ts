/**
 * Finishing images, straight against the database: many finishers of one request at once (as the
 * threads of several instances are), leases lost on the way, and a cancel racing them. The counters
 * must add up, the request must end exactly once, and every change must reach the progress channel.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { Readable } from 'node:stream';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { claimImages } from '../src/db/images.ts';
import { getRequest } from '../src/db/requests.ts';
import { ProgressBus, type ProgressEvent } from '../src/events/progressBus.ts';
import { ingestCsv } from '../src/ingest/ingestCsv.ts';
import { cancelRequest, finishImage, type FinishResult, type ImageOutcome } from '../src/requests/lifecycle.ts';
import { createLocalStorage, type Storage } from '../src/storage/localStorage.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/harness.ts';

let database: TestDatabase;
let storage: Storage;
let bus: ProgressBus;
let folder: string;
const config = loadConfig({});

beforeAll(async () => {
  database = await openTestDatabase('lifecycle');
  folder = await mkdtemp(path.join(os.tmpdir(), 'squeeze-lifecycle-'));
  storage = createLocalStorage(folder, 'http://127.0.0.1:1/files');
  bus = new ProgressBus(database);
  await bus.start();
});

afterAll(async () => {
  await bus?.stop();
  await database?.close();
  if (folder) await rm(folder, { recursive: true, force: true });
});

async function newRequest(rows: number): Promise<string> {
  const lines = ['S. No.,Product Name,Input Image Urls'];
  for (let i = 1; i <= rows; i++) lines.push(`${i},Product ${i},"http://127.0.0.1:9/${i}-a.jpg,http://127.0.0.1:9/${i}-b.jpg"`);
  const result = await ingestCsv(
    { database, config },
    { source: Readable.from([lines.join('\n')]), webhookUrl: null, options: { quality: 50, format: 'JPEG' }, autoStart: true, origin: 'graphql' },
  );
  if (!result.ok) throw new Error(`ingest failed: ${JSON.stringify(result)}`);
  return result.request.id;
}

const doneOutcome = (n: number): ImageOutcome => ({
  kind: 'done',
  outputKey: `requests/x/${n}.jpg`,
  inputBytes: 1_000 + n,
  outputBytes: 100 + n,
  width: 10,
  height: 20,
  format: 'jpeg',
});
const failedOutcome: ImageOutcome = { kind: 'failed', code: 'HTTP_ERROR', message: 'HTTP 404', inputBytes: 12 };

function eventsOf(requestId: string): { events: ProgressEvent[]; stop: () => void } {
  const events: ProgressEvent[] = [];
  const stop = bus.subscribe(requestId, (event) => events.push(event));
  return { events, stop };
}

describe('finishing images', () => {
  it('counts every one of many concurrent finishers once, ends the request once, and publishes every change', async () => {
    const requestId = await newRequest(20);
    const { events, stop } = eventsOf(requestId);
    const claimedA = await claimImages(database, 'instance-a', 20, 60_000);
    const claimedB = await claimImages(database, 'instance-b', 20, 60_000);
    expect(claimedA.length + claimedB.length).toBe(40);

    // Every fourth image fails; the rest are done. All finish at once.
    const all = [...claimedA.map((image) => ({ image, worker: 'instance-a' })), ...claimedB.map((image) => ({ image, worker: 'instance-b' }))];
    const results: FinishResult[] = await Promise.all(
      all.map(({ image, worker }, n) => finishImage({ database, storage }, worker, image.id, n % 4 === 0 ? failedOutcome : doneOutcome(n))),
    );

    expect(results.every((result) => result.recorded)).toBe(true);
    expect(results.filter((result) => result.ended)).toHaveLength(1);
    const request = (await getRequest(database.db, requestId))!;
    expect(request).toMatchObject({ status: 'FAILED', total: 40, done: 30, failed: 10, cancelled: 0 });
    const doneIndexes = all.map((_, n) => n).filter((n) => n % 4 !== 0);
    expect(request.inputBytes).toBe(doneIndexes.reduce((sum, n) => sum + 1_000 + n, 0));
    expect(request.outputBytes).toBe(doneIndexes.reduce((sum, n) => sum + 100 + n, 0));
    expect(request.outputCsvKey).toBeTruthy();

    // One event per image plus none lost: versions are distinct, the last one is the end.
    await eventually(async () => events.some((event) => event.status === 'FAILED'));
    stop();
    expect(events).toHaveLength(40);
    expect(new Set(events.map((event) => event.version)).size).toBe(40);
    expect(new Set(events.map((event) => event.imageId)).size).toBe(40);
    const last = events.reduce((a, b) => (b.version > a.version ? b : a));
    expect(last).toMatchObject({ status: 'FAILED', done: 30, failed: 10, total: 40 });
    // Each event's counts are those its change produced: done + failed grows by one per version.
    const sorted = [...events].sort((a, b) => a.version - b.version);
    sorted.forEach((event, i) => expect(event.done + event.failed).toBe(i + 1));

    const images = await database.rows<{ status: string; locked_by: string | null; finished_at: Date | null; output_key: string | null }>(
      sql`select status, locked_by, finished_at, output_key from images where request_id = ${requestId}`,
    );
    expect(images.filter((image) => image.status === 'DONE')).toHaveLength(30);
    expect(images.every((image) => image.locked_by === null && image.finished_at !== null)).toBe(true);
    expect(images.filter((image) => image.status === 'DONE').every((image) => image.output_key?.startsWith('requests/x/'))).toBe(true);
  });

  it('records nothing for an image whose lease another instance holds now', async () => {
    const requestId = await newRequest(2);
    const [image] = await claimImages(database, 'instance-a', 1, 60_000);
    // The lease moved on (expired and claimed by instance B, say).
    await database.rows(sql`update images set locked_by = 'instance-b' where id = ${image!.id}`);
    const before = (await getRequest(database.db, requestId))!;

    const result = await finishImage({ database, storage }, 'instance-a', image!.id, doneOutcome(1));

    expect(result.recorded).toBe(false);
    const after = (await getRequest(database.db, requestId))!;
    expect(after).toMatchObject({ done: 0, failed: 0, version: before.version });
    const [row] = await database.rows<{ status: string; locked_by: string }>(sql`select status, locked_by from images where id = ${image!.id}`);
    expect(row).toMatchObject({ status: 'PROCESSING', locked_by: 'instance-b' });
    // Its other images out of the queue, so the next test claims only its own.
    await cancelRequest({ database, storage }, requestId);
  });

  it('counts an image that comes back after its request was cancelled as cancelled, not done', async () => {
    const requestId = await newRequest(3);
    const [image] = await claimImages(database, 'instance-a', 1, 60_000);
    await cancelRequest({ database, storage }, requestId);

    const result = await finishImage({ database, storage }, 'instance-a', image!.id, doneOutcome(1));

    expect(result).toMatchObject({ recorded: true, status: 'CANCELLED' });
    const request = (await getRequest(database.db, requestId))!;
    expect(request).toMatchObject({ status: 'CANCELLED', done: 0, cancelled: 6, inputBytes: 0 });
  });
});
