/**
 * The statements run for every image are prepared once and then sent as a name and values; on PGlite
 * the values travel as SQL literals. Whatever a value holds (quotes, backslashes, text that looks like
 * SQL), it must come back exactly as it went, on both drivers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preparedStatement, sqlLiteral } from '../src/db/client.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await openTestDatabase('prepared');
});

afterAll(async () => {
  await database?.close();
});

const ECHO = preparedStatement('squeeze_test_echo', 'select $1::text as text, $2::int as int, $3::float8 as float, $4::boolean as flag, $5::text as nothing');

describe('prepared statements', () => {
  it('gives back every value exactly as sent', async () => {
    const texts = [
      "O'Brien's \"cake\"",
      'C:\\images\\new\\table.jpg \\x00 \\\\',
      "'); drop table images; --",
      "E'\\''",
      'ünïcødé ✓ 🙂',
      '',
      'line\nbreak\ttab',
    ];
    for (const text of texts) {
      const [row] = await database.run<{ text: string; int: number; float: number; flag: boolean; nothing: null }>(ECHO, [text, -42, 0.125, true, null]);
      expect(row).toEqual({ text, int: -42, float: 0.125, flag: true, nothing: null });
    }
    const tables = await database.run<{ n: number }>(preparedStatement('squeeze_test_tables', `select count(*)::int as n from information_schema.tables where table_name = $1::text`), ['images']);
    expect(tables[0]!.n).toBe(1);
  });

  it('prepares a statement once when many run it for the first time together', async () => {
    const statement = preparedStatement('squeeze_test_together', 'select $1::int + 1 as next');
    const rows = await Promise.all(Array.from({ length: 20 }, (_, i) => database.run<{ next: number }>(statement, [i])));
    expect(rows.map(([row]) => row!.next)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('refuses what it cannot send as a literal, naming why', () => {
    expect(() => sqlLiteral('a\0b')).toThrow(/NUL character/);
    expect(() => sqlLiteral(Number.NaN)).toThrow(/NaN/);
    expect(() => preparedStatement('drop table x', 'select 1')).toThrow(/Invalid prepared statement name/);
    expect(sqlLiteral("it's a \\ test")).toBe("E'it''s a \\\\ test'");
  });
});
