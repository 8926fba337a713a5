/**
 * A small client for the Squeeze GraphQL API: queries as JSON POSTs, uploads by the GraphQL multipart
 * request spec, subscriptions over graphql-ws. Every failure becomes a CliError with the exit code the
 * CLI documents, and a message that names what went wrong.
 */
import { openAsBlob } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { CliError, EXIT, type ExitCode } from './errors.ts';

export interface ClientOptions {
  /** The server's base URL, e.g. http://localhost:4000 (no trailing slash). */
  server: string;
  apiKey?: string | undefined;
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

const NO_KEY = 'the server needs an API key: pass --api-key or set SQUEEZE_API_KEY';
const WRONG_KEY = 'the server refused the API key: check --api-key or SQUEEZE_API_KEY';

/** Close codes graphql-ws servers use when connection_init is refused. */
const AUTH_CLOSE_CODES = new Set([4401, 4403]);

export class SqueezeClient {
  readonly server: string;
  readonly endpoint: string;
  private readonly apiKey: string | undefined;

  constructor(options: ClientOptions) {
    this.server = options.server;
    this.endpoint = `${options.server}/graphql`;
    this.apiKey = options.apiKey;
  }

  private authHeaders(): Record<string, string> {
    return this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
  }

  /** Runs a query or mutation and returns its `data`; GraphQL errors become CliErrors. */
  async query<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await this.send({
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...this.authHeaders() },
      body: JSON.stringify({ query, variables }),
    });
    return this.readResult<T>(response);
  }

  /**
   * Runs a mutation with one file, by the GraphQL multipart request spec: `variables[fileVariable]` is
   * the file. The file is streamed from disk, never read whole.
   */
  async upload<T>(query: string, variables: Record<string, unknown>, fileVariable: string, filePath: string): Promise<T> {
    let file: Blob;
    try {
      // stat first: openAsBlob's own error names no cause.
      if (!(await stat(filePath)).isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
      file = await openAsBlob(filePath, { type: 'text/csv' });
    } catch (error) {
      throw new CliError(EXIT.BAD_INPUT, `cannot read ${filePath}: ${describeFsError(error)}`);
    }
    const form = new FormData();
    form.set('operations', JSON.stringify({ query, variables: { ...variables, [fileVariable]: null } }));
    form.set('map', JSON.stringify({ 0: [`variables.${fileVariable}`] }));
    form.set('0', file, path.basename(filePath));
    const response = await this.send({
      method: 'POST',
      // Squeeze refuses multipart requests without a CSRF header (as Apollo clients send).
      headers: { 'x-graphql-yoga-csrf': 'squeeze-cli', accept: 'application/graphql-response+json, application/json', ...this.authHeaders() },
      body: form,
    });
    return this.readResult<T>(response);
  }

  /**
   * Runs a subscription over WebSocket (graphql-ws) to its end, calling `onData` for every event.
   * Resolves when the server completes it; a dropped connection is retried a few times (the
   * subscription is sent again and starts with the current state).
   */
  subscribe<T>(query: string, variables: Record<string, unknown>, onData: (data: T) => void): { done: Promise<void>; stop(): Promise<void> } {
    const url = new URL(this.endpoint);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const client: Client = createClient({
      url: url.href,
      webSocketImpl: WebSocket,
      connectionParams: this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {},
      lazy: true,
      retryAttempts: 5,
      retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** retries, 5000))),
      shouldRetry: (error) => isCloseEvent(error) && !AUTH_CLOSE_CODES.has(error.code),
    });
    const done = new Promise<void>((resolve, reject) => {
      client.subscribe<T>(
        { query, variables },
        {
          next: (result) => {
            if (result.errors?.length) reject(graphQLErrorsToCliError(result.errors as GraphQLError[]));
            else if (result.data) onData(result.data as T);
          },
          error: (error) => reject(this.subscriptionError(error)),
          complete: () => resolve(),
        },
      );
    }).finally(() => client.dispose());
    return { done, stop: async () => client.dispose() };
  }

  /**
   * Fetches a file the server handed out (an output CSV). The API key goes only to the server itself:
   * a URL on another host (other storage) is fetched without it.
   */
  async fetchFile(fileUrl: string): Promise<Response> {
    const headers = sameServer(fileUrl, this.server) ? this.authHeaders() : {};
    let response: Response;
    try {
      response = await fetch(fileUrl, { headers });
    } catch (error) {
      throw new CliError(EXIT.SERVER, `cannot download ${fileUrl}: ${describeNetworkError(error)}`);
    }
    if (response.status === 401) throw new CliError(EXIT.SERVER, this.apiKey ? WRONG_KEY : NO_KEY);
    if (!response.ok || !response.body) {
      throw new CliError(EXIT.SERVER, `cannot download ${fileUrl}: the server answered HTTP ${response.status}`);
    }
    return response;
  }

  private async send(init: RequestInit): Promise<Response> {
    try {
      return await fetch(this.endpoint, init);
    } catch (error) {
      throw new CliError(
        EXIT.SERVER,
        `cannot reach the Squeeze server at ${this.server} (${describeNetworkError(error)}): start one with "squeeze serve", or pass --server URL or set SQUEEZE_SERVER`,
      );
    }
  }

  private async readResult<T>(response: Response): Promise<T> {
    if (response.status === 401) throw new CliError(EXIT.SERVER, this.apiKey ? WRONG_KEY : NO_KEY);
    const text = await response.text();
    let body: { data?: T | null; errors?: GraphQLError[]; error?: string } | undefined;
    if ((response.headers.get('content-type') ?? '').includes('json')) {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
    }
    if (body?.errors?.length) throw graphQLErrorsToCliError(body.errors);
    if (body?.data) return body.data;
    if (body?.error) throw new CliError(EXIT.SERVER, `the server at ${this.server} answered HTTP ${response.status}: ${body.error}`);
    throw new CliError(EXIT.SERVER, `the server at ${this.server} answered HTTP ${response.status} without a GraphQL result: is it a Squeeze server?`);
  }

  private subscriptionError(error: unknown): CliError {
    if (error instanceof CliError) return error;
    if (Array.isArray(error)) return graphQLErrorsToCliError(error as GraphQLError[]);
    if (isCloseEvent(error)) {
      if (AUTH_CLOSE_CODES.has(error.code)) return new CliError(EXIT.SERVER, this.apiKey ? WRONG_KEY : NO_KEY);
      const reason = error.reason ? `: ${error.reason}` : '';
      return new CliError(EXIT.SERVER, `lost the WebSocket connection to ${this.server} (close code ${error.code}${reason})`);
    }
    return new CliError(EXIT.SERVER, `cannot follow progress over WebSocket at ${this.server}: ${describeNetworkError(error)}`);
  }
}

