import { HELP_OPTION, expectPositionals, parseCommand } from './args.ts';
import type { Command } from './command.ts';
import { EXIT } from './errors.ts';

export const serve: Command = {
  name: 'serve',
  summary: 'run the Squeeze server in this process (settings from the environment)',
  help: `Usage: squeeze serve

Runs the Squeeze server in this process, as "npm start" does: it listens on http://localhost:4000
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
    // main.ts reads the environment, listens, and handles SIGINT/SIGTERM itself.
    await import('../main.ts');
    return 'running';
  },
};
