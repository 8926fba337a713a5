import { describe, expect, it } from 'vitest';
import { createGraphQLError, createSchema, createYoga, Repeater } from 'graphql-yoga';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { sharedSubscriptionResultsPlugin, type DirectWriter } from '../schema/sharedSubscriptionResults.ts';

/**
 * A room broadcasts ticks; every subscriber of a tick gets the same `event` object, as every subscriber
 * of one NOTIFY does in Squeeze. The first payload of a subscription is its own snapshot, with no event.
 */
function createRooms() {
  const listeners = new Set<(payload: Tick) => void>();
  let resolved = 0;
  interface Tick {
    n: number;
    event?: object;
  }
  const schema = createSchema({
    typeDefs: /* GraphQL */ `
      type Query { ok: Boolean }
      type Subscription { tick(room: String!): Tick! }
      type Tick { n: Int! double: Int! boom: Int refused: Int }
    `,
    resolvers: {
      Subscription: {
        tick: {
          subscribe: (_root: unknown, { room }: { room: string }) => {
            if (room === 'missing') throw createGraphQLError('No room missing', { extensions: { code: 'NOT_FOUND' } });
            return new Repeater<Tick>(async (push, stop) => {
              listeners.add(push);
              await push({ n: 0 });
              await stop;
              listeners.delete(push);
            });
          },
          resolve: (tick: Tick) => tick,
        },
      },
      Tick: {
        n: (tick: Tick) => {
          resolved++;
          return tick.n;
        },
        double: (tick: Tick) => tick.n * 2,
        boom: () => {
          throw new Error('a secret the client must not see');
        },
        refused: () => {
          throw createGraphQLError('Refused', { extensions: { code: 'BAD_REQUEST' } });
        },
      },
    },
  });
  return {
    schema,
    /** Times Tick.n was resolved: once per execution of a selection holding it. */
    resolved: () => resolved,
    subscribers: () => listeners.size,
    broadcast(n: number) {
      const payload = { n, event: {} };
      for (const push of listeners) void push({ ...payload });
    },
  };
}

type Rooms = ReturnType<typeof createRooms>;

function yogaFor(rooms: Rooms, shared: boolean, outcomes: string[] = []) {
  return createYoga({
    schema: rooms.schema,
    logging: false,
    plugins: shared
      ? [
          sharedSubscriptionResultsPlugin({
            sharedEventOf: (payload) => (payload as { event?: object }).event,
            contextKey: () => '',
            observe: (outcome) => outcomes.push(outcome),
          }),
        ]
      : [],
  });
}

/** An SSE subscription through Yoga in-process: each `next` event's JSON, as the client reads it. */
async function subscribe(yoga: ReturnType<typeof yogaFor>, query: string, variables: Record<string, unknown>) {
  const response = await yoga.fetch('http://squeeze.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query, variables }),
  });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events: unknown[] = [];
  let buffered = '';
  let ended = false;
  const finished = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (block.startsWith('event: next')) events.push(JSON.parse(/^data: (.*)$/m.exec(block)![1]!));
        if (block.startsWith('event: complete')) ended = true;
      }
    }
  })();
  return {
    status: response.status,
    events,
    ended: () => ended,
    /** Resolves once `count` events have arrived. */
    async waitFor(count: number) {
      for (let i = 0; events.length < count && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(events.length).toBe(count);
    },
    async close() {
      await reader.cancel();
      await finished.catch(() => undefined);
    },
  };
}

const FULL = `subscription($room: String!) { tick(room: $room) { n double } }`;
const SMALL = `subscription($room: String!) { tick(room: $room) { double } }`;
const FAILING = `subscription($room: String!) { tick(room: $room) { n boom refused } }`;

