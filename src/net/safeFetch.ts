import { Agent, buildConnector, request } from 'undici';
import { BlockedAddressError, type AddressGuard } from './addressGuard.ts';
import { Http1Pool, copyInto, http1Get } from './http1.ts';

/**
 * Outbound HTTP for URLs that strangers supply. Every hop (the first URL and each redirect) goes through
 * the AddressGuard, and the connection is made to exactly the addresses the guard checked (the Host
 * header and TLS SNI / certificate check still use the URL's hostname). No DNS lookup happens after the
 * check. GETs (downloads) go through http1.ts, which reads a body straight into its buffer; POSTs
 * (webhooks) through an undici Agent whose connector replaces the hostname with the pinned IP. Either
 * way the connection is a one-off, or, with `agents`, one kept for that origin and exactly that list of
 * checked addresses, so kept connections only ever lead to addresses that passed the guard.
 */

export type FetchFailureCode = 'BLOCKED_ADDRESS' | 'DOWNLOAD_TIMEOUT' | 'HTTP_ERROR' | 'NETWORK_ERROR' | 'TOO_LARGE';

export class FetchFailure extends Error {
  override name = 'FetchFailure';
  code: FetchFailureCode;
  status?: number;
  transient: boolean;
  retryAfterMs?: number;

  constructor(
    code: FetchFailureCode,
    message: string,
    opts: { transient: boolean; status?: number; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.transient = opts.transient;
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }
}

export interface SafeFetchOptions {
  guard: AddressGuard;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string | Buffer;
  maxBytes: number; // response body limit, counted while streaming whatever content-length says
  connectTimeoutMs: number;
  totalTimeoutMs: number; // whole request incl. body; a server that trickles bytes is cut here
  maxRedirects: number; // 0 = do not follow (webhooks); each hop is checked by the guard again
  signal?: AbortSignal;
  /**
   * Where the body goes: called with the body's length (up front from content-length, else once the
   * whole body is in) and returns a Buffer of exactly that length, which the body fills. Default: a
   * new ArrayBuffer of that size. A failed download may have called it and dropped what it returned.
   */
  bodyBuffer?: (size: number) => Buffer;
  /** Keeps connections open for the next download from the same origin; default: one connection per call. */
  agents?: PinnedAgents;
}

export interface SafeFetchResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  finalUrl: string;
}

export const DEFAULT_USER_AGENT = 'Squeeze/0.1 (+image compression)';

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Headers that must not follow a redirect to another origin. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
/** Network errors that will not go away by retrying. */
const PERMANENT_NETWORK_CODES = new Set([
  'ENOTFOUND',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'CONNECT_TIMEOUT']);

/** Retry-After as delay-seconds or an HTTP-date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function flattenHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Maps an error from the guard, DNS, connect or transfer to a FetchFailure (when it is not one already). */
function toFailure(err: unknown, url: URL): FetchFailure {
  if (err instanceof FetchFailure) return err;
  if (err instanceof BlockedAddressError) {
    return new FetchFailure('BLOCKED_ADDRESS', err.message, { transient: false, cause: err });
  }
  const code = errorCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (code && TIMEOUT_CODES.has(code)) {
    return new FetchFailure('DOWNLOAD_TIMEOUT', `${url.host}: ${detail}`, { transient: true, cause: err });
  }
  if (code === 'ENOTFOUND') {
    return new FetchFailure('NETWORK_ERROR', `${url.hostname} does not resolve (ENOTFOUND)`, { transient: false, cause: err });
  }
  const permanent = code !== undefined && (PERMANENT_NETWORK_CODES.has(code) || code.startsWith('HPE_'));
  return new FetchFailure('NETWORK_ERROR', `${url.host}: ${detail}${code && !detail.includes(code) ? ` (${code})` : ''}`, {
    transient: !permanent,
    cause: err,
  });
}

/** A connector that dials the pinned addresses in order (next one only if connecting fails), never DNS. */
function pinnedConnector(addresses: { address: string }[], timeoutMs: number): buildConnector.connector {
  const base = buildConnector({ timeout: timeoutMs });
  return (options, callback) => {
    let index = 0;
    const attempt = (): void => {
      base({ ...options, hostname: addresses[index]!.address }, (...args) => {
        const [err] = args;
        if (err && index + 1 < addresses.length && errorCode(err) !== 'UND_ERR_CONNECT_TIMEOUT') {
          index += 1;
          attempt();
          return;
        }
        callback(...args);
      });
    };
    attempt();
  };
}

