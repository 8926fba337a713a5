import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { Http1Pool, http1Get, type Http1Request } from '../src/net/http1.ts';

/**
 * The download client against loopback servers that write their answers byte for byte, the way real
 * servers split them: across reads, in chunks, with interim answers, closing kept connections.
 */

const cert = readFileSync(new URL('./fixtures/localhost-cert.pem', import.meta.url));
const key = readFileSync(new URL('./fixtures/localhost-key.pem', import.meta.url));

type Answer = (socket: net.Socket, request: string, nth: number) => void;

const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A server that hands each request (its head, as text) to `answer`; counts connections and requests. */
async function serve(answer: Answer, secure = false) {
  const stats = { connections: 0, requests: 0, lastRequest: '' };
  const onSocket = (socket: net.Socket) => {
    stats.connections++;
    sockets.add(socket);
    let buffered = '';
    socket.on('error', () => undefined);
    socket.on('data', (data) => {
      buffered += data.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        stats.requests++;
        stats.lastRequest = head;
        answer(socket, head, stats.requests);
      }
    });
  };
  const server = secure ? tls.createServer({ key, cert }, onSocket) : net.createServer(onSocket);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return { port, stats };
}

/** Writes the pieces one after another, each in its own TCP segment (a pause between). */
async function trickle(socket: net.Socket, pieces: (string | Buffer)[]) {
  for (const piece of pieces) {
    socket.write(piece);
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
}

function get(url: string, extra: Partial<Http1Request> = {}) {
  return http1Get({
    url: new URL(url),
    addresses: [{ address: '127.0.0.1' }],
    headers: { 'user-agent': 'test' },
    connectTimeoutMs: 1000,
    signal: AbortSignal.timeout(5000),
    wantsBody: () => true,
    maxBytes: 1_000_000,
    tooLarge: () => new Error('too large'),
    bodyBuffer: (size) => Buffer.alloc(size),
    ...extra,
  });
}

const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));

