import { asc, eq, inArray, sql } from 'drizzle-orm';
import { webhookAttempts, webhookDeliveries, type WebhookDeliveryRow } from '../../drizzle/schema.ts';
import type { Queryable } from '../db/client.ts';
import { isUuid } from '../db/requests.ts';
import { ServiceError } from '../errors.ts';

export function listDeliveries(on: Queryable, requestId: string): Promise<WebhookDeliveryRow[]> {
  return on.select().from(webhookDeliveries).where(eq(webhookDeliveries.requestId, requestId)).orderBy(asc(webhookDeliveries.round));
}

export async function attemptsOf(on: Queryable, deliveryIds: readonly string[]) {
  if (deliveryIds.length === 0) return [];
  return on
    .select()
    .from(webhookAttempts)
    .where(inArray(webhookAttempts.deliveryId, [...deliveryIds]))
    .orderBy(asc(webhookAttempts.attemptedAt));
}

/**
 * Queues one more attempt of a delivery now, whatever its status. It keeps its `webhook-id`, so a
 * receiver that already has it can tell it is the same message.
 */
export async function redeliverWebhook(on: Queryable, deliveryId: string): Promise<WebhookDeliveryRow> {
  const [row] = isUuid(deliveryId)
    ? await on
        .update(webhookDeliveries)
        .set({ status: 'PENDING', nextAttemptAt: sql`now()`, lockedUntil: null })
        .where(eq(webhookDeliveries.id, deliveryId))
        .returning()
    : [];
  if (!row) throw new ServiceError('NOT_FOUND', `Webhook delivery ${deliveryId} not found`);
  return row;
}
