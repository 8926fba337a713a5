import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, type Database } from '../../src/db/client.ts';

export interface TestDatabase extends Database {
  /** The Postgres URL of this file's own database; undefined on PGlite. */
  url: string | undefined;
}

/**
 * A database of the test file's own: a fresh in-memory PGlite, or, when DATABASE_URL is set,
 * a new Postgres database named after the test that is dropped on close (pg-boss's way).
 */
export async function openTestDatabase(name: string): Promise<TestDatabase> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) return { ...(await openDatabase({})), url: undefined };

  const dbName = `squeeze_${name.replace(/[^a-z0-9]+/gi, '_').toLowerCase().slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(baseUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database "${dbName}"`);
  await admin.end();
  const url = new URL(baseUrl);
  url.pathname = `/${dbName}`;
  const database = await openDatabase({ databaseUrl: url.href, maxConnections: 5 });
  return {
    ...database,
    url: url.href,
    async close() {
      await database.close();
      const dropper = postgres(baseUrl, { max: 1, onnotice: () => undefined });
      await dropper.unsafe(`drop database if exists "${dbName}" with (force)`).catch(() => undefined);
      await dropper.end();
    },
  };
}
