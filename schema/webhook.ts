import type { WebhookDeliveryRow } from '../drizzle/schema.ts';
import { attemptsOf, listDeliveries, redeliverWebhook } from '../src/webhooks/deliveries.ts';
import { builder } from './builder.ts';
import { withServiceErrors } from './errors.ts';
import { RequestRef } from './request.ts';

const WebhookDeliveryStatusEnum = builder.enumType('WebhookDeliveryStatus', { values: ['PENDING', 'DELIVERED', 'FAILED'] as const });

type AttemptRow = Awaited<ReturnType<typeof attemptsOf>>[number];

const WebhookAttemptRef = builder.objectRef<AttemptRow>('WebhookAttempt').implement({
  description: 'One POST to the webhook URL.',
  fields: (t) => ({
    attemptedAt: t.field({ type: 'DateTime', resolve: (attempt) => attempt.attemptedAt }),
    statusCode: t.exposeInt('statusCode', { nullable: true, description: 'null when no answer came (timeout, refused, blocked)' }),
    durationMs: t.exposeInt('durationMs'),
    error: t.exposeString('error', { nullable: true }),
  }),
});

export const WebhookDeliveryRef = builder.objectRef<WebhookDeliveryRow>('WebhookDelivery').implement({
  description: 'The webhook for one end of a request: sent until a 2xx answer, on the retry schedule.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Sent as webhook-id (with a msg_ prefix), the same on every attempt' }),
    eventType: t.exposeString('eventType', { description: 'request.completed, request.failed or request.cancelled' }),
    round: t.exposeInt('round', { description: '1 for the first end of the request, 2 after a retry of failed images, …' }),
    url: t.exposeString('url'),
    status: t.field({ type: WebhookDeliveryStatusEnum, resolve: (row) => row.status as 'PENDING' | 'DELIVERED' | 'FAILED' }),
    attemptCount: t.exposeInt('attempts'),
    lastStatusCode: t.exposeInt('lastStatusCode', { nullable: true }),
    lastError: t.exposeString('lastError', { nullable: true }),
    nextAttemptAt: t.field({ type: 'DateTime', nullable: true, resolve: (row) => row.nextAttemptAt }),
    createdAt: t.field({ type: 'DateTime', resolve: (row) => row.createdAt }),
    deliveredAt: t.field({ type: 'DateTime', nullable: true, resolve: (row) => row.deliveredAt }),
    attempts: t.field({
      type: [WebhookAttemptRef],
      description: 'Every attempt, oldest first',
      resolve: (row, _args, ctx) => attemptsOf(ctx.services.database.db, [row.id]),
    }),
  }),
});

builder.objectField(RequestRef, 'webhookDeliveries', (t) =>
  t.field({
    type: [WebhookDeliveryRef],
    description: 'Webhook deliveries for this request, one per end (oldest first)',
    resolve: (request, _args, ctx) => listDeliveries(ctx.services.database.db, request.id),
  }),
);

builder.mutationField('redeliverWebhook', (t) =>
  t.field({
    type: WebhookDeliveryRef,
    description: 'Sends a delivery once more now, with a new attempt',
    args: { deliveryId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) =>
      withServiceErrors(async () => {
        const row = await redeliverWebhook(ctx.services.database.db, String(args.deliveryId));
        ctx.services.webhooksQueued();
        return row;
      }),
  }),
);