/** Maps the first GraphQL error to an exit code by its `extensions.code`. */
function graphQLErrorsToCliError(errors: readonly GraphQLError[]): CliError {
  const first = errors[0];
  const message = first?.message ?? 'unknown error';
  const code = first?.extensions?.code;
  const exitCode: ExitCode =
    code === 'NOT_FOUND' ? EXIT.NOT_FOUND : code === 'BAD_REQUEST' || code === 'TOO_LARGE' || code === 'BAD_USER_INPUT' ? EXIT.BAD_INPUT : EXIT.SERVER;
  return new CliError(exitCode, exitCode === EXIT.SERVER ? `the server answered with an error: ${message}` : message);
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === 'object' && value !== null && 'code' in value && typeof value.code === 'number' && 'reason' in value;
}

/** fetch wraps the socket error in `cause`; name the code (ECONNREFUSED, ENOTFOUND …) when there is one. */
function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  const own = error as { code?: string; message?: string } | undefined;
  return own?.code ?? own?.message ?? String(error);
}

function describeFsError(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'it is not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return (error as Error).message;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Same scheme, host and port; the loopback names (localhost, 127.0.0.1, ::1) count as one host. */
export function sameServer(a: string, b: string): boolean {
  let x: URL;
  let y: URL;
  try {
    x = new URL(a);
    y = new URL(b);
  } catch {
    return false;
  }
  const host = (url: URL) => (LOOPBACK.has(url.hostname) || url.hostname.endsWith('.localhost') ? 'loopback' : url.hostname);
  return x.protocol === y.protocol && x.port === y.port && host(x) === host(y);
}
