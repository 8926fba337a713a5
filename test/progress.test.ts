import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { MessageType, stringifyMessage } from 'graphql-ws';
import WebSocket from 'ws';
import { collectSubscription, eventually, photoJpeg, startImageServer, startSqueeze, uploadCsv, type LoopbackServer, type Squeeze } from './support/harness.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import { publishProgress, type ProgressEvent } from '../src/events/progressBus.ts';
import { requestProgress, type ProgressUpdate } from '../src/events/requestProgress.ts';

const FOLLOW = `subscription($id: ID!) { requestProgress(requestId: $id) { status progress { total done failed pending } image { id status } } }`;

type Event = { requestProgress: { status: string; progress: { total: number; done: number; failed: number; pending: number }; image: { id: string; status: string } | null } };

/** An image server whose every answer waits `delayMs`, so a request takes a while. */
async function slowImages(delayMs: number): Promise<LoopbackServer> {
  const photo = await photoJpeg(320, 240);
  return startImageServer(
    Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [
        `/${i}.jpg`,
        (_req, res) => {
          setTimeout(() => {
            res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': photo.length });
            res.end(photo);
          }, delayMs);
        },
      ]),
    ),
  );
}

const csvOf = (images: LoopbackServer, count: number) =>
  ['S. No.,Product Name,Input Image Urls', ...Array.from({ length: count }, (_, i) => `${i + 1},P${i},${images.url}/${i}.jpg`)].join('\n');

