/**
 * The subscribers of `npm run bench:progress`, in a process of their own (forked with IPC by
 * bench/progress.ts), so receiving a thousand sockets' events does not starve the process that
 * measures. Each subscriber is one graphql-ws client (one WebSocket) subscribed to
 * `requestProgress(requestId)`; every event is stamped on arrival with the wall clock at sub-millisecond
 * resolution (performance.timeOrigin + performance.now(), the same clock Postgres's now() reads).
 *
 * Protocol (process.send / 'message'):
 *   parent → child  start {url, requestId, count, firstIndex, concurrency}   open and subscribe, ramped
 *   child → parent  subscribed {count, failed}                              every 100 subscribers
 *   child → parent  ready {subscribed, failed, seconds, firstError}         every subscriber has its first event (or failed)
 *   parent → child  go                                                      the measured run starts (resets the loop monitor)
 *   child → parent  result {...}                                            every subscriber completed or failed
 *   parent → child  finish                                                  send the result now (timeout), complete or not
 *   parent → child  close                                                   dispose every client and exit
 *
 * Only loopback: the parent hands over the server's 127.0.0.1 URL.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export const PROGRESS_SUBSCRIPTION = `subscription Progress($id: ID!) { requestProgress(requestId: $id) { status progress { done total } image { id } } }`;

/** Wall-clock milliseconds with sub-millisecond resolution. */
export const wallNow = () => performance.timeOrigin + performance.now();

export interface ProgressEventData {
  status: string;
  progress: { done: number; total: number };
  image: { id: string } | null;
}

export interface SubscriberHandlers {
  onEvent(event: ProgressEventData, arrivedAt: number): void;
  onDone(outcome: { completed: boolean; error?: string }): void;
}

function describeError(error: unknown): string {
  if (Array.isArray(error)) return error.map((e) => (e as { message?: string }).message ?? String(e)).join('; ');
  if (error && typeof error === 'object' && 'code' in error && 'reason' in error) {
    const close = error as { code: number; reason: string };
    return `socket closed ${close.code}${close.reason ? ` ${close.reason}` : ''}`;
  }
  if (error instanceof Error) return error.message;
  if (error && typeof error === 'object' && 'type' in error) return `socket ${(error as { type: string }).type}`;
  return String(error);
}

/** One graphql-ws client on its own socket with one requestProgress subscription; never retries. */
export function openSubscriber(url: string, requestId: string, handlers: SubscriberHandlers): Client {
  const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true, connectionAckWaitTimeout: 60_000 });
  let done = false;
  const finish = (outcome: { completed: boolean; error?: string }) => {
    if (done) return;
    done = true;
    handlers.onDone(outcome);
  };
  client.subscribe<{ requestProgress: ProgressEventData }>(
    { query: PROGRESS_SUBSCRIPTION, variables: { id: requestId } },
    {
      next: (result) => {
        const arrivedAt = wallNow();
        if (result.errors?.length) return finish({ completed: false, error: describeError(result.errors) });
        if (result.data?.requestProgress) handlers.onEvent(result.data.requestProgress, arrivedAt);
      },
      error: (error) => finish({ completed: false, error: describeError(error) }),
      complete: () => finish({ completed: true }),
    },
  );
  return client;
}

// ---------------------------------------------------------------------------------------------
// The child process.

export interface StartMessage {
  type: 'start';
  url: string;
  requestId: string;
  count: number;
  firstIndex: number;
  concurrency: number;
}
export type ParentMessage = StartMessage | { type: 'go' } | { type: 'finish' } | { type: 'close' };

export interface SubscriberResult {
  index: number;
  /** Flattened [arrivedAt − base (ms), image index or −1, status index, done] per event, in arrival order. */
  events: number[];
  /** Received the subscription's `complete`. */
  completed: boolean;
  error?: string;
}

export interface ClientsResult {
  type: 'result';
  /** Arrival times in `events` are relative to this wall-clock instant (ms). */
  base: number;
  images: string[];
  statuses: string[];
  subscribers: SubscriberResult[];
  /** This process's event-loop delay from `go` to the result: what it adds to the measured delays. */
  loop: { p50Ms: number; p99Ms: number; maxMs: number };
  cpuSeconds: number;
}

