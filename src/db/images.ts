import { sql } from 'drizzle-orm';
import { preparedStatement, type Database, type Queryable } from './client.ts';

export interface ClaimedImage {
  id: string;
  requestId: string;
  inputUrl: string;
  attempts: number;
  options: { quality: number; format: string; maxWidth?: number; maxHeight?: number };
}

/**
 * Claims up to `limit` due images for `workerId` with a lease, in queue order.
 *
 * Safe under concurrency: the select locks the rows it picks `FOR UPDATE SKIP LOCKED`, so two
 * instances claiming at once get disjoint sets instead of waiting on each other; the update
 * re-checks `status = 'PENDING'` under that lock, so a row finished or cancelled since it was read
 * is not taken. The select reads only the partial index `images_claimable_idx`.
 *
 * The pick is a MATERIALIZED CTE joined by the update, not `where id in (select … limit n … skip locked)`:
 * the planner may run that subquery once per outer row (a nested-loop semi join), and with SKIP LOCKED
 * each run returns other rows, so one claim took far more than `limit` images (8 or 12 for a limit of 4).
 * A materialized CTE runs exactly once.
 */
const CLAIM = preparedStatement(
  'squeeze_claim_images',
  `with picked as materialized (
      select id from images
      where status = 'PENDING' and next_attempt_at is not null and next_attempt_at <= now()
      order by next_attempt_at, id
      limit $2::int
      for update skip locked),
    claimed as (
      update images set status = 'PROCESSING', locked_by = $1::text,
        locked_until = now() + make_interval(secs => $3::float8), attempts = images.attempts + 1
      from picked
      where images.id = picked.id and images.status = 'PENDING'
      returning images.id, images.request_id, images.input_url, images.attempts)
    select claimed.*, requests.options from claimed join requests on requests.id = claimed.request_id`,
);

export async function claimImages(database: Database, workerId: string, limit: number, leaseMs: number): Promise<ClaimedImage[]> {
  const rows = await database.run<{
    id: string;
    request_id: string;
    input_url: string;
    attempts: number;
    options: ClaimedImage['options'] | string;
  }>(CLAIM, [workerId, limit, leaseMs / 1000]);
  return rows.map((row) => ({
    id: row.id,
    requestId: row.request_id,
    inputUrl: row.input_url,
    attempts: Number(row.attempts),
    options: typeof row.options === 'string' ? JSON.parse(row.options) : row.options,
  }));
}

/** Extends the leases of every image this worker still holds: one statement for all of them. */
export async function extendLeases(on: Queryable, workerId: string, ids: readonly string[], leaseMs: number): Promise<void> {
  if (ids.length === 0) return;
  await on.execute(sql`
    update images set locked_until = now() + make_interval(secs => ${leaseMs / 1000})
    where locked_by = ${workerId} and status = 'PROCESSING' and id in (${sql.join(
      ids.map((id) => sql`${id}::uuid`),
      sql`, `,
    )})`);
}

/**
 * Puts images whose lease ran out (their instance died or hung) back in line. The attempt they used
 * stays counted. Reads only the partial index `images_leased_idx`.
 */
export async function releaseExpiredLeases(database: Database): Promise<number> {
  const rows = await database.rows(sql`
    update images set status = 'PENDING', locked_by = null, locked_until = null, next_attempt_at = now()
    where status = 'PROCESSING' and locked_until < now()
    returning id`);
  return rows.length;
}

/** Gives back images this worker holds but will not finish (shutdown): they are claimable at once. */
export async function releaseImages(on: Queryable, workerId: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await on.execute(sql`
    update images set status = 'PENDING', locked_by = null, locked_until = null, next_attempt_at = now(),
      attempts = greatest(attempts - 1, 0)
    where locked_by = ${workerId} and status = 'PROCESSING' and id in (${sql.join(
      ids.map((id) => sql`${id}::uuid`),
      sql`, `,
    )})`);
}