describe('live progress', () => {
  let images: LoopbackServer;
  let spaced: LoopbackServer;
  let squeeze: Squeeze;

  beforeAll(async () => {
    images = await slowImages(150);
    // Image i answers after 100 + 250·i ms: no event can catch a subscriber still taking the one before, so none is coalesced.
    const photo = await photoJpeg(160, 120);
    spaced = await startImageServer(
      Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`/${i}.jpg`, (_req, res) => void setTimeout(() => res.end(photo), 100 + 250 * i)])),
    );
    squeeze = await startSqueeze('progress', { env: { PROGRESS_COALESCE_MS: '0', WORKER_THREADS: '1' }, allowHosts: [images.host, spaced.host] });
  });
  afterAll(async () => {
    await squeeze?.close();
    await images?.close();
    await spaced?.close();
  });

  it('sends the same sequence shape over WebSocket and over SSE: snapshot first, one event per image, the end last', async () => {
    const upload = await uploadCsv(squeeze.url, csvOf(images, 6));
    const id = upload.body.data.uploadCsv.request.id;
    const sse = fetch(`${squeeze.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: FOLLOW, variables: { id } }),
    }).then((response) => response.text());
    const ws = await collectSubscription<Event>(squeeze.wsClient(), FOLLOW, { id });
    const sseEvents: Event[] = (await sse)
      .split('\n\n')
      .filter((block) => block.startsWith('event: next'))
      .map((block) => JSON.parse(/^data: (.*)$/m.exec(block)![1]!).data);

    for (const events of [ws.events, sseEvents]) {
      const last = events.at(-1)!.requestProgress;
      expect(last.status).toBe('COMPLETED');
      expect(last.progress).toMatchObject({ total: 6, done: 6, pending: 0 });
      // Each event after the first names the image that changed, and counts only go up.
      for (const event of events.slice(1)) expect(event.requestProgress.image?.status).toBe('DONE');
      const done = events.map((event) => event.requestProgress.progress.done);
      expect(done).toEqual([...done].sort((a, b) => a - b));
      expect(new Set(done).size).toBe(done.length);
    }
    // Both transports end on the same final state.
    expect(sseEvents.at(-1)).toEqual(ws.events.at(-1));
  });

  it('runs one execution per event for subscribers with the same query, and gives another selection its own shape', async () => {
    const upload = await uploadCsv(squeeze.url, csvOf(spaced, 4), { autoStart: false });
    const id = upload.body.data.uploadCsv.request.id;
    const SMALL = `subscription($id: ID!) { requestProgress(requestId: $id) { requestId progress { done } } }`;
    const outcomes = async () => {
      const text = await (await fetch(`${squeeze.url}/metrics`)).text();
      const count = (outcome: string) => Number(new RegExp(`^squeeze_subscription_results_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      return { executed: count('executed'), reused: count('reused'), own: count('own') };
    };
    const before = await outcomes();
    // Three subscribers, each told its snapshot before the request starts, so all three see the same events.
    const snapshots: Promise<void>[] = [];
    const follow = (query: string) => {
      let first!: () => void;
      snapshots.push(new Promise<void>((resolve) => (first = resolve)));
      return new Promise<{ events: any[] }>((resolve, reject) => {
        const events: any[] = [];
        squeeze.wsClient().subscribe(
          { query, variables: { id } },
          {
            next: (result) => {
              expect(result.errors).toBeUndefined();
              events.push(result.data);
              if (events.length === 1) first();
            },
            error: reject,
            complete: () => resolve({ events }),
          },
        );
      });
    };
    const [a, b, small] = [follow(FOLLOW), follow(FOLLOW), follow(SMALL)];
    await Promise.all(snapshots);
    await squeeze.graphql(`mutation($id: ID!) { processRequest(id: $id) { id } }`, { id });
    const [eventsA, eventsB, eventsSmall] = (await Promise.all([a, b, small])).map((run) => run.events);

    expect(eventsA!.at(-1).requestProgress).toMatchObject({ status: 'COMPLETED', progress: { done: 4 } });
    expect(eventsB).toEqual(eventsA);
    expect(eventsSmall).toHaveLength(eventsA!.length);
    eventsSmall!.forEach((event, i) => {
      expect(event).toEqual({ requestProgress: { requestId: id, progress: { done: eventsA![i].requestProgress.progress.done } } });
    });
    // Per event after the snapshots: FOLLOW executed once and reused once, SMALL executed once.
    const shared = eventsA!.length - 1;
    const after = await outcomes();
    expect({ executed: after.executed - before.executed, reused: after.reused - before.reused, own: after.own - before.own }).toEqual({
      executed: 2 * shared,
      reused: shared,
      own: 3,
    });
  });

  it('speaks graphql-ws frame by frame: next messages as graphql-ws writes them, complete last; a client complete stops them', async () => {
    const upload = await uploadCsv(squeeze.url, csvOf(spaced, 4), { autoStart: false });
    const id = upload.body.data.uploadCsv.request.id;
    const socket = new WebSocket(`${squeeze.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    const frames: string[] = [];
    const arrived = (count: number) => eventually(async () => frames.length >= count, 10_000, 10);
    socket.on('message', (data) => frames.push(String(data)));
    await new Promise((resolve) => socket.once('open', resolve));
    try {
      socket.send(JSON.stringify({ type: 'connection_init' }));
      await arrived(1);
      expect(JSON.parse(frames[0]!)).toEqual({ type: 'connection_ack' });
      // Ids are the client's: one that needs escaping, and a second subscription the client will stop.
      const followId = 'follow "1" \\ é';
      const payload = { query: FOLLOW, variables: { id } };
      socket.send(JSON.stringify({ id: followId, type: 'subscribe', payload }));
      socket.send(JSON.stringify({ id: 'stopped', type: 'subscribe', payload }));
      await arrived(3);
      expect(squeeze.app.services.bus.subscriberCount(id)).toBe(2);
      socket.send(JSON.stringify({ id: 'stopped', type: 'complete' }));
      await eventually(async () => squeeze.app.services.bus.subscriberCount(id) === 1, 10_000, 10);
      await squeeze.graphql(`mutation($id: ID!) { processRequest(id: $id) { id } }`, { id });
      await eventually(async () => frames.some((frame) => JSON.parse(frame).type === 'complete'), 30_000, 20);

      const messages = frames.slice(1).map((frame) => JSON.parse(frame));
      // The stopped subscription got its snapshot and nothing after; the other every state, then complete.
      expect(messages.filter((m) => m.id === 'stopped')).toEqual([{ id: 'stopped', type: 'next', payload: messages[0].payload }]);
      const follow = messages.filter((m) => m.id === followId);
      expect(follow.map((m) => m.type)).toEqual([...follow.slice(0, -1).map(() => 'next'), 'complete']);
      expect(follow.at(-2).payload.data.requestProgress).toMatchObject({ status: 'COMPLETED', progress: { done: 4 } });
      // Byte for byte the message graphql-ws makes: id, type, payload, in that order, the id escaped as JSON.
      for (const frame of frames.slice(1)) {
        const message = JSON.parse(frame);
        expect(frame).toBe(stringifyMessage(message.type === 'next' ? { id: message.id, type: MessageType.Next, payload: message.payload } : message));
      }
      expect(squeeze.app.services.bus.subscriberCount(id)).toBe(0);
    } finally {
      socket.close();
    }
  });

  it('stops listening when a subscriber lets go, and ends an unknown id with NOT_FOUND', async () => {
    const upload = await uploadCsv(squeeze.url, csvOf(images, 1), { autoStart: false });
    const id = upload.body.data.uploadCsv.request.id;
    const { bus } = squeeze.app.services;
    const updates = requestProgress(squeeze.app.services, id);
    expect(bus.subscriberCount(id)).toBe(0); // nothing is held until the first next
    expect((await updates.next()).value).toMatchObject({ requestId: id, status: 'PENDING', imageId: null });
    expect(bus.subscriberCount(id)).toBe(1);
    expect(await updates.return!()).toEqual({ value: undefined, done: true });
    expect(bus.subscriberCount(id)).toBe(0);
    expect((await updates.next()).done).toBe(true);

    const unknown = requestProgress(squeeze.app.services, '01a20fb6-af80-7000-8fa8-000000000000');
    await expect(unknown.next()).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(bus.subscriberCount('01a20fb6-af80-7000-8fa8-000000000000')).toBe(0);
    expect((await unknown.next()).done).toBe(true);
  });

  it('sends the update it held back before the final state, not instead of it', async () => {
    const upload = await uploadCsv(squeeze.url, csvOf(images, 2), { autoStart: false });
    const id: string = upload.body.data.uploadCsv.request.id;
    const { bus, database } = squeeze.app.services;
    // A window so long that nothing held back goes out on its own during the test.
    const updates = requestProgress(squeeze.app.services, id, 60_000);
    const snapshot = (await updates.next()).value as ProgressUpdate;
    const arrived: ProgressEvent[] = [];
    const unsubscribe = bus.subscribe(id, (event) => arrived.push(event));
    try {
      // Three changes while the consumer is busy elsewhere (not asking): the second replaces the first,
      // the third is the end.
      const base = { requestId: id, total: 2, failed: 0, cancelled: 0 };
      const v = snapshot.version;
      await publishProgress(database.db, { ...base, imageId: null, status: 'PROCESSING', version: v + 1, done: 0 });
      await publishProgress(database.db, { ...base, imageId: 'first', status: 'PROCESSING', version: v + 2, done: 1 });
      await publishProgress(database.db, { ...base, imageId: 'second', status: 'COMPLETED', version: v + 3, done: 2 });
      await eventually(async () => arrived.length === 3);
      const rest: [number, string | null][] = [];
      for await (const update of updates) rest.push([update.version, update.imageId]);
      expect(rest).toEqual([
        [v + 2, 'first'],
        [v + 3, 'second'],
      ]);
    } finally {
      unsubscribe();
    }
  });

  it('coalesces updates for a subscriber that falls behind, but always sends the final state', async () => {
    const photo = await photoJpeg(200, 150);
    const fast = await startImageServer({ '/p.jpg': (_req, res) => res.end(photo) });
    const squeezeFast = await startSqueeze('progress-coalesce', { allowHosts: [fast.host] });
    try {
      const csv = ['S. No.,Product Name,Input Image Urls', ...Array.from({ length: 12 }, (_, i) => `${i + 1},P${i},${fast.url}/p.jpg?${i}`)].join('\n');
      const upload = await uploadCsv(squeezeFast.url, csv, { autoStart: false });
      const id = upload.body.data.uploadCsv.request.id;
      // A consumer that takes 400 ms over each update, far slower than images finish.
      const updates = requestProgress(squeezeFast.app.services, id, 100);
      const seen: ProgressUpdate[] = [(await updates.next()).value];
      await squeezeFast.graphql(`mutation($id: ID!) { processRequest(id: $id) { id } }`, { id });
      for await (const update of updates) {
        seen.push(update);
        await new Promise((resolve) => setTimeout(resolve, 400));
      }
      const versions = seen.map((update) => update.version);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
      // 12 images and a start: 14 states in all; the slow consumer got fewer, ending on the final one.
      expect(seen.length).toBeLessThan(14);
      expect(seen.at(-1)).toMatchObject({ status: 'COMPLETED', progress: { done: 12, pending: 0 } });
    } finally {
      await squeezeFast.close();
      await fast.close();
    }
  });
});

describe.skipIf(!process.env.DATABASE_URL)('progress across instances on Postgres', () => {
  let images: LoopbackServer;
  let database: TestDatabase;
  let worker: Squeeze;
  let api: Squeeze;

  beforeAll(async () => {
    images = await slowImages(200);
    database = await openTestDatabase('progress-two');
    // Two instances on one database, each with its own connections and LISTEN: A processes, B only serves the API.
    worker = await startSqueeze('progress-a', { env: { PROGRESS_COALESCE_MS: '0', WORKER_THREADS: '1' }, allowHosts: [images.host], database });
    api = await startSqueeze('progress-b', { env: { PROGRESS_COALESCE_MS: '0', ROLE: 'api' }, allowHosts: [images.host], database });
  });
  afterAll(async () => {
    await api?.close();
    await worker?.close();
    await database?.close();
    await images?.close();
  });

  it("shows a subscriber on B every image processed on A, and the end", async () => {
    const upload = await uploadCsv(api.url, csvOf(images, 5));
    const id = upload.body.data.uploadCsv.request.id;
    const { events } = await collectSubscription<Event>(api.wsClient(), FOLLOW, { id });
    expect(events.at(-1)!.requestProgress).toMatchObject({ status: 'COMPLETED', progress: { done: 5 } });
    const imageEvents = events.filter((event) => event.requestProgress.image);
    // Every image after the snapshot: none is missed (the snapshot may already count the first ones).
    expect(imageEvents.length).toBe(5 - events[0]!.requestProgress.progress.done);
  });

  it('still delivers the final state when the LISTEN connection is killed mid-request', async () => {
    const upload = await uploadCsv(api.url, csvOf(images, 10));
    const id = upload.body.data.uploadCsv.request.id;
    const admin = postgres(database.url!, { max: 1, onnotice: () => undefined });
    let killed = 0;
    const result = new Promise<{ events: Event[] }>((resolve, reject) => {
      const events: Event[] = [];
      api.wsClient().subscribe<Event>(
        { query: FOLLOW, variables: { id } },
        {
          next: ({ data }) => {
            events.push(data as Event);
            if (events.length === 2) {
              // Kill every LISTEN session on this database, mid-request.
              void admin`select pg_terminate_backend(pid) as killed from pg_stat_activity
                         where datname = current_database() and query ilike 'listen%' and pid <> pg_backend_pid()`.then((rows) => {
                killed = rows.length;
              });
            }
          },
          error: reject,
          complete: () => resolve({ events }),
        },
      );
    });
    const { events } = await result;
    await admin.end();
    expect(killed).toBeGreaterThan(0);
    expect(events.at(-1)!.requestProgress).toMatchObject({ status: 'COMPLETED', progress: { done: 10, pending: 0 } });
  });
});
