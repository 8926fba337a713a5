/** Argument parsing shared by the commands: node:util parseArgs, with its errors turned into usage errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SqueezeClient } from './client.ts';
import { UsageError } from './errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

export const DEFAULT_SERVER = 'http://localhost:4000';

/** Flags every command that talks to a server takes, before or after the command name. */
export const CONNECTION_OPTIONS = {
  server: { type: 'string' },
  'api-key': { type: 'string' },
} as const satisfies Options;

export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const satisfies Options;

export const CONNECTION_HELP = `Global options:
  --server URL     the Squeeze server (env SQUEEZE_SERVER, default ${DEFAULT_SERVER})
  --api-key KEY    the API key, when the server has API_KEYS set (env SQUEEZE_API_KEY)
  -h, --help       show this help`;

/** Parses a command's arguments strictly; an unknown flag or a flag without its value is a usage error. */
export function parseCommand<const O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(describeParseError(error as Error & { code?: string }), command);
  }
}

export function describeParseError(error: Error & { code?: string }): string {
  const option = /'(-[^' ]+)/.exec(error.message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) return `unknown option ${option}`;
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    return /argument missing/.test(error.message) ? `${option} needs a value` : `${option} takes no value`;
  }
  return error.message;
}

/** Checks the number of positional arguments against the command's usage. */
export function expectPositionals(command: string, positionals: string[], names: string[]): string[] {
  if (positionals.length < names.length) throw new UsageError(`missing ${names.slice(positionals.length).map((n) => `<${n}>`).join(' ')}`, command);
  if (positionals.length > names.length) throw new UsageError(`unexpected argument "${positionals[names.length]}"`, command);
  return positionals;
}

/** The client for --server / SQUEEZE_SERVER and --api-key / SQUEEZE_API_KEY. */
export function connect(command: string, values: { server?: string | undefined; 'api-key'?: string | undefined }, env: NodeJS.ProcessEnv = process.env): SqueezeClient {
  const fromFlag = values.server !== undefined;
  const raw = values.server ?? (env.SQUEEZE_SERVER?.trim() || DEFAULT_SERVER);
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new UsageError(`${fromFlag ? '--server' : 'SQUEEZE_SERVER'} must be an http(s) URL such as ${DEFAULT_SERVER}, got "${raw}"`, command);
  }
  const apiKey = values['api-key'] ?? (env.SQUEEZE_API_KEY?.trim() || undefined);
  if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('--api-key must not be empty', command);
  return new SqueezeClient({ server: url.href.replace(/\/+$/, ''), apiKey: apiKey?.trim() });
}
