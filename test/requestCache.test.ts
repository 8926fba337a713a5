/**
 * The request(id) query is served from memory between changes. A poller must never see a state older
 * than a change that was committed before it asked (beyond the NOTIFY's few milliseconds), whichever
 * instance made the change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestRow } from '../drizzle/schema.ts';
import { startRequest } from '../src/requests/lifecycle.ts';
import { RequestCache } from '../src/requests/requestCache.ts';
import { eventually, startSqueeze, uploadCsv, type Squeeze } from './support/harness.ts';

const row = (id: string, version: number): RequestRow => ({ id, version, status: 'PROCESSING' }) as RequestRow;

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('RequestCache', () => {
  it('answers repeated reads from memory and shares one read between concurrent misses', async () => {
    let loads = 0;
    const cache = new RequestCache(async (id) => (loads++, row(id, 1)));
    const reads = await Promise.all(Array.from({ length: 50 }, () => cache.get('a')));
    expect(reads.every((r) => r?.version === 1)).toBe(true);
    expect(loads).toBe(1);
    await cache.get('a');
    expect(loads).toBe(1);
  });

  it('reads again after a change, and never keeps a row read while a change arrived', async () => {
    let version = 1;
    const gate = deferred<void>();
    let slow = false;
    const cache = new RequestCache(async (id) => {
      const read = row(id, version);
      if (slow) await gate.promise;
      return read;
    });
    expect((await cache.get('a'))?.version).toBe(1);

    version = 2;
    cache.forget('a');
    expect((await cache.get('a'))?.version).toBe(2);

    // A read under way when the next change is announced returns what it read, but is not kept, and
    // a read that starts after the announcement does not join it.
    slow = true;
    cache.forget('a');
    const before = cache.get('a');
    version = 3;
    cache.forget('a');
    slow = false;
    const after = cache.get('a');
    gate.resolve();
    expect((await before)?.version).toBe(2);
    expect((await after)?.version).toBe(3);
    expect((await cache.get('a'))?.version).toBe(3);
  });

  it('keeps nothing for unknown ids, expires entries, and holds at most maxEntries', async () => {
    let now = 0;
    let loads = 0;
    const cache = new RequestCache(async (id) => (loads++, id === 'unknown' ? undefined : row(id, loads)), 1_000, 3, () => now);
    expect(await cache.get('unknown')).toBeUndefined();
    expect(await cache.get('unknown')).toBeUndefined();
    expect(loads).toBe(2);

    const first = await cache.get('a');
    now += 999;
    expect(await cache.get('a')).toBe(first);
    now += 1;
    expect(await cache.get('a')).not.toBe(first);

    await cache.get('b');
    await cache.get('c');
    await cache.get('d');
    expect(cache.size).toBe(3);
    cache.clear();
    expect(cache.size).toBe(0);
  });
});

describe('the request query', () => {
  let squeeze: Squeeze;
  beforeAll(async () => {
    squeeze = await startSqueeze('request-cache', { env: { WORKER_THREADS: '1' } });
  });
  afterAll(async () => squeeze?.close());

  const STATUS = `query ($id: ID!) { request(id: $id) { status progress { total pending } } }`;
  const status = async (id: string) => ((await squeeze.graphql<{ request: { status: string } }>(STATUS, { id })).data?.request.status);

  it('sees a change committed by another instance as soon as its NOTIFY arrives', async () => {
    // Images on a port nobody listens on: started, they fail fast; the request is only read here.
    const upload = await uploadCsv(squeeze.url, 'S. No.,Product Name,Input Image Urls\n1,A,http://127.0.0.1:9/a.jpg\n', { autoStart: false });
    const id = upload.body.data.uploadCsv.request.id as string;
    expect(await status(id)).toBe('PENDING');
    expect(await status(id)).toBe('PENDING');

    // Another instance: the same database, not this instance's cache.
    await startRequest({ database: squeeze.database, storage: squeeze.app.services.storage }, id);

    // Well within the entry's 1 s lifetime: the NOTIFY dropped it, not its age.
    await eventually(async () => (await status(id)) !== 'PENDING', 700, 5);
  });

  it('reads its own writes at once', async () => {
    const upload = await uploadCsv(squeeze.url, 'S. No.,Product Name,Input Image Urls\n1,A,http://127.0.0.1:9/a.jpg\n', { autoStart: false });
    const id = upload.body.data.uploadCsv.request.id as string;
    expect(await status(id)).toBe('PENDING');
    const cancelled = await squeeze.graphql<{ cancelRequest: { status: string } }>(`mutation ($id: ID!) { cancelRequest(id: $id) { status } }`, { id });
    expect(cancelled.data?.cancelRequest.status).toBe('CANCELLED');
    expect(await status(id)).toBe('CANCELLED');
  });
});
