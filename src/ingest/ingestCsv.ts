import { eq, sql } from 'drizzle-orm';
import { requests, type RequestRow } from '../../drizzle/schema.ts';
import type { Config } from '../config.ts';
import type { Database, Db } from '../db/client.ts';
import { batchRows, deleteProductsOf, insertImages, insertProductBatch, insertProducts } from '../db/products.ts';
import { uuidv7 } from '../ids.ts';
import { parseProductCsv, type CsvProblem, type ParsedProduct } from './parseProductCsv.ts';

export interface UploadOptions {
  quality: number;
  format: 'JPEG' | 'WEBP' | 'AVIF' | 'PNG';
  maxWidth?: number;
  maxHeight?: number;
}

export interface IngestInput {
  source: AsyncIterable<Uint8Array | string>;
  webhookUrl: string | null;
  options: UploadOptions;
  autoStart: boolean;
  /** graphql or rest: the route that created it chooses the webhook body. */
  origin: 'graphql' | 'rest';
}

export type IngestResult =
  | { ok: true; request: RequestRow }
  | { ok: false; reason: 'invalid'; problems: CsvProblem[] }
  | { ok: false; reason: 'tooLarge'; message: string };

class RollBack extends Error {}

/** Batches whose inserts may be in flight at once, each on its connection. */
const MAX_BATCHES_IN_FLIGHT = 2;

type Transaction = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * A second transaction, on a connection of its own, that takes an ingest's products while the
 * ingest's own transaction takes the request and its images: Postgres inserts both at once on two
 * backends instead of one after the other. Ingest of 100 000 rows × 3 URLs (bench:ingest, 2–3 runs
 * each, this 2-core machine): one connection 5.0–5.3 s, with ~3.2 s of Postgres CPU on one backend
 * and the main thread waiting for it 2.5 s; two connections 4.4–5.1 s, the main thread waiting 1.2–1.4 s.
 * Both commit or neither: the products commit first, then the request with its images. A failure of
 * the request's commit after the products committed deletes them again; a crash between the two
 * commits (a moment) can leave only products without their request, which nothing reads (every read
 * of products goes through its request) and nothing queues (images do). The other way round could
 * leave claimable images without a request.
 * At most MAX_COMPANIONS ingests per database use one; the others use their one connection, so
 * ingests cannot take the whole pool and wait on each other for a second connection.
 */
interface Companion {
  tx: Transaction;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  release(): void;
}

const MAX_COMPANIONS = 2;
const companionsInUse = new WeakMap<Database, number>();

