import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

/**
 * Ids are UUIDv7 made by the app (src/ids.ts): time-ordered, so inserts append to the primary-key
 * index instead of scattering, and images can reference their product without a round trip.
 */

export const requests = pgTable(
  'requests',
  {
    id: uuid('id').primaryKey(),
    /** PENDING | PROCESSING | COMPLETED | FAILED | CANCELLED */
    status: text('status').notNull(),
    /** Compression options: { quality, format, maxWidth?, maxHeight? } */
    options: jsonb('options').$type<{ quality: number; format: string; maxWidth?: number; maxHeight?: number }>().notNull(),
    webhookUrl: text('webhook_url'),
    /** graphql | rest: which route created it, which chooses the webhook body. */
    source: text('source').notNull(),
    total: integer('total').notNull(),
    done: integer('done').notNull().default(0),
    failed: integer('failed').notNull().default(0),
    cancelled: integer('cancelled').notNull().default(0),
    /** Bumped by every change of counters or status; progress events carry it so late events are dropped. */
    version: integer('version').notNull().default(0),
    outputCsvKey: text('output_csv_key'),
    /** Set at the end when some images failed: one row per failed image with its error. */
    errorsCsvKey: text('errors_csv_key'),
    /** Bytes downloaded and written for the images that are DONE. */
    inputBytes: bigint('input_bytes', { mode: 'number' }).notNull().default(0),
    outputBytes: bigint('output_bytes', { mode: 'number' }).notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    completedAt: timestamp('completed_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('requests_created_idx').on(t.createdAt, t.id), index('requests_status_created_idx').on(t.status, t.createdAt, t.id)],
);

export const products = pgTable(
  'products',
  {
    id: uuid('id').primaryKey(),
    // No foreign key to requests, as images has none to products: the per-row referential check was
    // 0.4–0.9 s of the 4.0–5.3 s Postgres spent inserting 100 000 products × 3 images (bench:ingest),
    // and nothing deletes a request. Products are only written inside the transaction that inserts
    // their request (src/ingest/ingestCsv.ts), so the rule is kept by the one writer.
    requestId: uuid('request_id').notNull(),
    position: integer('position').notNull(),
    serialNumber: bigint('serial_number', { mode: 'number' }).notNull(),
    productName: text('product_name').notNull(),
  },
  (t) => [uniqueIndex('products_request_position_idx').on(t.requestId, t.position)],
);

export const images = pgTable(
  'images',
  {
    id: uuid('id').primaryKey(),
    requestId: uuid('request_id').notNull(),
    productId: uuid('product_id').notNull(),
    position: integer('position').notNull(),
    inputUrl: text('input_url').notNull(),
    /** PENDING | PROCESSING | DONE | FAILED | CANCELLED */
    status: text('status').notNull(),
    attempts: integer('attempts').notNull().default(0),
    /** Set while an instance works on it; an expired lease puts the image back in line. */
    lockedBy: text('locked_by'),
    lockedUntil: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
    /** When a PENDING image may be claimed; null while its request waits for processRequest. */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    outputKey: text('output_key'),
    inputBytes: integer('input_bytes'),
    outputBytes: integer('output_bytes'),
    width: integer('width'),
    height: integer('height'),
    format: text('format'),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    // Products are read with their images: (product_id, position) serves that and the foreign key.
    index('images_product_idx').on(t.productId, t.position),
    // The queue: only claimable rows are in this index, so it stays small however many images are done.
    index('images_claimable_idx')
      .on(t.nextAttemptAt, t.id)
      .where(sql`status = 'PENDING' and next_attempt_at is not null`),
    // Leases to sweep: only rows being worked on.
    index('images_leased_idx').on(t.lockedUntil).where(sql`status = 'PROCESSING'`),
  ],
);

export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey(),
    requestId: uuid('request_id')
      .notNull()
      .references(() => requests.id, { onDelete: 'cascade' }),
    /** request.completed | request.failed | request.cancelled */
    eventType: text('event_type').notNull(),
    /** Which end of the request this is (1 for the first, 2 after a retry of failed images, …): with the request, queued once. */
    round: integer('round').notNull(),
    url: text('url').notNull(),
    payload: jsonb('payload').notNull(),
    /** PENDING | DELIVERED | FAILED */
    status: text('status').notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }),
    lockedUntil: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
    lastStatusCode: integer('last_status_code'),
    lastError: text('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_request_round_idx').on(t.requestId, t.round),
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt).where(sql`status = 'PENDING'`),
  ],
);

export const webhookAttempts = pgTable(
  'webhook_attempts',
  {
    id: uuid('id').primaryKey(),
    deliveryId: uuid('delivery_id')
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: 'cascade' }),
    attemptedAt: timestamp('attempted_at', { withTimezone: true, mode: 'date' }).notNull(),
    statusCode: integer('status_code'),
    durationMs: integer('duration_ms').notNull(),
    error: text('error'),
  },
  (t) => [index('webhook_attempts_delivery_idx').on(t.deliveryId, t.attemptedAt)],
);

export type RequestRow = typeof requests.$inferSelect;
export type ProductRow = typeof products.$inferSelect;
export type ImageRow = typeof images.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
