/**
 * `squeeze`: the command-line client for Squeeze. Finds the command, hands it the rest of the
 * arguments, prints what went wrong on stderr and exits with the documented code.
 */
import { parseArgs } from 'node:util';
import { CONNECTION_OPTIONS, DEFAULT_SERVER, describeParseError } from './args.ts';
import type { Command } from './command.ts';
import { download } from './download.ts';
import { CliError, EXIT, UsageError } from './errors.ts';
import { serve } from './serve.ts';
import { status } from './status.ts';
import { upload } from './upload.ts';
import { VERSION } from '../version.ts';

const COMMANDS: readonly Command[] = [upload, status, download, serve];

const HELP = `squeeze ${VERSION}: the command-line client for Squeeze, which compresses product images in bulk

Usage: squeeze <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

Run "squeeze <command> --help" for a command's options.

Global options:
  --server URL     the Squeeze server (env SQUEEZE_SERVER, default ${DEFAULT_SERVER})
  --api-key KEY    the API key, when the server has API_KEYS set (env SQUEEZE_API_KEY)
  -h, --help       show help
  -v, --version    print the version

Exit codes:
  0    ok
  1    the request ended FAILED or CANCELLED (upload --wait)
  2    bad input: the CSV or an option was refused
  3    not found: no request with that id
  4    not ready: the request has not ended, so there is no output CSV yet
  5    cannot reach the server, the API key is missing or wrong, or the server answered with an error
  64   usage error: unknown command or option, missing argument
  70   an unexpected error inside squeeze (a bug: the message says where)

Examples:
  squeeze serve
  squeeze upload products.csv --wait
  squeeze status 0193c5a2-…
  squeeze download 0193c5a2-… -o output.csv`;

/** Flags that take a value: their value is never the command name. */
const VALUE_FLAGS = new Set(Object.keys(CONNECTION_OPTIONS).map((name) => `--${name}`));

/** Runs the CLI; resolves to the exit code (serve: once the server has stopped). */
export async function run(argv: string[]): Promise<number> {
  const at = firstPositional(argv);
  try {
    if (at === -1) return topLevel(argv);
    const name = argv[at]!;
    const rest = [...argv.slice(0, at), ...argv.slice(at + 1)];
    if (name === 'help') return help(rest);
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command "${name}"; the commands are ${COMMANDS.map((c) => c.name).join(', ')}`);
    return await command.run(rest);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    const prefix = error instanceof UsageError && error.command ? `squeeze ${error.command}` : 'squeeze';
    process.stderr.write(`${prefix}: ${error.message}\n`);
    for (const line of error.details) process.stderr.write(`${line}\n`);
    if (error instanceof UsageError) process.stderr.write(`Run "${prefix} --help" for usage.\n`);
    return error.exitCode;
  }
}

/** The index of the first argument that is neither a flag nor a flag's value, or -1. */
function firstPositional(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return -1;
    if (VALUE_FLAGS.has(arg)) i++;
    else if (!arg.startsWith('-')) return i;
  }
  return -1;
}

/** `squeeze`, `squeeze --help`, `squeeze --version`: no command given. */
function topLevel(argv: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { ...CONNECTION_OPTIONS, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } }, strict: true }));
  } catch (error) {
    throw new UsageError(describeParseError(error as Error & { code?: string }));
  }
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.OK;
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return EXIT.OK;
  }
  process.stderr.write(`${HELP}\n`);
  return EXIT.USAGE;
}

/** `squeeze help [command]`. */
function help(rest: string[]): number {
  const at = firstPositional(rest);
  const name = at === -1 ? undefined : rest[at];
  if (!name) {
    process.stdout.write(`${HELP}\n`);
    return EXIT.OK;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command "${name}"; the commands are ${COMMANDS.map((c) => c.name).join(', ')}`);
  process.stdout.write(`${command.help}\n`);
  return EXIT.OK;
}

/** Exits once stdout and stderr have taken everything written (pipes can be asynchronous). */
function exit(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

// A reader that stops early (`squeeze download <id> | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.OK);
  throw error;
});

const outcome = await run(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`squeeze: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return 70;
});
exit(outcome);
