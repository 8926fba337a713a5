import { eq, sql } from 'drizzle-orm';
import { requests, type RequestRow } from '../../drizzle/schema.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { insertProductBatch } from '../db/products.ts';
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
      // One batch insert stays in flight while the parser reads the next one: parsing (main thread)
      // and inserting (the database) overlap instead of taking turns (7.1 s → see bench for 100k × 3).
      let inFlight: Promise<void> = Promise.resolve();
      failure = await fill(async (batch) => {
        await inFlight;
        const first = position;
        position += batch.length;
        inFlight = insertProductBatch(tx, requestId, first, batch, input.autoStart).then((count) => {
          total += count;
        });
        // Awaited at the next batch or below; this only keeps an early failure from going unhandled.
        inFlight.catch(() => undefined);
      });
      await inFlight;
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
