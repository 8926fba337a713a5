import { builder } from './builder.ts';
import { badRequest } from './errors.ts';

export interface PageInfo {
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}

export const PageInfoRef = builder.objectRef<PageInfo>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
    startCursor: t.exposeString('startCursor', { nullable: true }),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: PageInfo;
  totalCount: number;
}

export function connectionOf<T>(
  rows: T[],
  cursorOf: (row: T) => string,
  hasNextPage: boolean,
  totalCount: number,
  after: string | undefined,
): Connection<T> {
  const edges = rows.map((node) => ({ cursor: cursorOf(node), node }));
  return {
    edges,
    totalCount,
    pageInfo: {
      hasNextPage,
      hasPreviousPage: after !== undefined,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

export function pageSize(first: number | null | undefined): number {
  const size = first ?? DEFAULT_PAGE;
  if (!Number.isInteger(size) || size < 0 || size > MAX_PAGE) throw badRequest(`first must be from 0 to ${MAX_PAGE}, got ${size}`);
  return size;
}

/** Cursors are opaque to clients: base64url of a kind and a value, checked when read back. */
export function encodeCursor(kind: string, value: string | number): string {
  return Buffer.from(`${kind}:${value}`).toString('base64url');
}

export function decodeCursor(kind: string, cursor: string | null | undefined, isValid: (value: string) => boolean): string | undefined {
  if (cursor === null || cursor === undefined) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const value = text.slice(kind.length + 1);
  if (!text.startsWith(`${kind}:`) || !isValid(value)) throw badRequest(`after is not a cursor from this connection: "${cursor.slice(0, 100)}"`);
  return value;
}

export const isPosition = (value: string) => /^\d{1,9}$/.test(value);