export type ChildMessage =
  | { type: 'subscribed'; count: number; failed: number }
  | { type: 'ready'; subscribed: number; failed: number; seconds: number; firstError?: string }
  | ClientsResult
  | { type: 'fatal'; message: string };

function runChild() {
  const send = (message: ChildMessage) => process.send!(message);
  const clients: Client[] = [];
  const subscribers: (SubscriberResult & { ended: boolean; firstEvent?: () => void })[] = [];
  const imageIndex = new Map<string, number>();
  const images: string[] = [];
  const statusIndex = new Map<string, number>();
  const statuses: string[] = [];
  let base = 0;
  let loop: IntervalHistogram | undefined;
  let cpuAtGo = process.cpuUsage();
  let resultSent = false;
  let ended = 0;
  let started = false;

  const indexOf = (map: Map<string, number>, list: string[], key: string) => {
    let index = map.get(key);
    if (index === undefined) {
      index = list.length;
      list.push(key);
      map.set(key, index);
    }
    return index;
  };

  const sendResult = () => {
    if (resultSent) return;
    resultSent = true;
    loop?.disable();
    const cpu = process.cpuUsage(cpuAtGo);
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    send({
      type: 'result',
      base,
      images,
      statuses,
      subscribers: subscribers.map(({ index, events, completed, error }) => ({ index, events, completed, ...(error ? { error } : {}) })),
      loop: loop ? { p50Ms: ms(loop.percentile(50)), p99Ms: ms(loop.percentile(99)), maxMs: ms(loop.max) } : { p50Ms: NaN, p99Ms: NaN, maxMs: NaN },
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    });
  };

  async function start(message: StartMessage) {
    const began = performance.now();
    base = wallNow();
    let subscribed = 0;
    let failed = 0;
    let firstError: string | undefined;
    let next = 0;
    const openOne = (offset: number) =>
      new Promise<void>((resolve) => {
        const subscriber: (typeof subscribers)[number] = { index: message.firstIndex + offset, events: [], completed: false, ended: false };
        subscribers.push(subscriber);
        let first = true;
        clients.push(
          openSubscriber(message.url, message.requestId, {
            onEvent(event, arrivedAt) {
              subscriber.events.push(
                Math.round((arrivedAt - base) * 1000) / 1000,
                event.image ? indexOf(imageIndex, images, event.image.id) : -1,
                indexOf(statusIndex, statuses, event.status),
                event.progress.done,
              );
              if (first) {
                first = false;
                subscribed++;
                if (subscribed % 100 === 0) send({ type: 'subscribed', count: subscribed, failed });
                resolve();
              }
            },
            onDone(outcome) {
              subscriber.completed = outcome.completed;
              if (outcome.error) subscriber.error = outcome.error;
              subscriber.ended = true;
              if (first) {
                first = false;
                failed++;
                firstError ??= outcome.error ?? 'completed before any event';
                resolve();
              }
              ended++;
              if (started && ended === subscribers.length) sendResult();
            },
          }),
        );
      });
    await Promise.all(
      Array.from({ length: Math.min(message.concurrency, message.count) }, async () => {
        while (next < message.count) await openOne(next++);
      }),
    );
    send({ type: 'ready', subscribed, failed, seconds: (performance.now() - began) / 1000, ...(firstError ? { firstError } : {}) });
  }

  process.on('message', (message: ParentMessage) => {
    switch (message.type) {
      case 'start':
        start(message).catch((error: unknown) => send({ type: 'fatal', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }));
        break;
      case 'go':
        started = true;
        cpuAtGo = process.cpuUsage();
        loop = monitorEventLoopDelay({ resolution: 5 });
        loop.enable();
        if (ended === subscribers.length) sendResult();
        break;
      case 'finish':
        sendResult();
        break;
      case 'close':
        void Promise.allSettled(clients.map((client) => client.dispose())).finally(() => {
          process.disconnect();
          process.exit(0);
        });
        break;
    }
  });
  // The parent went away (crashed or killed): nothing to report to, nothing to keep open.
  process.on('disconnect', () => process.exit(0));
}

if (process.send && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) runChild();