describe('http1Get', () => {
  it('reads a content-length body split across many reads, the head split mid-line, into the buffer it asked for', async () => {
    const { port, stats } = await serve((socket) => {
      const head = `HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: ${body.length}\r\nX-Two: a\r\nx-two: b\r\n\r\n`;
      void trickle(socket, [head.slice(0, 7), head.slice(7, 40), head.slice(40) + body.subarray(0, 10).toString('latin1'), body.subarray(10, 5000), body.subarray(5000)]);
    });
    const buffers: Buffer[] = [];
    const response = await get(`http://127.0.0.1:${port}/a/b?c=d`, {
      bodyBuffer: (size) => {
        const buffer = Buffer.from(new SharedArrayBuffer(size));
        buffers.push(buffer);
        return buffer;
      },
    });
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject({ 'content-type': 'image/jpeg', 'x-two': 'a, b' });
    expect(buffers).toHaveLength(1);
    expect(response.body).toBe(buffers[0]);
    expect(Buffer.compare(response.body!, body)).toBe(0);
    expect(stats.lastRequest).toMatch(/^GET \/a\/b\?c=d HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nuser-agent: test\r\nconnection: close$/);
  });

  it('decodes chunked bodies whose framing is split anywhere, with extensions and trailers; skips 1xx answers', async () => {
    const { port } = await serve((socket) => {
      const wire =
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n' +
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `${(70_000).toString(16)};name=value\r\n${body.subarray(0, 70_000).toString('latin1')}\r\n` +
        `${(body.length - 70_000).toString(16).toUpperCase()}\r\n${body.subarray(70_000).toString('latin1')}\r\n` +
        '0\r\nX-Trailer: yes\r\n\r\n';
      const bytes = Buffer.from(wire, 'latin1');
      // Cut at every framing boundary's neighbourhood and in the middle of data.
      const cuts = [5, 30, 80, 130, 140, 70_150, 70_160, 70_165, bytes.length - 10, bytes.length - 3];
      const pieces: Buffer[] = [];
      let from = 0;
      for (const cut of cuts) {
        pieces.push(bytes.subarray(from, cut));
        from = cut;
      }
      pieces.push(bytes.subarray(from));
      void trickle(socket, pieces);
    });
    const response = await get(`http://127.0.0.1:${port}/`);
    expect(response.status).toBe(200);
    expect(Buffer.compare(response.body!, body)).toBe(0);
  });

  it('reads a body that runs to the end of the connection, and gives 204 an empty body', async () => {
    const { port } = await serve((socket, request) => {
      if (request.startsWith('GET /empty')) return socket.end('HTTP/1.1 204 No Content\r\n\r\n');
      void trickle(socket, ['HTTP/1.0 200 OK\r\n\r\n', body.subarray(0, 1000), body.subarray(1000)]).then(() => socket.end());
    });
    expect(Buffer.compare((await get(`http://127.0.0.1:${port}/`)).body!, body)).toBe(0);
    const empty = await get(`http://127.0.0.1:${port}/empty`);
    expect([empty.status, empty.body!.length]).toEqual([204, 0]);
  });

  it('keeps connections in a pool, and retries once on a new one when the server had closed a kept one', async () => {
    const { port, stats } = await serve((socket, _request, nth) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello`);
      // The second answer ends that connection, as an idle timeout on the server would after it.
      if (nth === 2) setTimeout(() => socket.end(), 20);
    });
    const pool = new Http1Pool();
    const texts = [];
    for (let i = 0; i < 2; i++) texts.push((await get(`http://127.0.0.1:${port}/`, { pool })).body!.toString());
    expect(stats).toMatchObject({ connections: 1, requests: 2 });
    expect(stats.lastRequest).toContain('connection: keep-alive');
    await new Promise((resolve) => setTimeout(resolve, 60));
    texts.push((await get(`http://127.0.0.1:${port}/`, { pool })).body!.toString());
    expect(texts).toEqual(['hello', 'hello', 'hello']);
    expect(stats).toMatchObject({ connections: 2, requests: 3 });
    pool.close();
  });

  it('does not keep a connection the server will close, or one that sent more than it framed', async () => {
    const { port, stats } = await serve((socket, request) => {
      if (request.startsWith('GET /close')) socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
      else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA');
    });
    const pool = new Http1Pool();
    expect((await get(`http://127.0.0.1:${port}/close`, { pool })).body!.toString()).toBe('ok');
    expect((await get(`http://127.0.0.1:${port}/extra`, { pool })).body!.toString()).toBe('ok');
    expect((await get(`http://127.0.0.1:${port}/extra`, { pool })).body!.toString()).toBe('ok');
    expect(stats.connections).toBe(3);
    pool.close();
  });

  it('stops after the head when the body is not wanted', async () => {
    const { port } = await serve((socket) => socket.write(`HTTP/1.1 302 Found\r\nlocation: /next\r\ncontent-length: ${body.length}\r\n\r\n`));
    const response = await get(`http://127.0.0.1:${port}/`, { wantsBody: (head) => head.status === 200 });
    expect(response).toEqual({ status: 302, headers: { location: '/next', 'content-length': String(body.length) }, body: undefined });
  });

  it('refuses what is not HTTP/1.x, oversized or malformed heads, bad chunks and lengths, and a body over maxBytes', async () => {
    const answers: Record<string, string> = {
      '/status': 'SSH-2.0-OpenSSH\r\n\r\n',
      '/fold': 'HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 0\r\n\r\n',
      '/huge': `HTTP/1.1 200 OK\r\nx-a: ${'a'.repeat(20_000)}\r\n\r\n`,
      '/lengths': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc',
      '/nan': 'HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nab',
      '/chunk': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
      '/gzip': 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n',
      '/big': 'HTTP/1.1 200 OK\r\ncontent-length: 2000000\r\n\r\n',
      '/cut': 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc',
    };
    const { port } = await serve((socket, request) => {
      const path = request.split(' ')[1]!;
      socket.write(answers[path]!);
      if (path === '/cut') socket.end();
    });
    const outcome = (path: string) =>
      get(`http://127.0.0.1:${port}${path}`).then(
        () => 'answered',
        (error: Error & { code?: string }) => error.code ?? error.message,
      );
    expect(await outcome('/status')).toBe('HPE_INVALID_STATUS');
    expect(await outcome('/fold')).toBe('HPE_INVALID_HEADER_TOKEN');
    expect(await outcome('/huge')).toBe('HPE_HEADER_OVERFLOW');
    expect(await outcome('/lengths')).toBe('HPE_UNEXPECTED_CONTENT_LENGTH');
    expect(await outcome('/nan')).toBe('HPE_INVALID_CONTENT_LENGTH');
    expect(await outcome('/chunk')).toBe('HPE_INVALID_CHUNK_SIZE');
    expect(await outcome('/gzip')).toBe('HPE_INVALID_TRANSFER_ENCODING');
    expect(await outcome('/big')).toBe('too large');
    expect(await outcome('/cut')).toBe('ECONNRESET');
  });

  it('gives up at the signal, while connecting or waiting for the answer', async () => {
    const { port } = await serve(() => undefined);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('stop')), 50);
    await expect(get(`http://127.0.0.1:${port}/`, { signal: controller.signal })).rejects.toThrow('stop');
    const aborted = AbortSignal.abort(new Error('already'));
    await expect(get(`http://127.0.0.1:${port}/`, { signal: aborted })).rejects.toThrow('already');
  });

  it('speaks TLS with the URL hostname for SNI and the certificate check, and refuses a certificate it cannot trust', async () => {
    const { port } = await serve((socket) => socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`), body])), true);
    const response = await get(`https://localhost:${port}/`, { ca: cert });
    expect(Buffer.compare(response.body!, body)).toBe(0);
    const untrusted = await get(`https://localhost:${port}/`).catch((error: Error & { code?: string }) => error.code);
    expect(untrusted).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });
});
