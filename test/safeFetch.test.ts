import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createAddressGuard, type AddressGuard, type Resolver } from '../src/net/addressGuard.ts';
import { FetchFailure, createPinnedAgents, parseRetryAfter, safeFetch, type SafeFetchOptions } from '../src/net/safeFetch.ts';
import { failure } from './support/fetchFailure.ts';

// Loopback only: every server here listens on 127.0.0.0/8 (or ::1), and every URL either points at one of
// them or is refused by the guard before any connection. No test performs a real DNS query: the only
// hostnames used are literals, `localhost` (refused without DNS) and names served by an injected resolver.

const IMAGE = randomBytes(200 * 1024);
const MB = 1024 * 1024;

type Closable = { close(): void; closeAllConnections?(): void };
const cleanups: (() => void)[] = [];

function listen<T extends net.Server>(server: T, host: string, port = 0): Promise<T> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function portOf(server: net.Server): number {
  return (server.address() as AddressInfo).port;
}

function track(server: net.Server & Closable): void {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
}

/** Counts connections (not just requests): a blocked fetch must not even open a socket. */
function trapServer(): http.Server & { hits: number } {
  const server = http.createServer((_req, res) => res.end('trapped')) as http.Server & { hits: number };
  server.hits = 0;
  server.on('connection', () => server.hits++);
  track(server);
  return server;
}

let allowed: http.Server;
let trap: http.Server & { hits: number };
let trapV6: (http.Server & { hits: number }) | undefined;
let raw: net.Server;
let P: number; // allowed server port
let Q: number; // trap port
let R: number; // raw server port
let guard: AddressGuard;
const intervals = new Set<NodeJS.Timeout>();

function allowedHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname;
  if (path === '/image.png') {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': IMAGE.length });
    res.end(IMAGE);
  } else if (path === '/redirect-to-trap') {
    res.writeHead(302, { location: `http://127.0.0.1:${Q}/` });
    res.end();
  } else if (path === '/redirect-to-trap-relative-host') {
    res.writeHead(307, { location: `//localhost:${Q}/x` });
    res.end();
  } else if (path === '/redirect-to-file') {
    res.writeHead(302, { location: 'file:///etc/passwd' });
    res.end();
  } else if (path.startsWith('/chain/')) {
    const n = Number(path.slice('/chain/'.length));
    if (n > 0) res.writeHead(302, { location: `/chain/${n - 1}` }).end();
    else res.writeHead(200, { 'content-type': 'text/plain' }).end('end of chain');
  } else if (path === '/moved') {
    res.writeHead(301, { location: '/image.png' });
    res.end();
  } else if (path === '/see-other') {
    req.resume();
    res.writeHead(303, { location: '/echo' });
    res.end();
  } else if (path === '/status') {
    const code = Number(url.searchParams.get('code'));
    const headers: Record<string, string> = {};
    const ra = url.searchParams.get('retryAfter');
    if (ra) headers['retry-after'] = ra;
    res.writeHead(code, headers);
    res.end(`status ${code}`);
  } else if (path === '/declared-huge') {
    // Headers promise 50 MB, then nothing: the client must give up on the header alone.
    res.writeHead(200, { 'content-length': 50 * MB });
    res.flushHeaders();
  } else if (path === '/stall') {
    res.writeHead(200, { 'content-type': 'image/jpeg' });
    res.flushHeaders();
  } else if (path === '/trickle') {
    res.writeHead(200, { 'content-type': 'image/jpeg' });
    const timer = setInterval(() => res.write('x'), 50);
    intervals.add(timer);
    res.on('close', () => {
      clearInterval(timer);
      intervals.delete(timer);
    });
  } else if (path === '/destroy-mid') {
    res.writeHead(200, { 'content-length': 100_000 });
    res.write(Buffer.alloc(1000, 1), () => setTimeout(() => req.socket.destroy(), 20));
  } else if (path === '/echo') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString() }));
    });
  } else {
    res.writeHead(404);
    res.end('not found');
  }
}

