/**
 * The download thread (see src/net/downloadThread.ts, its other side): safeFetch for the runner, off
 * the main thread. The address guard is the main thread's, asked for each hop; the body goes straight
 * into the shared memory the request names. Connections are kept per origin and checked addresses.
 */
import type { MessagePort } from 'node:worker_threads';
import { BlockedAddressError, type AddressGuard } from '../src/net/addressGuard.ts';
import {
  serializeError,
  serializeFailure,
  type FetchRequest,
  type FromDownloadThread,
  type SerializedError,
  type ToDownloadThread,
} from '../src/net/downloadThread.ts';
import { FetchFailure, createPinnedAgents, safeFetch } from '../src/net/safeFetch.ts';

/** The guard's error as the main thread saw it, so safeFetch maps it as it would have there. */
function guardError(error: SerializedError): Error {
  if (error.name === 'BlockedAddressError') return new BlockedAddressError(error.message);
  return Object.assign(new Error(error.message), error.code === undefined ? {} : { code: error.code });
}

/** The guard's answer for a URL: the checked addresses a connection may go to. */
type Addresses = Awaited<ReturnType<AddressGuard['resolve']>>;

/**
 * How long the guard's answer for an origin is used again without asking the main thread. A photo
 * catalogue's images mostly come from one or a few hosts: asking for each image meant a DNS lookup
 * (getaddrinfo, on libuv's pool) and two more thread wake-ups per image. Only addresses that passed
 * the guard are kept, so a connection still only ever goes to a checked address; a hostname that
 * moves is followed within this time, as a resolver's cache would. Refusals are never kept.
 */
export const CHECKED_ADDRESSES_MS = 30_000;
const MAX_CHECKED_ORIGINS = 1_000;

export function serveDownloads(port: MessagePort, now: () => number = Date.now): void {
  const agents = createPinnedAgents();
  /** The guard's answers by origin (scheme, hostname and port: what the guard's answer depends on). */
  const checkedAddresses = new Map<string, { addresses: Addresses; until: number }>();
  const running = new Map<number, AbortController>();
  /** The hop each download waits to have checked (one at a time per download). */
  const checks = new Map<number, { resolve: (addresses: Addresses) => void; reject: (error: Error) => void }>();
  const send = (message: FromDownloadThread) => port.postMessage(message);

  port.on('message', (message: ToDownloadThread) => {
    switch (message.type) {
      case 'fetch':
        void download(message);
        return;
      case 'abort':
        running.get(message.id)?.abort();
        return;
      case 'resolved': {
        const check = checks.get(message.id);
        checks.delete(message.id);
        if ('error' in message) check?.reject(guardError(message.error));
        else check?.resolve(message.addresses);
        return;
      }
    }
  });

  async function download(request: FetchRequest): Promise<void> {
    const { id } = request;
    const controller = new AbortController();
    running.set(id, controller);
    const guard: AddressGuard = {
      resolve: async (url) => {
        const origin = `${url.protocol}//${url.host}`;
        const kept = checkedAddresses.get(origin);
        if (kept && kept.until > now()) return kept.addresses;
        const addresses = await new Promise<Addresses>((resolve, reject) => {
          checks.set(id, { resolve, reject });
          send({ type: 'resolve', id, url: url.href });
        });
        checkedAddresses.delete(origin);
        checkedAddresses.set(origin, { addresses, until: now() + CHECKED_ADDRESSES_MS });
        // Bounded: the oldest answers go first.
        if (checkedAddresses.size > MAX_CHECKED_ORIGINS) checkedAddresses.delete(checkedAddresses.keys().next().value!);
        return addresses;
      },
    };
    const into = Buffer.from(request.into.buffer, request.into.byteOffset, request.into.byteLength);
    let handedOut = false;
    try {
      const result = await safeFetch(request.url, {
        guard,
        maxBytes: request.maxBytes,
        connectTimeoutMs: request.connectTimeoutMs,
        totalTimeoutMs: request.totalTimeoutMs,
        maxRedirects: request.maxRedirects,
        signal: controller.signal,
        agents,
        // safeFetch asks once, but for a body that outgrew its content-length (then once more, for
        // the whole): that one is copied into place below.
        bodyBuffer: (size) => {
          if (handedOut) return Buffer.from(new ArrayBuffer(size));
          handedOut = true;
          return into.subarray(0, size);
        },
      });
      const { body } = result;
      if (body.length > 0 && (body.buffer !== into.buffer || body.byteOffset !== into.byteOffset)) into.fill(body, 0, body.length);
      send({ type: 'done', id, status: result.status, headers: result.headers, finalUrl: result.finalUrl, length: body.length });
    } catch (error) {
      if (controller.signal.aborted) send({ type: 'aborted', id });
      else if (error instanceof FetchFailure) send({ type: 'failed', id, failure: serializeFailure(error) });
      else send({ type: 'error', id, message: serializeError(error).message });
    } finally {
      running.delete(id);
      checks.delete(id);
    }
  }
}
