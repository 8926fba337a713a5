import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import * as schema from '../../drizzle/schema.ts';

/** One type for both drivers: the query builder behaves the same on each. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A transaction or the database itself: queries take either. */
export type Queryable = Pick<Db, 'select' | 'insert' | 'update' | 'delete' | 'execute'>;

export interface Database {
  db: Db;
  driver: 'pglite' | 'postgres';
  /** Runs a raw statement and returns its rows the same way on both drivers. */
  rows<T = Record<string, unknown>>(query: SQL, on?: Queryable): Promise<T[]>;
  /** Runs a statement of the hot path (see PreparedStatement) outside any transaction; returns its rows. */
  run<T = Record<string, unknown>>(statement: PreparedStatement, values: readonly PreparedValue[]): Promise<T[]>;
  /** Calls `onMessage` for every NOTIFY on `channel`; `onReconnect` after a lost listen connection came back. */
  listen(channel: string, onMessage: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * A statement run for every image (claiming, recording), written once with `$1`, `$2` … placeholders,
 * prepared once per connection and then sent as its name and values only: it is parsed and planned
 * once, not at every call. On Postgres that is postgres.js's `unsafe(text, values, { prepare: true })`,
 * which names the statement per connection by its text (Drizzle's own queries go through `unsafe`
 * unprepared, so each is parsed and planned again). PGlite parses and plans each query again, in
 * WebAssembly on the main thread, so there it is PREPARE once and then EXECUTE with the values as literals. Measured on PGlite (in memory, CPU per call over 200–600 calls):
 * claimImages for 2 images 1.03–1.64 ms as a query, 0.70 ms prepared (the EXECUTE alone 0.37 ms);
 * recording a finished image 0.94 → 0.35 ms; `select 1` costs 0.24 ms either way.
 */
export interface PreparedStatement {
  /** An SQL identifier, unique among the statements. */
  readonly name: string;
  readonly text: string;
}

export type PreparedValue = string | number | boolean | null;

export function preparedStatement(name: string, text: string): PreparedStatement {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`Invalid prepared statement name: ${name}`);
  return { name, text };
}

/**
 * Runs `statement` inside `on`, a Drizzle transaction on Postgres, as a named prepared statement.
 * Drizzle sends every other statement unnamed (it calls postgres.js `unsafe`, whose default is
 * prepare: false), so each one with parameters is a Parse/Describe round trip first, and its Bind
 * waits until the main thread has read the answer; postgres.js sends nothing else on the connection
 * meanwhile. Prepared, later calls are one Bind/Execute that postgres.js pipelines. Ingest uses it: 200
 * batch statements for 100 000 rows × 3, each answered only when the parser let the event loop turn.
 */
export async function runPreparedIn(on: Queryable, statement: PreparedStatement, values: readonly PreparedValue[]): Promise<void> {
  // A Drizzle PgTransaction keeps its session, and a postgres-js session its postgres.js client.
  const client = (on as unknown as { session?: { client?: { unsafe?: unknown } } }).session?.client as
    | { unsafe(text: string, values: PreparedValue[], options: { prepare: boolean }): Promise<unknown> }
    | undefined;
  if (typeof client?.unsafe !== 'function') throw new Error('runPreparedIn needs a transaction on Postgres (postgres.js)');
  await client.unsafe(statement.text, values as PreparedValue[], { prepare: true });
}

/**
 * A value as an SQL literal, for PGlite's EXECUTE (which takes no bound parameters): an escape-string
 * literal (E'…', quotes and backslashes doubled) reads the same whatever standard_conforming_strings is;
 * its type comes from the prepared statement's parameter.
 */
export function sqlLiteral(value: PreparedValue): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`Cannot send ${value} to the database`);
    return String(value);
  }
  if (value.includes('\0')) throw new Error('Cannot send a text with a NUL character to the database');
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../drizzle');
/** Any constant works; it only has to be the same on every instance. */
const MIGRATION_LOCK_KEY = 0x5_9_0_e_e_2_e;

export interface OpenDatabaseOptions {
  /** Postgres URL; when unset, PGlite is used. */
  databaseUrl?: string;
  /** PGlite's data directory; unset keeps the embedded database in memory (tests). */
  pgliteDir?: string;
  /** Largest number of pooled Postgres connections. */
  maxConnections?: number;
  onNotice?: (message: string) => void;
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options) : openPglite(options.pgliteDir);
}

