import type { RequestRow } from '../../drizzle/schema.ts';
import { getRequest } from '../db/requests.ts';
import { ServiceError } from '../errors.ts';
import { hasEnded, progressOf, type Progress, type RequestStatus } from '../statuses.ts';
import type { Services } from '../services.ts';
import type { ProgressEvent } from './progressBus.ts';

export interface ProgressUpdate {
  readonly requestId: string;
  readonly status: RequestStatus;
  readonly progress: Readonly<Progress>;
  /** The image whose change caused this update; null on the first one. */
  readonly imageId: string | null;
  readonly version: number;
  /**
   * The NOTIFY this update came from: one object shared by every subscriber of the request, so
   * resolvers can read the image or request once per event instead of once per subscriber.
   */
  readonly event?: ProgressEvent;
}

/**
 * One update per NOTIFY, shared by every subscriber it reaches (updates are never changed once made):
 * with 1 000 subscribers that is 1 000 fewer pairs of objects per event for the collector.
 */
const updatesOfEvents = new WeakMap<ProgressEvent, ProgressUpdate>();
function updateOfEvent(event: ProgressEvent): ProgressUpdate {
  let update = updatesOfEvents.get(event);
  if (!update) updatesOfEvents.set(event, (update = updateOf(event, event.imageId)));
  return update;
}

function updateOf(source: RequestRow | ProgressEvent, imageId: string | null): ProgressUpdate {
  const fromEvent = 'requestId' in source;
  return {
    requestId: fromEvent ? source.requestId : source.id,
    status: source.status as RequestStatus,
    progress: progressOf(source),
    imageId,
    version: source.version,
    ...(fromEvent ? { event: source } : {}),
  };
}

/**
 * The current state of a request, then one update per change, ending after the state whose status has
 * ended. Listening starts (on the first `next`) before the snapshot is read, so no change falls between
 * the two; updates at or below the version already sent are dropped. When the listen connection was lost
 * and came back, the state is read again, so a subscriber never waits for an end that already happened.
 * Unknown ids end the iterator with a NOT_FOUND ServiceError.
 *
 * A hand-written iterator rather than a Repeater: with 1 000 subscribers every NOTIFY is pushed 1 000
 * times, and a Repeater push makes eight promises: 4 µs of main-thread self time per push in a profiled
 * bench:progress run (595 ms for 147 614 pushes), before the microtasks and garbage it left.
 */
export function requestProgress(
  services: Pick<Services, 'database' | 'bus'>,
  requestId: string,
  coalesceMs = 0,
): AsyncIterableIterator<ProgressUpdate> {
  return new ProgressStream(services, requestId, coalesceMs);
}

class ProgressStream implements AsyncIterableIterator<ProgressUpdate> {
  #version = -1;
  /** Updates that arrived while the snapshot was being read; undefined once it has been sent. */
  #early: ProgressUpdate[] | undefined = [];
  /** Sent but not yet taken by the consumer: at most one update and the final state. */
  #queue: ProgressUpdate[] = [];
  /** Calls to next waiting for an update (for await makes one at a time). */
  #waiting: { resolve(step: IteratorResult<ProgressUpdate>): void; reject(error: unknown): void }[] = [];
  #started = false;
  /** No more updates will be sent; the iterator ends once the queue is empty. */
  #stopped = false;
  #error: unknown;
  #unsubscribe: (() => void) | undefined;
  // Coalescing under load: while a subscriber is not waiting for its next update (a slow client, a full
  // socket), newer updates replace each other and the latest goes out once it asks, at most one per
  // coalesceMs. A subscriber that keeps up gets every update at once. The final state is never held
  // back or replaced, and the update held when it comes goes out just before it.
  #lastSentAt = 0;
  #held: ProgressUpdate | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly services: Pick<Services, 'database' | 'bus'>,
    private readonly requestId: string,
    private readonly coalesceMs: number,
  ) {}

  [Symbol.asyncIterator]() {
    return this;
  }

  next(): Promise<IteratorResult<ProgressUpdate>> {
    if (!this.#started) this.#start();
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve({ value: queued, done: false });
    if (this.#stopped) return this.#end();
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      // Caught up: what was held back while the consumer was busy goes out now (or when its turn comes).
      if (this.#held) this.#flushHeld();
    });
  }

  return(): Promise<IteratorResult<ProgressUpdate>> {
    this.#stop();
    this.#queue = [];
    this.#error = undefined;
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<ProgressUpdate>> {
    this.#stop();
    this.#queue = [];
    return Promise.reject(error);
  }

  #start() {
    this.#started = true;
    const receive = (update: ProgressUpdate) => (this.#early ? this.#early.push(update) : this.#deliver(update));
    this.#unsubscribe = this.services.bus.subscribe(
      this.requestId,
      (event) => receive(updateOfEvent(event)),
      () => void this.#readState().then(receive, () => undefined),
    );
    this.#readState().then(
      (snapshot) => {
        this.#deliver(snapshot);
        const buffered = this.#early!;
        this.#early = undefined;
        buffered.forEach((update) => this.#deliver(update));
      },
      (error) => {
        this.#error = error;
        this.#stop();
      },
    );
  }

  async #readState(): Promise<ProgressUpdate> {
    const row = await getRequest(this.services.database.db, this.requestId);
    if (!row) throw new ServiceError('NOT_FOUND', `Request ${this.requestId} not found`);
    return updateOf(row, null);
  }

  #deliver(update: ProgressUpdate) {
    if (this.#stopped || update.version <= this.#version) return;
    this.#version = update.version;
    if (hasEnded(update.status)) {
      // What was held back goes out before the end rather than being replaced by it: otherwise a
      // small request whose last images finish together showed one of them never (done 1, 2, then 4).
      if (this.#held) this.#send(this.#held);
      return this.#send(update);
    }
    if (this.#waiting.length) this.#send(update);
    else this.#held = update;
  }

  #send(update: ProgressUpdate) {
    this.#held = undefined;
    this.#lastSentAt = Date.now();
    const waiting = this.#waiting.shift();
    if (waiting) waiting.resolve({ value: update, done: false });
    else this.#queue.push(update);
    if (hasEnded(update.status)) this.#stop();
  }

  #flushHeld() {
    if (this.#timer) return;
    const wait = this.#lastSentAt + this.coalesceMs - Date.now();
    if (wait <= 0) return this.#send(this.#held!);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#held && this.#waiting.length) this.#send(this.#held);
    }, wait);
  }

  /** Stops listening; what is queued is still handed out, then the iterator ends. */
  #stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#held = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const { resolve, reject } of waiting) this.#end().then(resolve, reject);
  }

  #end(): Promise<IteratorResult<ProgressUpdate>> {
    const error = this.#error;
    this.#error = undefined;
    return error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(error);
  }
}