/** Writes responses by hand, for framing node's http server would refuse to produce. */
function rawHandler(sock: net.Socket): void {
  sock.on('error', () => {});
  let head = '';
  sock.on('data', (d: Buffer) => {
    if (head.includes('\r\n\r\n')) return;
    head += d.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    const path = head.split(' ')[1] ?? '/';
    const chunk = Buffer.alloc(64 * 1024, 0x78);
    const total = (5 * MB) / chunk.length;
    let sent = 0;
    const pump = (frame: (c: Buffer) => Buffer[], end: () => void): void => {
      const step = (): void => {
        while (sent < total && !sock.destroyed) {
          sent++;
          let ok = true;
          for (const part of frame(chunk)) ok = sock.write(part) && ok;
          if (!ok) {
            sock.once('drain', step);
            return;
          }
        }
        if (!sock.destroyed) end();
      };
      step();
    };
    const plain = (c: Buffer): Buffer[] => [c];
    const chunked = (c: Buffer): Buffer[] => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')];
    if (path === '/cl-lie') {
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: 100\r\nconnection: close\r\n\r\n');
      pump(plain, () => sock.end());
    } else if (path === '/no-length') {
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\nconnection: close\r\n\r\n');
      pump(plain, () => sock.end());
    } else if (path === '/chunked') {
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ntransfer-encoding: chunked\r\n\r\n');
      pump(chunked, () => sock.end('0\r\n\r\n'));
    } else if (path === '/cl-and-chunked') {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n');
      pump(chunked, () => sock.end('0\r\n\r\n'));
    } else {
      sock.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    }
  });
}

beforeAll(async () => {
  allowed = http.createServer(allowedHandler);
  track(allowed);
  await listen(allowed, '127.0.0.1');
  P = portOf(allowed);

  trap = trapServer();
  await listen(trap, '127.0.0.1');
  Q = portOf(trap);
  // Best effort: the same trap port on ::1 too, so [::1]:Q would be counted if it ever connected.
  const v6 = trapServer();
  trapV6 = await listen(v6, '::1', Q).catch(() => undefined);

  raw = net.createServer(rawHandler);
  track(raw);
  await listen(raw, '127.0.0.1');
  R = portOf(raw);

  guard = createAddressGuard({ allowPrivateNetworks: false, allowHosts: [`127.0.0.1:${P}`, `127.0.0.1:${R}`] });
});

afterAll(() => {
  for (const t of intervals) clearInterval(t);
  for (const c of cleanups) c();
});

function opts(over: Partial<SafeFetchOptions> = {}): SafeFetchOptions {
  return { guard, maxBytes: MB, connectTimeoutMs: 2000, totalTimeoutMs: 5000, maxRedirects: 3, ...over };
}

function trapHits(): number {
  return trap.hits + (trapV6?.hits ?? 0);
}