const agentFor = Symbol('agentFor');
const poolFor = Symbol('poolFor');

/** Connections kept between calls, each pinned to one origin and the exact addresses checked for it. */
export interface PinnedAgents {
  /** @internal Used by safeFetch for POSTs: the undici Agent for these checked addresses, made when missing. */
  [agentFor](url: URL, addresses: { address: string }[], connectTimeoutMs: number): Agent;
  /** @internal Used by safeFetch for GETs: the kept connections for these checked addresses. */
  [poolFor](url: URL, addresses: { address: string }[]): Http1Pool;
  /** Closes every kept connection; the next call opens new ones. */
  close(): Promise<void>;
}

/**
 * Keep-alive connections for repeated downloads (an image runner fetches many images from few hosts).
 * A new Agent per download (connect, Agent, teardown, which builds an error with a stack trace) cost
 * main-thread CPU: measured over loopback on 2 cores, the bench's photos (3 MB on average), 2.7–3.1 ms
 * per download with one Agent each, 1.6–1.9 ms with kept ones. At most `max` Agents are kept, least
 * recently used dropped; undici closes connections idle for 4 s (its keepAliveTimeout default, or less
 * when the server says so).
 */
export function createPinnedAgents(max = 32): PinnedAgents {
  const agents = new Map<string, Agent>();
  const pools = new Map<string, Http1Pool>();
  return {
    [poolFor](url, addresses) {
      const key = `${url.origin} ${addresses.map((a) => a.address).join(' ')}`;
      let pool = pools.get(key);
      if (pool) pools.delete(key);
      else pool = new Http1Pool();
      pools.set(key, pool);
      if (pools.size > max) {
        const [oldestKey, oldest] = pools.entries().next().value!;
        pools.delete(oldestKey);
        // Closes only idle connections: one serving a download is dropped once it is done.
        oldest.close();
      }
      return pool;
    },
    [agentFor](url, addresses, connectTimeoutMs) {
      const key = `${url.origin} ${addresses.map((a) => a.address).join(' ')} ${connectTimeoutMs}`;
      let agent = agents.get(key);
      if (agent) agents.delete(key);
      else agent = new Agent({ connect: pinnedConnector(addresses, connectTimeoutMs), pipelining: 1 });
      agents.set(key, agent);
      if (agents.size > max) {
        const [oldestKey, oldest] = agents.entries().next().value!;
        agents.delete(oldestKey);
        // Lets requests still running on it finish.
        oldest.close().catch(() => {});
      }
      return agent;
    },
    async close() {
      for (const pool of pools.values()) pool.close();
      pools.clear();
      const all = [...agents.values()];
      agents.clear();
      await Promise.all(all.map((agent) => agent.destroy().catch(() => {})));
    },
  };
}

function abortableRace<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** GET (or POST) with the guard applied to every hop. Non-2xx: throws FetchFailure HTTP_ERROR (with status; transient for 408, 429, 5xx; retryAfterMs from Retry-After seconds or HTTP-date) unless opts.acceptAnyStatus. */
export async function safeFetch(
  url: string,
  opts: SafeFetchOptions & { acceptAnyStatus?: boolean },
): Promise<SafeFetchResult> {
  const callerSignal = opts.signal;
  callerSignal?.throwIfAborted();

  const controller = new AbortController();
  // Made only when it happens: an Error (its stack trace) per download was ~0.07 ms of the ~2 ms of a 3 MB one.
  const timer = setTimeout(() => {
    const what = opts.method === 'POST' ? 'the request' : 'the download';
    controller.abort(new FetchFailure('DOWNLOAD_TIMEOUT', `${what} did not finish within ${opts.totalTimeoutMs} ms`, { transient: true }));
  }, opts.totalTimeoutMs);
  const onCallerAbort = (): void => controller.abort(callerSignal?.reason);
  callerSignal?.addEventListener('abort', onCallerAbort, { once: true });

  let current: URL;
  try {
    current = new URL(url);
  } catch (err) {
    clearTimeout(timer);
    callerSignal?.removeEventListener('abort', onCallerAbort);
    throw new FetchFailure('BLOCKED_ADDRESS', `not an absolute URL: ${url}`, { transient: false, cause: err });
  }

  try {
    return await fetchHops(current, opts, controller.signal);
  } catch (err) {
    if (callerSignal?.aborted) throw callerSignal.reason;
    if (controller.signal.aborted) {
      // A timeout surfaces as whatever undici or the stream threw; report the timeout itself.
      throw controller.signal.reason;
    }
    throw toFailure(err, current);
  } finally {
    clearTimeout(timer);
    callerSignal?.removeEventListener('abort', onCallerAbort);
  }
}

