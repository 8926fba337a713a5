import { sql } from 'drizzle-orm';
import { webhookDeliveries, type RequestRow } from '../../drizzle/schema.ts';
import type { Queryable } from '../db/client.ts';
import { uuidv7 } from '../ids.ts';
import type { ProductRowJson } from '../output/requestOutputs.ts';
import { progressOf } from '../statuses.ts';

export type WebhookEventType = 'request.completed' | 'request.failed' | 'request.cancelled';

export function webhookEventType(status: string): WebhookEventType {
  if (status === 'COMPLETED') return 'request.completed';
  if (status === 'CANCELLED') return 'request.cancelled';
  return 'request.failed';
}

/** The body receivers get: the contract's envelope, or the bare array for uploads through the REST route. */
export function webhookPayload(request: RequestRow, outputCsvUrl: string, rows: ProductRowJson[], now: Date): unknown {
  if (request.source === 'rest') return rows;
  return {
    type: webhookEventType(request.status),
    timestamp: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    data: {
      requestId: request.id,
      status: request.status,
      progress: progressOf(request),
      outputCsvUrl,
      products: rows,
    },
  };
}

/**
 * Queues the webhook for this end of the request, in the transaction that ended it. The unique
 * (request_id, round) key means a second instance racing to end the same request queues nothing.
 */
export async function queueWebhook(on: Queryable, request: RequestRow, payload: unknown): Promise<void> {
  if (!request.webhookUrl) return;
  await on
    .insert(webhookDeliveries)
    .values({
      id: uuidv7(),
      requestId: request.id,
      eventType: webhookEventType(request.status),
      round: sql`(select coalesce(max(round), 0) + 1 from webhook_deliveries where request_id = ${request.id})`,
      url: request.webhookUrl,
      payload,
      status: 'PENDING',
      nextAttemptAt: sql`now()`,
    })
    .onConflictDoNothing();
}