describe('safeFetch against loopback servers', () => {
  it('downloads an image from an allowed server', async () => {
    const res = await safeFetch(`http://127.0.0.1:${P}/image.png`, opts());
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.body.equals(IMAGE)).toBe(true);
    expect(res.finalUrl).toBe(`http://127.0.0.1:${P}/image.png`);
  });

  it.each([
    (q: number) => `http://127.0.0.1:${q}/`,
    (q: number) => `http://127.1:${q}/`,
    (q: number) => `http://2130706433:${q}/`,
    (q: number) => `http://0x7f000001:${q}/`,
    (q: number) => `http://017700000001:${q}/`,
    (q: number) => `http://0.0.0.0:${q}/`,
    (q: number) => `http://localhost:${q}/`,
    (q: number) => `http://[::1]:${q}/`,
    (q: number) => `http://[::ffff:127.0.0.1]:${q}/`,
  ])('refuses the trap via literal form #%#', async (form) => {
    const before = trapHits();
    const err = await failure(safeFetch(form(Q), opts()));
    expect(err.code).toBe('BLOCKED_ADDRESS');
    expect(err.transient).toBe(false);
    expect(err.message).toMatch(/not a public address/);
    expect(trapHits()).toBe(before);
  });

  it('refuses a redirect from the allowed server to the trap', async () => {
    for (const path of ['/redirect-to-trap', '/redirect-to-trap-relative-host']) {
      const err = await failure(safeFetch(`http://127.0.0.1:${P}${path}`, opts()));
      expect(err.code).toBe('BLOCKED_ADDRESS');
    }
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/redirect-to-file`, opts()));
    expect(err.code).toBe('BLOCKED_ADDRESS');
    expect(trapHits()).toBe(0);
  });

  it('follows redirects within the allowed server', async () => {
    const res = await safeFetch(`http://127.0.0.1:${P}/moved`, opts());
    expect(res.body.equals(IMAGE)).toBe(true);
    expect(res.finalUrl).toBe(`http://127.0.0.1:${P}/image.png`);
    const chain = await safeFetch(`http://127.0.0.1:${P}/chain/3`, opts({ maxRedirects: 3 }));
    expect(chain.body.toString()).toBe('end of chain');
  });

  it('fails a redirect chain longer than maxRedirects', async () => {
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/chain/4`, opts({ maxRedirects: 3 })));
    expect(err.code).toBe('HTTP_ERROR');
    expect(err.transient).toBe(false);
    expect(err.message).toMatch(/too many redirects/);
  });

  it('with maxRedirects 0 a redirect is a plain non-2xx answer', async () => {
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/moved`, opts({ maxRedirects: 0 })));
    expect(err).toMatchObject({ code: 'HTTP_ERROR', status: 301, transient: false });
    const res = await safeFetch(`http://127.0.0.1:${P}/moved`, { ...opts({ maxRedirects: 0 }), acceptAnyStatus: true });
    expect(res.status).toBe(301);
    expect(res.headers['location']).toBe('/image.png');
  });

  it('a content-length smaller than the body: only the framed bytes are read', async () => {
    // HTTP/1.1 framing: the body is the 100 declared bytes; the 5 MB after them are never read as body.
    const res = await safeFetch(`http://127.0.0.1:${R}/cl-lie`, opts());
    expect(res.body.length).toBe(100);
  });

  it.each(['/no-length', '/chunked'])('counts streamed bytes without a content-length (%s) → TOO_LARGE', async (path) => {
    const err = await failure(safeFetch(`http://127.0.0.1:${R}${path}`, opts()));
    expect(err).toMatchObject({ code: 'TOO_LARGE', transient: false });
  });

  it('a content-length contradicted by chunked framing is a broken response, never a body over the limit', async () => {
    // Both framings at once is refused outright (RFC 9112 §6.1: it is how responses are smuggled).
    const err = await failure(safeFetch(`http://127.0.0.1:${R}/cl-and-chunked`, opts()));
    expect(err).toMatchObject({ code: 'NETWORK_ERROR', transient: false });
  });

  it('a declared content-length over the limit fails at once', async () => {
    const started = performance.now();
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/declared-huge`, opts({ totalTimeoutMs: 5000 })));
    expect(err).toMatchObject({ code: 'TOO_LARGE', transient: false });
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it('a server that stalls after the headers → DOWNLOAD_TIMEOUT', async () => {
    const started = performance.now();
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/stall`, opts({ totalTimeoutMs: 300 })));
    expect(err).toMatchObject({ code: 'DOWNLOAD_TIMEOUT', transient: true });
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('a server that trickles a byte every 50 ms is cut at the total timeout', async () => {
    const started = performance.now();
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/trickle`, opts({ totalTimeoutMs: 300 })));
    expect(err).toMatchObject({ code: 'DOWNLOAD_TIMEOUT', transient: true });
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('404 → HTTP_ERROR, not transient', async () => {
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/status?code=404`, opts()));
    expect(err).toMatchObject({ code: 'HTTP_ERROR', status: 404, transient: false });
    expect(err.retryAfterMs).toBeUndefined();
  });

  it('503 with Retry-After seconds → transient with retryAfterMs', async () => {
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/status?code=503&retryAfter=7`, opts()));
    expect(err).toMatchObject({ code: 'HTTP_ERROR', status: 503, transient: true, retryAfterMs: 7000 });
  });

  it('500, 408 and 429 are transient', async () => {
    for (const code of [500, 408, 429]) {
      const err = await failure(safeFetch(`http://127.0.0.1:${P}/status?code=${code}`, opts()));
      expect(err).toMatchObject({ code: 'HTTP_ERROR', status: code, transient: true });
    }
  });

  it('acceptAnyStatus returns the non-2xx answer with its body', async () => {
    const res = await safeFetch(`http://127.0.0.1:${P}/status?code=404`, { ...opts(), acceptAnyStatus: true });
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe('status 404');
  });

  it('connection refused → NETWORK_ERROR, transient', async () => {
    const closed = await listen(net.createServer(), '127.0.0.1');
    const port = portOf(closed);
    await new Promise<void>((r) => closed.close(() => r()));
    const g = createAddressGuard({ allowPrivateNetworks: false, allowHosts: [`127.0.0.1:${port}`] });
    const err = await failure(safeFetch(`http://127.0.0.1:${port}/`, opts({ guard: g })));
    expect(err).toMatchObject({ code: 'NETWORK_ERROR', transient: true });
  });

  it('a socket destroyed mid-response → NETWORK_ERROR', async () => {
    const err = await failure(safeFetch(`http://127.0.0.1:${P}/destroy-mid`, opts()));
    expect(err).toMatchObject({ code: 'NETWORK_ERROR', transient: true });
  });

  it('a DNS failure from the resolver → NETWORK_ERROR; ENOTFOUND is not transient, EAI_AGAIN is', async () => {
    for (const [code, transient] of [['ENOTFOUND', false], ['EAI_AGAIN', true]] as const) {
      const resolver: Resolver = () => Promise.reject(Object.assign(new Error(`getaddrinfo ${code} nx.test`), { code }));
      const g = createAddressGuard({ allowPrivateNetworks: false, resolver });
      const err = await failure(safeFetch('http://nx.test/a.jpg', opts({ guard: g })));
      expect(err).toMatchObject({ code: 'NETWORK_ERROR', transient });
    }
  });

  it('POSTs the body and headers', async () => {
    const res = await safeFetch(`http://127.0.0.1:${P}/echo`, {
      ...opts({ maxRedirects: 0 }),
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'webhook-id': 'msg_1' },
      body: '{"type":"request.completed"}',
    });
    const echoed = JSON.parse(res.body.toString()) as { method: string; headers: Record<string, string>; body: string };
    expect(echoed.method).toBe('POST');
    expect(echoed.body).toBe('{"type":"request.completed"}');
    expect(echoed.headers['content-type']).toBe('application/json');
    expect(echoed.headers['webhook-id']).toBe('msg_1');
    expect(echoed.headers['user-agent']).toBe('Squeeze/0.1 (+image compression)');
    expect(echoed.headers['accept-encoding']).toBeUndefined();
    expect(echoed.headers['host']).toBe(`127.0.0.1:${P}`);
  });

  it('a caller-supplied user-agent wins; a 303 after POST becomes a GET without the body', async () => {
    const res = await safeFetch(`http://127.0.0.1:${P}/see-other`, {
      ...opts(),
      method: 'POST',
      headers: { 'User-Agent': 'custom/1' },
      body: Buffer.from('payload'),
    });
    const echoed = JSON.parse(res.body.toString()) as { method: string; headers: Record<string, string>; body: string };
    expect(echoed).toMatchObject({ method: 'GET', body: '' });
    expect(echoed.headers['user-agent']).toBe('custom/1');
  });

  it('an abort by the caller rethrows the AbortError, not a FetchFailure', async () => {
    const controller = new AbortController();
    const pending = safeFetch(`http://127.0.0.1:${P}/stall`, opts({ signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    const err = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).not.toBeInstanceOf(FetchFailure);
    expect((err as Error).name).toBe('AbortError');
    const already = AbortSignal.abort();
    await expect(safeFetch(`http://127.0.0.1:${P}/image.png`, opts({ signal: already }))).rejects.toMatchObject({
      name: 'AbortError',
    });
  });

  it('pins each hop to the address the guard checked (no second lookup, no rebinding)', async (ctx) => {
    // The real server listens on 127.0.0.2:S; a trap takes the same port on 127.0.0.1. The hostname is
    // `localhost` (allowed for this port), so even a lookup that bypassed the injected resolver would land
    // on the trap (or ::1) and never leave the machine.
    const good = http.createServer((req, res) => res.end(JSON.stringify({ host: req.headers.host })));
    track(good);
    let pinTrap: (http.Server & { hits: number }) | undefined;
    for (let i = 0; i < 5 && !pinTrap; i++) {
      const listening = await listen(good, '127.0.0.2').then(
        () => true,
        () => false,
      );
      if (!listening) ctx.skip();
      const t = trapServer();
      pinTrap = await listen(t, '127.0.0.1', portOf(good)).catch(() => undefined);
      if (!pinTrap) await new Promise<void>((r) => good.close(() => r()));
    }
    if (!pinTrap) return ctx.skip();
    const S = portOf(good);

    const answers = [[{ address: '127.0.0.2', family: 4 as const }]];
    const resolver = vi.fn<Resolver>(async () => answers.shift() ?? [{ address: '127.0.0.1', family: 4 }]);
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver, allowHosts: [`localhost:${S}`] });
    const res = await safeFetch(`http://localhost:${S}/`, opts({ guard: g }));
    expect(JSON.parse(res.body.toString())).toEqual({ host: `localhost:${S}` });
    expect(resolver).toHaveBeenCalledTimes(1);
    expect(pinTrap.hits).toBe(0);
  });
});