async function openPglite(dir: string | undefined): Promise<Database> {
  // Loaded only when used: importing PGlite costs 45 MB of RSS even in an instance on Postgres.
  const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('drizzle-orm/pglite'),
    import('drizzle-orm/pglite/migrator'),
  ]);
  if (dir) await mkdir(dir, { recursive: true });
  const client = new PGlite(dir);
  await client.waitReady;
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  await migratePglite(db as never, { migrationsFolder });
  let closed = false;
  // One session: each statement is prepared once, by whoever runs it first.
  const prepared = new Map<string, Promise<unknown>>();
  return {
    db,
    driver: 'pglite',
    async run<T>(statement: PreparedStatement, values: readonly PreparedValue[]) {
      let ready = prepared.get(statement.name);
      if (!ready) {
        ready = client.exec(`prepare ${statement.name} as ${statement.text}`);
        prepared.set(statement.name, ready);
        ready.catch(() => prepared.delete(statement.name));
      }
      await ready;
      // exec, the simple query protocol: one message into PGlite, where query() sends five (Parse, Describe,
      // Bind, Execute, Sync), each a call into WebAssembly and a reply parsed here. A two-table update
      // EXECUTEd 500 times, PGlite on disk: 0.26 ms per call by query(), 0.15 ms by exec(). In the
      // bench's end-to-end run the main thread's CPU per image did not move beyond its noise (4.4–4.6 ms).
      // Safe as one message: the values are literals (sqlLiteral), so a value cannot end the statement.
      const [result] = await client.exec(`execute ${statement.name}(${values.map(sqlLiteral).join(', ')})`);
      return (result?.rows ?? []) as T[];
    },
    async rows<T>(query: SQL, on: Queryable = db) {
      const result = (await on.execute(query)) as unknown as { rows: T[] };
      return result.rows;
    },
    async listen(channel, onMessage) {
      const unlisten = await client.listen(channel, onMessage);
      return async () => {
        if (!closed) await unlisten();
      };
    },
    async ping() {
      if (closed) return false;
      try {
        await client.query('select 1');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
    },
  };
}

async function openPostgres(url: string, options: OpenDatabaseOptions): Promise<Database> {
  const client = postgres(url, {
    max: options.maxConnections ?? 10,
    onnotice: (notice) => options.onNotice?.(String(notice.message)),
    // postgres.js's default, written out: statements it is asked to prepare (its tagged template, and
    // `unsafe(…, { prepare: true })` as in run() and runPreparedIn) are prepared once per connection.
    // Drizzle's queries are sent unprepared whatever this says.
    prepare: true,
    connection: { application_name: 'squeeze' },
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;

  // Several instances may start together: the advisory lock lets one migrate while the others wait.
  // One connection (max: 1), so the lock, the migration and the unlock share a session.
  const migrator = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    await migrator`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(drizzlePostgres(migrator, { schema }), { migrationsFolder });
    await migrator`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
  } finally {
    await migrator.end({ timeout: 5 });
  }

  return {
    db,
    driver: 'postgres',
    async run<T>(statement: PreparedStatement, values: readonly PreparedValue[]) {
      // postgres.js names and prepares it on each connection the first time, by its text.
      return (await client.unsafe(statement.text, values as PreparedValue[], { prepare: true })) as unknown as T[];
    },
    async rows<T>(query: SQL, on: Queryable = db) {
      return (await on.execute(query)) as unknown as T[];
    },
    async listen(channel, onMessage, onReconnect) {
      let first = true;
      const { unlisten } = await client.listen(channel, onMessage, () => {
        // postgres.js calls this on the first listen and again after every reconnect.
        if (!first) onReconnect?.();
        first = false;
      });
      return async () => {
        await unlisten().catch(() => undefined);
      };
    },
    async ping() {
      try {
        await client`select 1`;
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

/** Sends a NOTIFY inside the caller's transaction: it reaches listeners only if that transaction commits. */
export function notify(on: Queryable, channel: string, payload: string) {
  return on.execute(sql`select pg_notify(${channel}, ${payload})`);
}
