import { eq, sql } from 'drizzle-orm';
import { requests, type RequestRow } from '../../drizzle/schema.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { batchRows, insertImages, insertProductBatch, insertProducts } from '../db/products.ts';
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

/** Batch statements that may be in flight at once: two batches on Postgres. */
const MAX_STATEMENTS_IN_FLIGHT = 4;

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
  const storeRequest = (fill: (onBatch: OnBatch) => Promise<IngestResult | undefined>) =>
    database.db.transaction(async (tx) => {
      await tx.insert(requests).values(newRequest);
      let position = 0;
      let total = 0;
      // Up to two batches stay in flight (postgres.js pipelines prepared statements on the connection)
      // while the parser reads the next: parsing (main thread) overlaps inserting (the database).
      const inFlight: Promise<unknown>[] = [];
      failure = await fill(async (batch) => {
        while (inFlight.length >= MAX_STATEMENTS_IN_FLIGHT) await inFlight.shift();
        const rows = batchRows(batch);
        const first = position;
        position += batch.length;
        total += rows.imageCount;
        // On Postgres, two prepared statements (runPreparedIn: a round trip less each, and pipelined).
        // A second connection for the products, committed with the request, was tried once they were
        // prepared: 3.1–3.2 s against 2.6–2.9 s on one (100 000 rows × 3, 3 runs each), as the two
        // backends and the parser then share two cores.
        const started =
          database.driver === 'postgres'
            ? [insertProducts(tx, requestId, first, rows), insertImages(tx, requestId, rows, input.autoStart)]
            : [insertProductBatch(tx, requestId, first, rows, input.autoStart)];
        // Awaited in turn or below; this only keeps an early failure from going unhandled.
        for (const insert of started) insert.catch(() => undefined);
        inFlight.push(...started);
      });
      for (const insert of inFlight) await insert;
      if (failure) throw new RollBack();
      const [row] = await tx.update(requests).set({ total }).where(eq(requests.id, requestId)).returning();
      return row!;
    });

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
