import { and, eq, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { webhookAttempts, webhookDeliveries, type WebhookDeliveryRow } from '../../drizzle/schema.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import { uuidv7 } from '../ids.ts';
import type { AddressGuard } from '../net/addressGuard.ts';
import { FetchFailure, safeFetch } from '../net/safeFetch.ts';
import { webhookHeaders } from './sign.ts';
import { VERSION } from '../version.ts';

export interface WebhookSenderDeps {
  database: Database;
  guard: AddressGuard;
  config: Config;
  logger: Logger;
}

const POLL_MS = 1_000;

/**
 * Claims due deliveries from the outbox and sends them. Safe with many instances: a claim takes rows
 * `FOR UPDATE SKIP LOCKED` and stamps a lock that outlives one attempt's timeout, so two senders never
 * post the same delivery at once, and a sender that died mid-attempt leaves a lock that simply expires.
 */
export function createWebhookSender(deps: WebhookSenderDeps) {
  const { database, config, logger } = deps;
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> | undefined;
  let stopped = false;

  async function claim(): Promise<WebhookDeliveryRow[]> {
    const lockSeconds = (config.webhookTimeoutMs * 2) / 1000 + 5;
    // A materialized pick, as in claimImages: `where id in (select … limit … skip locked)` may be
    // re-run per row by the planner and take more rows than the limit.
    const ids = await database.rows<{ id: string }>(sql`
      with picked as materialized (
        select id from webhook_deliveries
        where status = 'PENDING' and next_attempt_at <= now() and (locked_until is null or locked_until < now())
        order by next_attempt_at limit 10
        for update skip locked)
      update webhook_deliveries set locked_until = now() + make_interval(secs => ${lockSeconds}), attempts = webhook_deliveries.attempts + 1
      from picked where webhook_deliveries.id = picked.id
      returning webhook_deliveries.id`);
    if (ids.length === 0) return [];
    return database.db
      .select()
      .from(webhookDeliveries)
      .where(sql`${webhookDeliveries.id} in (${sql.join(ids.map((row) => sql`${row.id}::uuid`), sql`, `)})`);
  }

  async function deliver(delivery: WebhookDeliveryRow): Promise<void> {
    const body = JSON.stringify(delivery.payload);
    const startedAt = new Date();
    const headers = {
      'content-type': 'application/json',
      'user-agent': `Squeeze/${VERSION}`,
      ...webhookHeaders(`msg_${delivery.id}`, Math.floor(startedAt.getTime() / 1000), body, config.webhookSecret),
    };
    let statusCode: number | null = null;
    let error: string | null = null;
    let retryAfterMs: number | undefined;
    try {
      const response = await safeFetch(delivery.url, {
        guard: deps.guard,
        method: 'POST',
        headers,
        body,
        maxBytes: 64 * 1024,
        connectTimeoutMs: config.connectTimeoutMs,
        totalTimeoutMs: config.webhookTimeoutMs,
        maxRedirects: 0,
        acceptAnyStatus: true,
      });
      statusCode = response.status;
      if (statusCode < 200 || statusCode >= 300) error = `HTTP ${statusCode}`;
      const retryAfter = response.headers['retry-after'];
      if ((statusCode === 429 || statusCode === 503) && retryAfter) retryAfterMs = parseRetryAfter(retryAfter);
    } catch (failure) {
      error = failure instanceof FetchFailure ? `${failure.code}: ${failure.message}` : String(failure);
      if (failure instanceof FetchFailure && failure.status) statusCode = failure.status;
    }
    const durationMs = Date.now() - startedAt.getTime();
    const delivered = statusCode !== null && statusCode >= 200 && statusCode < 300;
    const delays = config.webhookRetryDelays;
    const gaveUp = !delivered && (statusCode === 410 || delivery.attempts >= delays.length || error?.startsWith('BLOCKED_ADDRESS'));
    const nextDelayMs = retryAfterMs ?? (delays[delivery.attempts] ?? 0) * 1000;

    await database.db.transaction(async (tx) => {
      await tx.insert(webhookAttempts).values({ id: uuidv7(), deliveryId: delivery.id, attemptedAt: startedAt, statusCode, durationMs, error });
      await tx
        .update(webhookDeliveries)
        .set({
          status: delivered ? 'DELIVERED' : gaveUp ? 'FAILED' : 'PENDING',
          lastStatusCode: statusCode,
          lastError: error,
          lockedUntil: null,
          deliveredAt: delivered ? startedAt : null,
          nextAttemptAt: delivered || gaveUp ? null : sql`now() + make_interval(secs => ${nextDelayMs / 1000})`,
        })
        .where(and(eq(webhookDeliveries.id, delivery.id)));
    });
    logger.info(
      { requestId: delivery.requestId, deliveryId: delivery.id, attempt: delivery.attempts, statusCode, durationMs, error },
      delivered ? 'webhook delivered' : gaveUp ? 'webhook failed; giving up' : 'webhook attempt failed; will retry',
    );
  }

  async function tick() {
    try {
      while (!stopped) {
        const due = await claim();
        if (due.length === 0) return;
        await Promise.all(due.map((delivery) => deliver(delivery).catch((error) => logger.error({ err: error }, 'webhook attempt crashed'))));
      }
    } catch (error) {
      logger.warn({ err: error }, 'webhook sender could not claim deliveries');
    }
  }

  const run = () => {
    if (stopped || busy) return;
    busy = tick().finally(() => {
      busy = undefined;
    });
  };

  return {
    start() {
      timer = setInterval(run, POLL_MS);
      run();
    },
    /** A delivery was queued: send it now instead of at the next poll. */
    wake: run,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await busy;
    },
  };
}

export function parseRetryAfter(value: string): number | undefined {
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds, 86_400) * 1000;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.min(date - Date.now(), 86_400_000));
}
