import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAddressGuard, type Resolver } from '../src/net/addressGuard.ts';
import { MessageChannel } from 'node:worker_threads';
import { createDownloadThread, type DownloadOptions, type DownloadThread, type FromDownloadThread } from '../src/net/downloadThread.ts';
import { CHECKED_ADDRESSES_MS, serveDownloads } from '../workers/downloads.ts';
import { failure } from './support/fetchFailure.ts';

// Loopback only: the image server listens on 127.0.0.1; every other URL is refused by the guard
// before any connection, or names a host that only the injected resolver knows.

const IMAGE = randomBytes(300 * 1024);
const MB = 1024 * 1024;

let server: http.Server;
let base: string;
let trapHits = 0;
let trap: http.Server;
let thread: DownloadThread;

const options = (over: Partial<DownloadOptions> = {}): DownloadOptions => ({
  maxBytes: MB,
  connectTimeoutMs: 2000,
  totalTimeoutMs: 5000,
  maxRedirects: 3,
  ...over,
});
const shared = (size = MB) => Buffer.from(new SharedArrayBuffer(size));

beforeAll(async () => {
  trap = http.createServer((_req, res) => res.end('trapped'));
  trap.on('connection', () => trapHits++);
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  const trapPort = (trap.address() as AddressInfo).port;

  server = http.createServer((req, res) => {
    if (req.url === '/image.jpg') res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': IMAGE.length }).end(IMAGE);
    else if (req.url === '/moved') res.writeHead(302, { location: '/image.jpg' }).end();
    else if (req.url === '/to-trap') res.writeHead(302, { location: `http://127.0.0.1:${trapPort}/` }).end();
    else if (req.url === '/busy') res.writeHead(503, { 'retry-after': '7' }).end('busy');
    else if (req.url === '/stall') res.writeHead(200, { 'content-type': 'image/jpeg' }).flushHeaders();
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  thread = createDownloadThread(createAddressGuard({ allowPrivateNetworks: false, allowHosts: [`127.0.0.1:${port}`] }));
});

afterAll(async () => {
  await thread.close();
  server.closeAllConnections();
  server.close();
  trap.closeAllConnections();
  trap.close();
});

describe('the download thread', () => {
  it('downloads into the shared memory it was handed, following redirects', async () => {
    const into = shared();
    const download = await thread.fetch(`${base}/moved`, options(), into);
    expect(download).toMatchObject({ status: 200, finalUrl: `${base}/image.jpg` });
    expect(download.headers['content-type']).toBe('image/jpeg');
    expect(download.body.buffer).toBe(into.buffer);
    expect(download.body.equals(IMAGE)).toBe(true);
  });

  it("checks every hop with the main thread's guard: blocked addresses and redirects to them never connect", async () => {
    const before = trapHits;
    const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/`;
    expect(await failure(thread.fetch(trapUrl, options(), shared()))).toMatchObject({ code: 'BLOCKED_ADDRESS', transient: false });
    expect(await failure(thread.fetch(`${base}/to-trap`, options(), shared()))).toMatchObject({ code: 'BLOCKED_ADDRESS' });
    expect(trapHits).toBe(before);
  });

  it("reports the guard's DNS failures and the server's answers as safeFetch does", async () => {
    const resolver: Resolver = () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND nx.test'), { code: 'ENOTFOUND' }));
    const other = createDownloadThread(createAddressGuard({ allowPrivateNetworks: false, resolver }));
    try {
      expect(await failure(other.fetch('http://nx.test/a.jpg', options(), shared()))).toMatchObject({ code: 'NETWORK_ERROR', transient: false });
    } finally {
      await other.close();
    }
    expect(await failure(thread.fetch(`${base}/missing`, options(), shared()))).toMatchObject({ code: 'HTTP_ERROR', status: 404, transient: false });
    expect(await failure(thread.fetch(`${base}/busy`, options(), shared()))).toMatchObject({ code: 'HTTP_ERROR', status: 503, transient: true, retryAfterMs: 7000 });
    expect(await failure(thread.fetch(`${base}/image.jpg`, options({ maxBytes: 1000 }), shared()))).toMatchObject({ code: 'TOO_LARGE' });
    expect(await failure(thread.fetch(`${base}/stall`, options({ totalTimeoutMs: 200 }), shared()))).toMatchObject({ code: 'DOWNLOAD_TIMEOUT', transient: true });
  });

  it("an abort rejects with the signal's reason, once the thread has stopped", async () => {
    const controller = new AbortController();
    const pending = thread.fetch(`${base}/stall`, options({ signal: controller.signal }), shared());
    setTimeout(() => controller.abort(new Error('stopping')), 50);
    await expect(pending).rejects.toThrow('stopping');
    // The thread goes on serving.
    expect((await thread.fetch(`${base}/image.jpg`, options(), shared())).body.equals(IMAGE)).toBe(true);
  });

  it('refuses memory that is not shared or too small; close fails what runs, and the next fetch starts again', async () => {
    await expect(thread.fetch(`${base}/image.jpg`, options(), Buffer.alloc(MB))).rejects.toThrow(RangeError);
    await expect(thread.fetch(`${base}/image.jpg`, options(), shared(100))).rejects.toThrow(RangeError);
    const other = createDownloadThread(createAddressGuard({ allowPrivateNetworks: true }));
    const stalled = other.fetch(`${base}/stall`, options(), shared());
    await new Promise((resolve) => setTimeout(resolve, 100));
    await other.close();
    await expect(stalled).rejects.toThrow(/closed|stopped/);
    expect((await other.fetch(`${base}/image.jpg`, options(), shared())).body.equals(IMAGE)).toBe(true);
    await other.close();
  });

  it("asks the main thread's guard once per origin for a while, and again for a refused host every time", async () => {
    // The thread's own side (workers/downloads.ts) over a channel, with a clock of the test's.
    let clock = 1_000_000;
    const channel = new MessageChannel();
    serveDownloads(channel.port1, () => clock);
    const port = (server.address() as AddressInfo).port;
    const asked: string[] = [];
    const answers = new Map<number, (message: FromDownloadThread) => void>();
    channel.port2.on('message', (message: FromDownloadThread) => {
      if (message.type !== 'resolve') return answers.get(message.id)?.(message);
      asked.push(message.url);
      // The guard: this test's image server is allowed, every other host refused.
      if (new URL(message.url).port === String(port)) channel.port2.postMessage({ type: 'resolved', id: message.id, addresses: [{ address: '127.0.0.1', family: 4 }] });
      else channel.port2.postMessage({ type: 'resolved', id: message.id, error: { name: 'BlockedAddressError', message: `${message.url} is refused` } });
    });
    let nextId = 0;
    const fetchOnce = (url: string) =>
      new Promise<FromDownloadThread>((resolve) => {
        const id = ++nextId;
        answers.set(id, resolve);
        channel.port2.postMessage({ type: 'fetch', id, url, ...options(), into: shared() });
      });
    try {
      for (let i = 0; i < 3; i++) expect(await fetchOnce(`${base}/image.jpg`)).toMatchObject({ type: 'done', status: 200, length: IMAGE.length });
      // A redirect to the same origin needs no new answer either.
      expect(await fetchOnce(`${base}/moved`)).toMatchObject({ type: 'done', finalUrl: `${base}/image.jpg` });
      expect(asked).toEqual([`${base}/image.jpg`]);

      const refused = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/`;
      for (let i = 0; i < 2; i++) expect(await fetchOnce(refused)).toMatchObject({ type: 'failed', failure: { code: 'BLOCKED_ADDRESS' } });
      expect(asked.filter((url) => url === refused)).toHaveLength(2);

      // Once the answer is old, the guard is asked again (a hostname that moved is followed).
      clock += CHECKED_ADDRESSES_MS + 1;
      expect(await fetchOnce(`${base}/image.jpg`)).toMatchObject({ type: 'done' });
      expect(asked.filter((url) => url.startsWith(base))).toHaveLength(2);
    } finally {
      channel.port1.close();
      channel.port2.close();
    }
  });
});