describe('shared subscription results', () => {
  it('executes a selection once per event for every subscriber with the same operation, and apart for another selection', async () => {
    const rooms = createRooms();
    const outcomes: string[] = [];
    const yoga = yogaFor(rooms, true, outcomes);
    const a = await subscribe(yoga, FULL, { room: 'r' });
    const b = await subscribe(yoga, FULL, { room: 'r' });
    const c = await subscribe(yoga, SMALL, { room: 'r' });
    await Promise.all([a.waitFor(1), b.waitFor(1), c.waitFor(1)]);
    // Each snapshot is its own: executed per subscriber (two of them select n).
    expect(rooms.resolved()).toBe(2);

    for (const n of [1, 2, 3]) {
      rooms.broadcast(n);
      await Promise.all([a.waitFor(n + 1), b.waitFor(n + 1), c.waitFor(n + 1)]);
    }
    expect(a.events).toEqual([0, 1, 2, 3].map((n) => ({ data: { tick: { n, double: n * 2 } } })));
    expect(b.events).toEqual(a.events);
    expect(c.events).toEqual([0, 1, 2, 3].map((n) => ({ data: { tick: { double: n * 2 } } })));
    // One execution of `n` per broadcast for a and b together: 2 snapshots + 3 events.
    expect(rooms.resolved()).toBe(5);
    expect(outcomes.filter((o) => o === 'own')).toHaveLength(3);
    // Per event: FULL executed once and reused once, SMALL executed once.
    expect(outcomes.filter((o) => o === 'executed')).toHaveLength(6);
    expect(outcomes.filter((o) => o === 'reused')).toHaveLength(3);
    await Promise.all([a.close(), b.close(), c.close()]);
    // Closing the response closes each source stream.
    for (let i = 0; rooms.subscribers() > 0 && i < 100; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(rooms.subscribers()).toBe(0);
  });

  it('never shares a result between different variables', async () => {
    const rooms = createRooms();
    const outcomes: string[] = [];
    const yoga = yogaFor(rooms, true, outcomes);
    // The same room under two spellings of the variables: the rooms' events are shared, the variables are not.
    const a = await subscribe(yoga, FULL, { room: 'r' });
    const b = await subscribe(yoga, FULL, { room: 'other' });
    await Promise.all([a.waitFor(1), b.waitFor(1)]);
    rooms.broadcast(7);
    await Promise.all([a.waitFor(2), b.waitFor(2)]);
    expect(outcomes.filter((o) => o === 'executed')).toHaveLength(2);
    expect(outcomes).not.toContain('reused');
    await Promise.all([a.close(), b.close()]);
  });

  it('gives the same answers, errors and masking included, as the engine alone', async () => {
    const runs = await Promise.all(
      [false, true].map(async (shared) => {
        const rooms = createRooms();
        const yoga = yogaFor(rooms, shared);
        const failing = [await subscribe(yoga, FAILING, { room: 'r' }), await subscribe(yoga, FAILING, { room: 'r' })];
        await Promise.all(failing.map((s) => s.waitFor(1)));
        rooms.broadcast(1);
        await Promise.all(failing.map((s) => s.waitFor(2)));
        const missing = await subscribe(yoga, FULL, { room: 'missing' });
        const badVariable = await subscribe(yoga, FULL, { room: 5 });
        const unknownField = await subscribe(yoga, `subscription { tick(room: "r") { nope } }`, {});
        const answers = [];
        for (const s of [...failing, missing, badVariable, unknownField]) {
          for (let i = 0; !s.ended() && s.events.length === 0 && i < 100; i++) await new Promise((resolve) => setTimeout(resolve, 5));
          answers.push({ status: s.status, events: s.events });
          await s.close();
        }
        return answers;
      }),
    );
    const [engine, shared] = runs;
    expect(shared).toEqual(engine);
    // What the engine answers, for the record: masked, coded, and the setup errors as they were.
    const failing = engine![0]!.events as { data: unknown; errors: { message: string; extensions?: { code?: string } }[] }[];
    expect(failing[1]!.data).toEqual({ tick: { n: 1, boom: null, refused: null } });
    expect(failing[1]!.errors.map((e) => [e.message, e.extensions?.code])).toEqual([
      ['Unexpected error.', 'INTERNAL_SERVER_ERROR'],
      ['Refused', 'BAD_REQUEST'],
    ]);
    expect(JSON.stringify(engine![2])).toContain('NOT_FOUND');
    expect(JSON.stringify(engine![3])).toContain('String cannot represent');
    expect(engine![3]!.status).toBe(400);
  });

  it('hands shared results without errors to a direct writer, in order, and the rest to the iterator, masked', async () => {
    const rooms = createRooms();
    const writers = new WeakMap<object, DirectWriter>();
    const yoga = createYoga({
      schema: rooms.schema,
      logging: false,
      plugins: [
        sharedSubscriptionResultsPlugin({
          sharedEventOf: (payload) => (payload as { event?: object }).event,
          contextKey: () => '',
          directWriterOf: (args) => writers.get(args),
        }),
      ],
    });
    // What a transport does: one subscription, the writer registered under its args, results read in turn.
    const { schema, parse, contextFactory, subscribe: envelopedSubscribe } = yoga.getEnveloped({ request: new Request('http://squeeze.test/graphql') });
    const seen: string[] = [];
    let failNextWrite: Error | undefined;
    const open = async (query: string) => {
      const args: ExecutionArgs = { schema, document: parse(query), variableValues: { room: 'r' }, contextValue: await contextFactory() };
      writers.set(args, {
        write(result, written) {
          seen.push(`written ${JSON.stringify(result)}`);
          const error = failNextWrite;
          failNextWrite = undefined;
          // A slow socket: the next event must wait for this write.
          setTimeout(() => written(error), 20);
        },
      });
      return (await envelopedSubscribe(args)) as AsyncIterableIterator<ExecutionResult>;
    };
    const read = (results: AsyncIterableIterator<ExecutionResult>) =>
      results.next().then(
        (step) => seen.push(step.done ? 'done' : `read ${JSON.stringify(step.value)}`),
        (error: Error) => seen.push(`failed ${error.message}`),
      );
    const waitFor = async (count: number) => {
      for (let i = 0; seen.length < count && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(seen).toHaveLength(count);
    };

    const results = await open(FULL);
    // The snapshot is this subscriber's own: it comes through the iterator (and every hook).
    await read(results);
    expect(seen).toEqual(['read {"data":{"tick":{"n":0,"double":0}}}']);
    // Shared results are written, one at a time and in order, while one `next` stays pending.
    const pending = read(results);
    rooms.broadcast(1);
    rooms.broadcast(2);
    await waitFor(3);
    expect(seen.slice(1)).toEqual(['written {"data":{"tick":{"n":1,"double":2}}}', 'written {"data":{"tick":{"n":2,"double":4}}}']);
    // A failed write closes the source and fails the pending `next`: with the write's error, masked by the
    // envelope's error hooks like any error of the stream.
    failNextWrite = new Error('socket gone');
    rooms.broadcast(3);
    await pending;
    expect(seen.slice(3)).toEqual(['written {"data":{"tick":{"n":3,"double":6}}}', 'failed Unexpected error.']);
    for (let i = 0; rooms.subscribers() > 0 && i < 100; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(rooms.subscribers()).toBe(0);

    // A shared result with errors goes to the iterator, through the masking hook, never to the writer.
    seen.length = 0;
    const failing = await open(FAILING);
    await read(failing);
    const next = read(failing);
    rooms.broadcast(4);
    await next;
    expect(seen).toHaveLength(2);
    expect(seen[1]).toMatch(/^read /);
    const masked = JSON.parse(seen[1]!.slice('read '.length)) as ExecutionResult;
    expect(masked.data).toEqual({ tick: { n: 4, boom: null, refused: null } });
    expect(masked.errors?.map((error) => error.message)).toEqual(['Unexpected error.', 'Refused']);
    await failing.return?.();
  });
});
