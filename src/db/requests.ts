import { and, desc, eq, inArray, lt, sql } from 'drizzle-orm';
import { requests, type RequestRow } from '../../drizzle/schema.ts';
import type { RequestStatus } from '../statuses.ts';
import type { Queryable } from './client.ts';

export async function getRequest(on: Queryable, id: string): Promise<RequestRow | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await on.select().from(requests).where(eq(requests.id, id));
  return row;
}

export async function getRequests(on: Queryable, ids: readonly string[]): Promise<RequestRow[]> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return [];
  return on.select().from(requests).where(inArray(requests.id, valid));
}

/** Newest first. Ids are UUIDv7, so id order is creation order and serves as the cursor. */
export async function listRequests(
  on: Queryable,
  args: { first: number; after?: string; status?: RequestStatus },
): Promise<{ rows: RequestRow[]; hasNextPage: boolean; totalCount: number }> {
  const filters = [
    args.status ? eq(requests.status, args.status) : undefined,
    args.after ? lt(requests.id, args.after) : undefined,
  ].filter((f) => f !== undefined);
  const rows = await on
    .select()
    .from(requests)
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(desc(requests.id))
    .limit(args.first + 1);
  const [count] = await on
    .select({ n: sql<number>`count(*)::int` })
    .from(requests)
    .where(args.status ? eq(requests.status, args.status) : undefined);
  return { rows: rows.slice(0, args.first), hasNextPage: rows.length > args.first, totalCount: Number(count?.n ?? 0) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