async function companionFor(database: Database): Promise<Companion | undefined> {
  if (database.driver !== 'postgres') return undefined;
  const inUse = companionsInUse.get(database) ?? 0;
  if (inUse >= MAX_COMPANIONS) return undefined;
  companionsInUse.set(database, inUse + 1);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    companionsInUse.set(database, (companionsInUse.get(database) ?? 1) - 1);
  };
  let opened!: (tx: Transaction) => void;
  let decide!: (commit: boolean) => void;
  const ready = new Promise<Transaction>((resolve) => (opened = resolve));
  const decision = new Promise<boolean>((resolve) => (decide = resolve));
  const done = database.db.transaction(async (tx) => {
    opened(tx);
    if (!(await decision)) throw new RollBack();
  });
  done.catch(() => undefined);
  try {
    const tx = await Promise.race([
      ready,
      done.then(() => {
        throw new Error('the products transaction ended before it was used');
      }),
    ]);
    return {
      tx,
      commit: () => {
        decide(true);
        return done;
      },
      rollback: async () => {
        decide(false);
        await done.catch(() => undefined);
      },
      release,
    };
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * Validates and stores one uploaded CSV: every row or none. On Postgres the rows are inserted while the
 * file streams in, inside one transaction that rolls back at the first problem; on PGlite, which has a
 * single connection that a long transaction would hold against every other query, the file is parsed
 * first and then stored in one short transaction.
 */
export async function ingestCsv(deps: { database: Database; config: Config }, input: IngestInput): Promise<IngestResult> {
  const { database, config } = deps;
  const limits = { maxBytes: config.maxCsvBytes, maxRows: config.maxCsvRows, maxUrlsPerRow: config.maxUrlsPerRow };
  const requestId = uuidv7();
  const newRequest = {
    id: requestId,
    status: input.autoStart ? 'PROCESSING' : 'PENDING',
    options: input.options,
    webhookUrl: input.webhookUrl,
    source: input.origin,
    total: 0,
    startedAt: input.autoStart ? sql`now()` : null,
  } as const;

  type OnBatch = (batch: readonly ParsedProduct[]) => Promise<void>;
  let failure: IngestResult | undefined;
  // Inserts the request, then its products and images as `fill` hands over batches; rolls back when fill reports a failure.
  const storeRequest = async (fill: (onBatch: OnBatch) => Promise<IngestResult | undefined>) => {
    let companion: Companion | undefined;
    let productsCommitted = false;
    try {
      return await database.db.transaction(async (tx) => {
        await tx.insert(requests).values(newRequest);
        companion = await companionFor(database);
        let position = 0;
        let total = 0;
        // Up to two batches stay in flight (postgres.js pipelines them on a connection) while the
        // parser reads the next: parsing (main thread) overlaps inserting (the database) instead of
        // taking turns.
        const inFlight: Promise<unknown>[] = [];
        failure = await fill(async (batch) => {
          while (inFlight.length >= 2 * MAX_BATCHES_IN_FLIGHT) await inFlight.shift();
          const rows = batchRows(batch);
          const first = position;
          position += batch.length;
          total += rows.imageCount;
          const started = companion
            ? [insertProducts(companion.tx, requestId, first, rows), insertImages(tx, requestId, rows, input.autoStart)]
            : [insertProductBatch(tx, requestId, first, rows, input.autoStart), Promise.resolve()];
          // Awaited in turn or below; this only keeps an early failure from going unhandled.
          for (const insert of started) insert.catch(() => undefined);
          inFlight.push(...started);
        });
        for (const insert of inFlight) await insert;
        if (failure) throw new RollBack();
        const [row] = await tx.update(requests).set({ total }).where(eq(requests.id, requestId)).returning();
        // The products commit first, then the request with its images; see Companion.
        if (companion) {
          await companion.commit();
          productsCommitted = true;
        }
        return row!;
      });
    } catch (error) {
      await companion?.rollback();
      if (productsCommitted) await deleteProductsOf(database.db, requestId);
      throw error;
    } finally {
      companion?.release();
    }
  };

  try {
    if (database.driver === 'postgres') {
      const request = await storeRequest(async (onBatch) => failureOf(await parseProductCsv(input.source, limits, onBatch), input.source, config));
      return { ok: true, request };
    }
    const batches: ParsedProduct[][] = [];
    failure = failureOf(
      await parseProductCsv(input.source, limits, async (batch) => {
        batches.push(batch);
      }),
      input.source,
      config,
    );
    if (failure) return failure;
    const request = await storeRequest(async (onBatch) => {
      for (const batch of batches) {
        await onBatch(batch);
        // PGlite runs on this thread: let health checks, pings and progress events through between batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
      return undefined;
    });
    return { ok: true, request };
  } catch (error) {
    if (error instanceof RollBack && failure) return failure;
    throw error;
  }
}

function failureOf(outcome: Awaited<ReturnType<typeof parseProductCsv>>, source: object, config: Config): IngestResult | undefined {
  // An upload cut at its size limit by the multipart parser ends quietly with `truncated` set.
  if (outcome.tooLarge || (source as { truncated?: boolean }).truncated) {
    return {
      ok: false,
      reason: 'tooLarge',
      message: `The CSV file is larger than the limit of ${config.maxCsvBytes} bytes (MAX_CSV_BYTES)`,
    };
  }
  if (outcome.problems.length > 0) return { ok: false, reason: 'invalid', problems: outcome.problems };
  return undefined;
}
