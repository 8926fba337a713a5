import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './processes.ts';

const run = promisify(execFile);

/** Where Debian's postgresql-15 package puts the server binaries; PG_BIN overrides it. */
const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * A Postgres cluster of the test's own (initdb + pg_ctl), on a free loopback port, so a test can stop and
 * restart it without touching the Postgres other test files share. Trust authentication, loopback only.
 */
export interface PrivatePostgres {
  url: string;
  port: number;
  dir: string;
  restart(): Promise<void>;
  /** Stops the server (immediately) and deletes its files. */
  destroy(): Promise<void>;
  log(): Promise<string>;
}

/** Why a private cluster cannot be made here, or undefined when it can be tried. */
export function privatePostgresProblem(): string | undefined {
  if (process.platform !== 'linux') return `private Postgres clusters are only set up on Linux (this is ${process.platform})`;
  if (!existsSync(path.join(BIN, 'initdb')) || !existsSync(path.join(BIN, 'pg_ctl'))) return `initdb/pg_ctl not found in ${BIN} (set PG_BIN)`;
  if (process.getuid?.() === 0 && !existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser')) {
    return 'running as root, and initdb refuses root, but runuser is not available to run it as the postgres user';
  }
  return undefined;
}

/** Starts a fresh cluster. initdb refuses to run as root: as root, every Postgres binary runs as the `postgres` OS user. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const asRoot = process.getuid?.() === 0;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'squeeze-pg-'));
  const pgdata = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const as = async (binary: string, args: string[]) => {
    const file = path.join(BIN, binary);
    const [command, fullArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
    return run(command, fullArgs, { timeout: 60_000 });
  };
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const port = await freePort();
  try {
    await as('initdb', ['-D', pgdata, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    // The socket goes in the cluster's own directory; TCP only on loopback. `-l`: the server's output goes
    // to a file, not to pg_ctl's stdout (which would keep execFile waiting as long as the server runs).
    await as('pg_ctl', ['-D', pgdata, '-l', logFile, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, '-w', 'start']);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let destroyed = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async restart() {
      // pg_ctl restart reuses the options of the last start (postmaster.opts).
      await as('pg_ctl', ['-D', pgdata, '-l', logFile, '-m', 'fast', '-w', 'restart']);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await as('pg_ctl', ['-D', pgdata, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
    async log() {
      return readFile(logFile, 'utf8').catch(() => '');
    },
  };
}
