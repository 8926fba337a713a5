import { EventEmitter } from 'node:events';
import { sql, type SQL } from 'drizzle-orm';
import type { Database, Queryable } from '../db/client.ts';
import { notify } from '../db/client.ts';
import type { RequestStatus } from '../statuses.ts';

export const PROGRESS_CHANNEL = 'squeeze_progress';

/** What changed: ids and counts only, so a NOTIFY stays far under its 8 000-byte limit. */
export interface ProgressEvent {
  requestId: string;
  /** The image whose change caused the event; null for request-level changes (start, cancel, retry). */
  imageId: string | null;
  status: RequestStatus;
  /** The request's version after the change: subscribers drop events older than what they have shown. */
  version: number;
  total: number;
  done: number;
  failed: number;
  cancelled: number;
}

/** Queues the event in the caller's transaction; every instance's listener gets it after commit. */
export function publishProgress(on: Queryable, event: ProgressEvent) {
  return notify(on, PROGRESS_CHANNEL, JSON.stringify(event));
}

/** The same NOTIFY as an SQL expression, to ride along in another statement (`returning …`). */
export function notifyProgressSql(event: ProgressEvent): SQL {
  return sql`pg_notify(${PROGRESS_CHANNEL}, ${JSON.stringify(event)})`;
}

/**
 * Feeds NOTIFYs from the database (every instance's changes) to local subscribers by request id.
 * On PGlite the same path runs in-process.
 */
export class ProgressBus {
  readonly #emitter = new EventEmitter();
  #unlisten: (() => Promise<void>) | undefined;
  #resyncListeners = new Set<() => void>();
  readonly #everyEventListeners = new Set<(event: ProgressEvent) => void>();

  constructor(private readonly database: Database) {
    this.#emitter.setMaxListeners(0);
  }

  async start(): Promise<void> {
    this.#unlisten = await this.database.listen(
      PROGRESS_CHANNEL,
      (payload) => {
        let event: ProgressEvent;
        try {
          event = JSON.parse(payload) as ProgressEvent;
        } catch {
          return;
        }
        for (const listener of this.#everyEventListeners) listener(event);
        this.#emitter.emit(event.requestId, event);
      },
      // Messages sent while the listen connection was down are lost: subscribers re-read their state.
      () => this.#resyncListeners.forEach((resync) => resync()),
    );
  }

  subscribe(requestId: string, listener: (event: ProgressEvent) => void, onResync?: () => void): () => void {
    this.#emitter.on(requestId, listener);
    if (onResync) this.#resyncListeners.add(onResync);
    return () => {
      this.#emitter.off(requestId, listener);
      if (onResync) this.#resyncListeners.delete(onResync);
    };
  }

  /** Every request's events (before their own subscribers get them), and the resyncs. */
  subscribeAll(listener: (event: ProgressEvent) => void, onResync?: () => void): () => void {
    this.#everyEventListeners.add(listener);
    if (onResync) this.#resyncListeners.add(onResync);
    return () => {
      this.#everyEventListeners.delete(listener);
      if (onResync) this.#resyncListeners.delete(onResync);
    };
  }

  subscriberCount(requestId: string): number {
    return this.#emitter.listenerCount(requestId);
  }

  async stop(): Promise<void> {
    await this.#unlisten?.();
    this.#unlisten = undefined;
  }
}