async function fetchHops(start: URL, opts: SafeFetchOptions & { acceptAnyStatus?: boolean }, signal: AbortSignal): Promise<SafeFetchResult> {
  let current = start;
  let method: 'GET' | 'POST' = opts.method ?? 'GET';
  let body = opts.body;
  const headers: Record<string, string> = { 'user-agent': DEFAULT_USER_AGENT };
  for (const [name, value] of Object.entries(opts.headers ?? {})) headers[name.toLowerCase()] = value;

  for (let redirects = 0; ; redirects++) {
    let addresses: { address: string; family: 4 | 6 }[];
    try {
      addresses = await abortableRace(opts.guard.resolve(current), signal);
    } catch (err) {
      throw toFailure(err, current);
    }

    // Which answers are read to the end: a redirect that is followed and an error answer are not.
    const redirectFollowed = (status: number, resHeaders: Record<string, string>) =>
      REDIRECT_STATUSES.has(status) && resHeaders['location'] !== undefined && opts.maxRedirects > 0;
    const wantsBody = (status: number, resHeaders: Record<string, string>) =>
      !redirectFollowed(status, resHeaders) && ((status >= 200 && status < 300) || opts.acceptAnyStatus === true);

    const hop = method === 'GET' ? await getHop(current, addresses, headers, opts, signal, wantsBody) : await postHop(current, addresses, headers, body, opts, signal);
    try {
      const { status, headers: resHeaders } = hop;
      if (redirectFollowed(status, resHeaders)) {
        if (redirects >= opts.maxRedirects) {
          throw new FetchFailure('HTTP_ERROR', `too many redirects (more than ${opts.maxRedirects}) from ${start.href}`, {
            transient: false,
            status,
          });
        }
        let next: URL;
        try {
          next = new URL(resHeaders['location']!, current);
        } catch (err) {
          throw new FetchFailure('HTTP_ERROR', `${current.href} redirects to an invalid location`, {
            transient: false,
            status,
            cause: err,
          });
        }
        if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          delete headers['content-type'];
          delete headers['content-length'];
        }
        if (next.origin !== current.origin) for (const name of CREDENTIAL_HEADERS) delete headers[name];
        current = next;
        continue;
      }

      if (!wantsBody(status, resHeaders)) {
        const retryAfterMs = parseRetryAfter(resHeaders['retry-after']);
        throw new FetchFailure('HTTP_ERROR', `${current.href} answered HTTP ${status}`, {
          transient: status === 408 || status === 429 || status >= 500,
          status,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        });
      }
      return { status, headers: resHeaders, body: await hop.body(), finalUrl: current.href };
    } finally {
      hop.done();
    }
  }
}

/** One hop's answer, whichever client got it: its body read on demand, and its connection let go by done. */
interface Hop {
  status: number;
  headers: Record<string, string>;
  body(): Promise<Buffer>;
  done(): void;
}

/** A GET through http1.ts: the body is read (into opts.bodyBuffer) with the head when wantsBody says so. */
async function getHop(
  url: URL,
  addresses: { address: string }[],
  headers: Record<string, string>,
  opts: SafeFetchOptions,
  signal: AbortSignal,
  wantsBody: (status: number, headers: Record<string, string>) => boolean,
): Promise<Hop> {
  try {
    const response = await http1Get({
      url,
      addresses,
      headers,
      connectTimeoutMs: opts.connectTimeoutMs,
      signal,
      wantsBody: (head) => wantsBody(head.status, head.headers),
      maxBytes: opts.maxBytes,
      tooLarge: () => tooLarge(url, opts.maxBytes),
      bodyBuffer: opts.bodyBuffer ?? newBuffer,
      ...(opts.agents ? { pool: opts.agents[poolFor](url, addresses) } : {}),
    });
    return { status: response.status, headers: response.headers, body: async () => response.body!, done: () => undefined };
  } catch (err) {
    throw toFailure(err, url);
  }
}