describe('safeFetch with kept connections and a body buffer of the caller', () => {
  /** Counts the connections a server accepts. */
  function counting(server: net.Server): () => number {
    let connections = 0;
    server.on('connection', () => connections++);
    return () => connections;
  }

  it('reuses connections for downloads from the same origin with `agents`, one per download without', async () => {
    const connections = counting(allowed);
    const agents = createPinnedAgents();
    try {
      const before = connections();
      for (let i = 0; i < 4; i++) {
        const res = await safeFetch(`http://127.0.0.1:${P}/image.png`, opts({ agents }));
        expect(res.body.equals(IMAGE)).toBe(true);
      }
      // A download that starts the moment the previous one ended may find its connection not yet
      // handed back, and open a second one; after that they take turns.
      expect(connections() - before).toBeLessThanOrEqual(2);
      const without = connections();
      for (let i = 0; i < 2; i++) await safeFetch(`http://127.0.0.1:${P}/image.png`, opts());
      expect(connections() - without).toBe(2);
    } finally {
      await agents.close();
    }
  });

  it('a kept connection serves only the addresses checked for that call', async (ctx) => {
    // One hostname, two loopback addresses on the same port: 127.0.0.2 first, then 127.0.0.1. The second
    // download must go where its own check said (not down the connection kept from the first), and a third
    // one to 127.0.0.2 may reuse that connection.
    const first = http.createServer((_req, res) => res.end('first'));
    track(first);
    const firstConnections = counting(first);
    let second: http.Server | undefined;
    for (let i = 0; i < 5 && !second; i++) {
      const listening = await listen(first, '127.0.0.2').then(
        () => true,
        () => false,
      );
      if (!listening) return ctx.skip();
      const candidate = http.createServer((_req, res) => res.end('second'));
      track(candidate);
      second = await listen(candidate, '127.0.0.1', portOf(first)).catch(() => undefined);
      if (!second) await new Promise<void>((r) => first.close(() => r()));
    }
    if (!second) return ctx.skip();
    const S = portOf(first);
    const answers = ['127.0.0.2', '127.0.0.1', '127.0.0.2'];
    const resolver = vi.fn<Resolver>(async () => [{ address: answers.shift()!, family: 4 }]);
    const g = createAddressGuard({ allowPrivateNetworks: false, resolver, allowHosts: [`images.test:${S}`] });
    const agents = createPinnedAgents();
    try {
      const bodies: string[] = [];
      for (let i = 0; i < 3; i++) bodies.push((await safeFetch(`http://images.test:${S}/`, opts({ guard: g, agents }))).body.toString());
      expect(bodies).toEqual(['first', 'second', 'first']);
      expect(firstConnections()).toBeLessThanOrEqual(2);
    } finally {
      await agents.close();
    }
  });

  it('fills the buffer the caller hands out: sized from content-length up front, or from the streamed total', async () => {
    const sizes: number[] = [];
    const bodyBuffer = (size: number) => {
      sizes.push(size);
      return Buffer.from(new SharedArrayBuffer(size + 7), 3, size);
    };
    const res = await safeFetch(`http://127.0.0.1:${P}/image.png`, opts({ bodyBuffer }));
    expect(sizes).toEqual([IMAGE.length]);
    expect(res.body.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(res.body.equals(IMAGE)).toBe(true);

    sizes.length = 0;
    const chunked = await safeFetch(`http://127.0.0.1:${R}/chunked`, opts({ maxBytes: 6 * MB, bodyBuffer }));
    expect(sizes).toEqual([5 * MB]);
    expect(chunked.body.length).toBe(5 * MB);
    expect(chunked.body.every((byte) => byte === 0x78)).toBe(true);
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP-dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
