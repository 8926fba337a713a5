import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../serverNodeFlags.ts';
import { HELP_OPTION, expectPositionals, parseCommand } from './args.ts';
import type { Command } from './command.ts';
import { EXIT } from './errors.ts';

export const serve: Command = {
  name: 'serve',
  summary: 'run the Squeeze server (settings from the environment)',
  help: `Usage: squeeze serve

Runs the Squeeze server as "npm start" does: it listens on http://localhost:4000
with an embedded database in ./data unless the environment says otherwise. Stop it with Ctrl-C
(in-flight images get SHUTDOWN_GRACE_MS to finish).

Settings (environment variables; the README lists them all):
  PORT, HOST         where it listens (4000, 127.0.0.1)
  DATABASE_URL       a Postgres URL; unset means the embedded database in DATA_DIR
  DATA_DIR           the embedded database and stored outputs (./data)
  PUBLIC_URL         the base of every URL it hands out (http://localhost:$PORT)
  API_KEYS           comma-separated keys clients must send (--api-key)

Options:
  -h, --help         show this help`,

  async run(args) {
    const { values, positionals } = parseCommand('serve', args, HELP_OPTION);
    if (values.help) {
      process.stdout.write(`${serve.help}\n`);
      return EXIT.OK;
    }
    expectPositionals('serve', positionals, []);
    return runServer();
  },
};

const START = fileURLToPath(new URL('../start.mjs', import.meta.url));

/**
 * The server as `npm start` runs it: src/start.mjs (compiled JavaScript, not this process's tsx) in a
 * process of its own, with the V8 settings and glibc allocator settings that are read at a process's start
 * (src/start.mjs says why: less RSS and CPU per image). Imported into this process instead, as
 * before, it ran without them. Signals are passed on, so Ctrl-C and SIGTERM stop it gracefully; the
 * IPC channel stops it if this process dies; its exit code becomes this one's.
 */
function runServer(): Promise<number> {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, START], {
    env: { ...SERVER_ENV, ...process.env },
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of signals) process.on(signal, forward);
  return new Promise((resolve) => {
    child.once('error', (error) => {
      process.stderr.write(`squeeze serve: could not start the server: ${error.message}\n`);
      resolve(70);
    });
    child.once('exit', (code, signal) => {
      for (const name of signals) process.off(name, forward);
      // Ended by a signal nobody caught: the shell's convention, 128 + its number.
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
}