/** A POST (webhooks) through undici, on a kept or one-off Agent pinned to the checked addresses. */
async function postHop(
  url: URL,
  addresses: { address: string }[],
  headers: Record<string, string>,
  body: string | Buffer | undefined,
  opts: SafeFetchOptions,
  signal: AbortSignal,
): Promise<Hop> {
  const shared = opts.agents?.[agentFor](url, addresses, opts.connectTimeoutMs);
  const agent = shared ?? new Agent({ connect: pinnedConnector(addresses, opts.connectTimeoutMs), pipelining: 1 });
  const release = () => {
    if (!shared) agent.destroy().catch(() => {});
  };
  let res;
  try {
    res = await request(url, {
      dispatcher: agent,
      headersTimeout: opts.totalTimeoutMs,
      bodyTimeout: opts.totalTimeoutMs,
      method: 'POST',
      headers,
      body: body ?? '',
      signal,
    });
  } catch (err) {
    release();
    throw toFailure(err, url);
  }
  const resHeaders = flattenHeaders(res.headers);
  let read = false;
  return {
    status: res.statusCode,
    headers: resHeaders,
    body: () => {
      read = true;
      return readLimited(res.body, resHeaders['content-length'], opts.maxBytes, url, opts.bodyBuffer ?? newBuffer);
    },
    done: () => {
      if (!read) discard(res.body);
      release();
    },
  };
}

function tooLarge(url: URL, maxBytes: number): FetchFailure {
  return new FetchFailure('TOO_LARGE', `${url.href} is larger than the limit of ${maxBytes} bytes`, { transient: false });
}

interface BodyStream extends AsyncIterable<Buffer> {
  destroy(err?: Error): void;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/** Drops a response body we will not read; undici reports the destroy as an 'error' we do not care about. */
function discard(stream: BodyStream): void {
  stream.on('error', () => {});
  stream.destroy();
}

/** A Buffer over an ArrayBuffer of exactly `size` bytes, which the compression pool can transfer as it is. */
function newBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

async function readLimited(
  stream: BodyStream,
  contentLength: string | undefined,
  maxBytes: number,
  url: URL,
  bodyBuffer: (size: number) => Buffer,
): Promise<Buffer> {

  if (contentLength !== undefined && /^\d+$/.test(contentLength.trim()) && Number(contentLength) > maxBytes) {
    discard(stream);
    throw tooLarge(url, maxBytes);
  }
  // With a trustworthy length, bytes go straight into one buffer of that size (no chunk list, no
  // concat copy).
  const declared = contentLength !== undefined && /^\d+$/.test(contentLength.trim()) ? Number(contentLength) : undefined;
  const whole = declared !== undefined && declared > 0 ? bodyBuffer(declared) : undefined;
  const chunks: Buffer[] = [];
  let total = 0;
  let filled = 0;
  try {
    for await (const chunk of stream) {
      if (total + chunk.length > maxBytes) {
        discard(stream);
        throw tooLarge(url, maxBytes);
      }
      if (whole && chunks.length === 0 && filled + chunk.length <= whole.length) {
        copyInto(whole, chunk, filled);
        filled += chunk.length;
      } else chunks.push(chunk);
      total += chunk.length;
    }
  } catch (err) {
    if (err instanceof FetchFailure) throw err;
    throw toFailure(err, url);
  }
  if (whole && chunks.length === 0) return filled === whole.length ? whole : whole.subarray(0, filled);
  const body = bodyBuffer(total);
  let at = 0;
  if (whole) {
    copyInto(body, whole.subarray(0, filled), 0);
    at = filled;
  }
  for (const chunk of chunks) {
    copyInto(body, chunk, at);
    at += chunk.length;
  }
  return body;
}
