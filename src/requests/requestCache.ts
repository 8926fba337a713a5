import type { RequestRow } from '../../drizzle/schema.ts';
import type { ProgressBus } from '../events/progressBus.ts';

/**
 * Request rows read by the `request(id)` query, kept in memory between changes.
 *
 * Why: dashboards and scripts poll a request's status, many at once, while it processes. Each poll was
 * a database round trip plus Drizzle building the same select (about a third of the 0.8 ms of
 * main-thread CPU per status query, npm run bench), and 50 pollers ask for one row that changes a few
 * times a second.
 *
 * Correctness rests on one rule: every statement that changes a request row also sends a progress
 * NOTIFY in the same transaction (src/requests/lifecycle.ts, the only writer after ingest). Every
 * instance LISTENs, so an entry is dropped as soon as any instance commits a change to its request.
 * Loads that were under way when a change arrived are not kept (they may have read the old row), and
 * concurrent misses for one id share one read. Mutations made through this instance drop their entry
 * when they commit (read your own writes without waiting for the NOTIFY). When the LISTEN connection
 * comes back after a loss, everything is dropped; and no entry lives longer than `ttlMs`, which bounds
 * how stale a read can be while that connection is down and its loss not yet noticed.
 */
export class RequestCache {
  readonly #entries = new Map<string, { row: RequestRow; expiresAt: number }>();
  readonly #loading = new Map<string, { promise: Promise<RequestRow | undefined>; stale: boolean }>();

  constructor(
    private readonly load: (id: string) => Promise<RequestRow | undefined>,
    private readonly ttlMs = 1_000,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Drops entries whenever any instance changes a request; returns the unsubscribe. */
  follow(bus: Pick<ProgressBus, 'subscribeAll'>): () => void {
    return bus.subscribeAll(
      (event) => this.forget(event.requestId),
      () => this.clear(),
    );
  }

  get(id: string): Promise<RequestRow | undefined> {
    const entry = this.#entries.get(id);
    if (entry) {
      if (entry.expiresAt > this.now()) return Promise.resolve(entry.row);
      this.#entries.delete(id);
    }
    const pending = this.#loading.get(id);
    if (pending && !pending.stale) return pending.promise;
    const load = {
      stale: false,
      promise: this.load(id).finally(() => {
        if (this.#loading.get(id) === load) this.#loading.delete(id);
      }),
    };
    this.#loading.set(id, load);
    return load.promise.then((row) => {
      if (row && !load.stale) this.#store(row);
      return row;
    });
  }

  /** The request changed: the next read goes to the database. */
  forget(id: string): void {
    this.#entries.delete(id);
    const pending = this.#loading.get(id);
    if (pending) pending.stale = true;
  }

  clear(): void {
    this.#entries.clear();
    for (const pending of this.#loading.values()) pending.stale = true;
  }

  get size(): number {
    return this.#entries.size;
  }

  #store(row: RequestRow): void {
    this.#entries.delete(row.id);
    if (this.#entries.size >= this.maxEntries) {
      // The oldest stored first (a Map keeps insertion order).
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(row.id, { row, expiresAt: this.now() + this.ttlMs });
  }
}
