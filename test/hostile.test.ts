import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collectSubscription,
  eventually,
  photoJpeg,
  serveBytes,
  startImageServer,
  startSqueeze,
  startWebhookReceiver,
  uploadCsv,
  type LoopbackServer,
  type Squeeze,
  type WebhookReceiver,
  pngBomb,
} from './support/harness.ts';

// Hostile input end to end, through the real service: GraphQL multipart upload → runner → safeFetch →
// Piscina/sharp → database → output CSV / webhook / GraphQL.
//
// Network rule: every URL here names a loopback address (127.0.0.0/8 or ::1). The only servers that may be
// reached are the test's own "good" image server and the webhook receiver (allowHosts); the TRAP listens on
// 127.0.0.1 and ::1 at one port and counts every TCP connection: a blocked URL must not even open a socket.

interface Trap {
  port: number;
  connections: number;
  requests: string[];
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 and (when the machine has it) ::1 on the same port; counts connections, not just requests. */
async function startTrap(): Promise<Trap> {
  const sockets = new Set<Socket>();
  const trap = { port: 0, connections: 0, requests: [] as string[] };
  const servers: http.Server[] = [];
  const make = () => {
    const server = http.createServer((req, res) => {
      trap.requests.push(`${req.headers.host ?? ''}${req.url ?? ''}`);
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end('trapped');
    });
    server.on('connection', (socket: Socket) => {
      trap.connections++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    servers.push(server);
    return server;
  };
  const listen = (server: http.Server, host: string, port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  const v4 = make();
  await listen(v4, '127.0.0.1', 0);
  trap.port = (v4.address() as AddressInfo).port;
  const v6 = make();
  await listen(v6, '::1', trap.port).catch(() => servers.pop()); // no IPv6 loopback: the v4 trap alone
  return {
    get port() {
      return trap.port;
    },
    get connections() {
      return trap.connections;
    },
    requests: trap.requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}



const IMAGES_QUERY = `query($id: ID!) { request(id: $id) {
  status outputCsvUrl progress { total done failed cancelled pending }
  products { edges { node { serialNumber productName inputImageUrls
    images { position inputUrl outputUrl status attempts error { code message } } } } } } }`;

interface ImageView {
  position: number;
  inputUrl: string;
  outputUrl: string | null;
  status: string;
  attempts: number;
  error: { code: string; message: string } | null;
}
interface ProductView {
  serialNumber: number;
  productName: string;
  inputImageUrls: string[];
  images: ImageView[];
}
interface Ended {
  id: string;
  status: string;
  outputCsvUrl: string | null;
  progress: { total: number; done: number; failed: number; cancelled: number; pending: number };
  products: ProductView[];
  /** First image of each product, by product name. */
  byName: Record<string, ImageView>;
}

const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

/** Uploads a CSV (autoStart default), polls `request` until it has ended, and returns what GraphQL shows. */
async function runCsv(squeeze: Squeeze, csv: string, variables: Record<string, unknown> = {}): Promise<Ended> {
  const upload = await uploadCsv(squeeze.url, csv, variables);
  expect(upload.status).toBe(200);
  const result = upload.body.data.uploadCsv;
  expect(result.__typename, JSON.stringify(result)).toBe('UploadCsvSuccess');
  const id: string = result.request.id;
  await eventually(async () => {
    const answer = await squeeze.graphql<any>('query($id: ID!) { request(id: $id) { status } }', { id });
    return ENDED.has(answer.data?.request?.status);
  }, 30_000);
  const answer = await squeeze.graphql<any>(IMAGES_QUERY, { id });
  expect(answer.errors).toBeUndefined();
  const request = answer.data.request;
  const products: ProductView[] = request.products.edges.map((edge: any) => edge.node);
  return {
    id,
    status: request.status,
    outputCsvUrl: request.outputCsvUrl,
    progress: request.progress,
    products,
    byName: Object.fromEntries(products.map((product) => [product.productName, product.images[0]!])),
  };
}

/** `S. No.,Product Name,Input Image Urls` rows from [name, url] pairs (names here have no comma or quote). */
function csvOf(rows: [string, string][]): string {
  return ['S. No.,Product Name,Input Image Urls', ...rows.map(([name, url], i) => `${i + 1},${name},${url}`)].join('\n');
}

describe('hostile input, end to end through the real service', () => {
  let trap: Trap;
  let good: LoopbackServer;
  let receiver: WebhookReceiver;
  let squeeze: Squeeze;
  let limited: Squeeze;
  let photo: Buffer;
  const timers = new Set<NodeJS.Timeout>();

  beforeAll(async () => {
    trap = await startTrap();
    photo = await photoJpeg(400, 300);
    const gzipBomb = gzipSync(Buffer.alloc(20 * 1024 * 1024), { level: 9 }); // 20 KB that inflate to 20 MB
    const P = () => trap.port;
    good = await startImageServer({
      '/photo.jpg': serveBytes(photo, 'image/jpeg'),
      '/to-trap': (_req, res) => {
        res.writeHead(302, { location: `http://127.0.0.1:${P()}/x.jpg` });
        res.end();
      },
      '/to-trap-localhost': (_req, res) => {
        res.writeHead(307, { location: `http://localhost:${P()}/x.jpg` });
        res.end();
      },
      '/to-file': (_req, res) => {
        res.writeHead(302, { location: 'file:///etc/passwd' });
        res.end();
      },
      '/loop': (_req, res) => {
        res.writeHead(302, { location: '/loop' });
        res.end();
      },
      '/to-trap-v6': (_req, res) => {
        res.writeHead(301, { location: `http://[::ffff:7f00:1]:${P()}/x.jpg` });
        res.end();
      },
      // Download limits (MAX_IMAGE_BYTES 1 000 000 on the `limited` instance).
      '/big-chunked': (_req, res) => {
        // No content-length: chunked transfer, 1.5 MB in 64 KB chunks; only counting while streaming can stop it.
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        const chunk = Buffer.alloc(64 * 1024, 0xab);
        chunk.set([0xff, 0xd8, 0xff], 0);
        for (let i = 0; i < 24; i++) res.write(chunk);
        res.end();
      },
      '/big-declared': (_req, res) => {
        // An honest content-length over the limit, then nothing: waiting for the body would be a timeout instead.
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': 2_000_000 });
        res.write(photo.subarray(0, 1000));
      },
      '/stall': (_req, res) => {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.flushHeaders();
        res.write(photo.subarray(0, 100));
      },
      '/no-headers': () => {
        // Accepts the request and never answers.
      },
      '/trickle': (_req, res) => {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        let offset = 0;
        const timer = setInterval(() => {
          res.write(photo.subarray(offset % photo.length, (offset % photo.length) + 16));
          offset += 16;
        }, 200);
        timers.add(timer);
        res.on('close', () => {
          clearInterval(timer);
          timers.delete(timer);
        });
      },
      '/gzip-bomb': (_req, res) => {
        // Content-Encoding is never decoded: the bytes are gzip, not an image (and cannot inflate past the limit).
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-encoding': 'gzip', 'content-length': gzipBomb.length });
        res.end(gzipBomb);
      },
      // Decode limits.
      '/bomb.png': serveBytes(pngBomb(20_000, 20_000), 'image/png'),
      '/drawing.svg': serveBytes(
        Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="100%" height="100%"/></svg>'),
        'image/svg+xml',
      ),
      '/doc.pdf': serveBytes(Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n'), 'image/jpeg'),
      '/truncated.jpg': serveBytes(photo.subarray(0, Math.floor(photo.length / 2)), 'image/jpeg'),
      '/page.jpg': serveBytes(Buffer.from('<!doctype html><html><head><title>x</title></head><body>not an image</body></html>'), 'image/jpeg'),
      '/empty.jpg': serveBytes(Buffer.alloc(0), 'image/jpeg'),
    });
    receiver = await startWebhookReceiver();
    [squeeze, limited] = await Promise.all([
      startSqueeze('hostile', { allowHosts: [good.host, receiver.host] }),
      startSqueeze('hostile-limits', {
        env: { MAX_IMAGE_BYTES: '1000000', DOWNLOAD_TIMEOUT_MS: '1500', MAX_ATTEMPTS: '1' },
        allowHosts: [good.host],
      }),
    ]);
  });

  afterAll(async () => {
    for (const timer of timers) clearInterval(timer);
    await squeeze?.close();
    await limited?.close();
    await good?.close();
    await receiver?.close();
    await trap?.close();
    // The trap must never have seen a connection, whichever test ran.
    expect(trap.connections).toBe(0);
  });

  it('refuses every loopback form of the trap, redirects into it, *.localhost and itself: BLOCKED_ADDRESS, one attempt, no connection', async () => {
    const P = trap.port;
    const cases: [string, string][] = [
      ['dotted', `http://127.0.0.1:${P}/x.jpg`],
      ['short', `http://127.1:${P}/`],
      ['decimal', `http://2130706433:${P}/`],
      ['hex', `http://0x7f000001:${P}/`],
      ['octal', `http://017700000001:${P}/`],
      ['dotted-hex', `http://0x7f.0.0.1:${P}/`],
      ['other-loopback', `http://127.0.0.2:${P}/`],
      ['trailing-dot', `http://127.0.0.1.:${P}/`],
      ['unspecified', `http://0.0.0.0:${P}/`],
      ['localhost', `http://localhost:${P}/`],
      ['localhost-upper-dot', `http://LOCALHOST.:${P}/`],
      ['v6-loopback', `http://[::1]:${P}/`],
      ['v6-unspecified', `http://[::]:${P}/`],
      ['v4-mapped', `http://[::ffff:127.0.0.1]:${P}/`],
      ['v4-mapped-long', `http://[0:0:0:0:0:ffff:7f00:1]:${P}/`],
      ['v4-compatible', `http://[::127.0.0.1]:${P}/`],
      ['nat64-loopback', `http://[64:ff9b::7f00:1]:${P}/`],
      ['userinfo', `http://${good.host}@127.0.0.1:${P}/x.jpg`],
      ['sub-localhost', `http://anything.localhost:${P}/`],
      ['redirect-302', `${good.url}/to-trap`],
      ['redirect-307-localhost', `${good.url}/to-trap-localhost`],
      ['redirect-301-v4-mapped', `${good.url}/to-trap-v6`],
      ['self', `${squeeze.url}/healthz`],
      ['good', `${good.url}/photo.jpg`],
      ['good-with-credentials', `http://user:secret@${good.host}/photo.jpg`],
      ['redirect-file', `${good.url}/to-file`],
      ['redirect-loop', `${good.url}/loop`],
    ];
    const hitsBefore = good.hits.length;
    const ended = await runCsv(squeeze, csvOf(cases));

    expect(ended.status).toBe('FAILED');
    expect(ended.progress).toEqual({ total: cases.length, done: 2, failed: cases.length - 2, cancelled: 0, pending: 0 });
    for (const [name] of cases) {
      const image = ended.byName[name]!;
      if (name.startsWith('good')) {
        expect(image, name).toMatchObject({ status: 'DONE', attempts: 1, error: null });
      } else if (name === 'redirect-loop') {
        // Not an address problem: a redirect chain past MAX_REDIRECTS (5) is a permanent HTTP_ERROR.
        expect(image).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'HTTP_ERROR' } });
        expect(image.error!.message).toMatch(/too many redirects/);
      } else {
        // Permanent: one attempt, although MAX_ATTEMPTS is the default 4 on this instance.
        expect(image, name).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'BLOCKED_ADDRESS' } });
        expect(image.error!.message, name).toMatch(name === 'redirect-file' ? /only http and https/ : /not a public address/);
      }
    }
    expect(ended.byName['sub-localhost']!.error!.message).toContain('anything.localhost');
    expect(ended.byName['redirect-302']!.error!.message).toContain('127.0.0.1');
    // The redirects were asked of the good server (each once: not retried), and went no further.
    const redirectHits = good.hits.slice(hitsBefore).filter((hit) => hit.startsWith('/to-trap'));
    expect(redirectHits.sort()).toEqual(['/to-trap', '/to-trap-localhost', '/to-trap-v6']);
    expect(good.hits.slice(hitsBefore).filter((hit) => hit === '/loop')).toHaveLength(6); // the first ask and 5 redirects
    expect(trap.connections).toBe(0);
    expect(trap.requests).toEqual([]);

    // The output CSV names every input and leaves the blocked outputs empty.
    const rows: string[][] = parse(await fetch(ended.outputCsvUrl!).then((r) => r.text()));
    expect(rows).toHaveLength(cases.length + 1);
    expect(rows.slice(1).filter((row) => row[3] !== '').map((row) => row[1])).toEqual(['good', 'good-with-credentials']);
  });

  it('cuts downloads at the size and time limits: TOO_LARGE, DOWNLOAD_TIMEOUT; content-encoding is not inflated', async () => {
    const started = Date.now();
    const ended = await runCsv(
      limited,
      csvOf([
        ['big-chunked', `${good.url}/big-chunked`],
        ['big-declared', `${good.url}/big-declared`],
        ['stall', `${good.url}/stall`],
        ['no-headers', `${good.url}/no-headers`],
        ['trickle', `${good.url}/trickle`],
        ['gzip-bomb', `${good.url}/gzip-bomb`],
        ['good', `${good.url}/photo.jpg`],
      ]),
    );
    const elapsed = Date.now() - started;
    expect(ended.status).toBe('FAILED');
    expect(ended.progress).toMatchObject({ total: 7, done: 1, failed: 6, pending: 0 });
    const { byName } = ended;
    expect(byName['good']).toMatchObject({ status: 'DONE', attempts: 1, error: null });
    expect(byName['big-chunked']).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'TOO_LARGE' } });
    expect(byName['big-declared']).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'TOO_LARGE' } });
    expect(byName['big-chunked']!.error!.message).toContain('1000000');
    // MAX_ATTEMPTS 1: a timeout (transient) is not retried, so it fails at its first attempt.
    for (const name of ['stall', 'no-headers', 'trickle']) {
      expect(byName[name], name).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'DOWNLOAD_TIMEOUT' } });
    }
    expect(byName['trickle']!.error!.message).toContain('1500');
    expect(byName['gzip-bomb']).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'UNSUPPORTED_FORMAT' } });
    expect(byName['gzip-bomb']!.error!.message).toMatch(/gzip/);
    // The timeouts ran side by side and were cut at ~1.5 s, not at the 30 s default.
    expect(elapsed).toBeLessThan(10_000);
    expect(trap.connections).toBe(0);
  });

  it('fails bombs, non-images and broken images alone (TOO_MANY_PIXELS, UNSUPPORTED_FORMAT, DECODE_ERROR) and stays healthy', async () => {
    const ended = await runCsv(
      squeeze,
      csvOf([
        ['bomb', `${good.url}/bomb.png`],
        ['svg', `${good.url}/drawing.svg`],
        ['pdf', `${good.url}/doc.pdf`],
        ['truncated', `${good.url}/truncated.jpg`],
        ['html', `${good.url}/page.jpg`],
        ['empty', `${good.url}/empty.jpg`],
        ['good', `${good.url}/photo.jpg`],
      ]),
    );
    expect(ended.status).toBe('FAILED');
    expect(ended.progress).toEqual({ total: 7, done: 1, failed: 6, cancelled: 0, pending: 0 });
    const { byName } = ended;
    expect(byName['good']).toMatchObject({ status: 'DONE', attempts: 1, error: null });
    expect(byName['good']!.outputUrl).toMatch(/\/files\/requests\/.+\.jpg$/);
    const expected: Record<string, [string, RegExp]> = {
      bomb: ['TOO_MANY_PIXELS', /20000×20000/],
      svg: ['UNSUPPORTED_FORMAT', /SVG/],
      pdf: ['UNSUPPORTED_FORMAT', /PDF/],
      truncated: ['DECODE_ERROR', /./],
      html: ['UNSUPPORTED_FORMAT', /HTML/],
      empty: ['UNSUPPORTED_FORMAT', /empty/],
    };
    for (const [name, [code, message]] of Object.entries(expected)) {
      expect(byName[name], name).toMatchObject({ status: 'FAILED', attempts: 1, outputUrl: null, error: { code } });
      expect(byName[name]!.error!.message, name).toMatch(message);
    }

    // The process and its pool are fine: health, readiness, and a following good request completes.
    expect((await fetch(`${squeeze.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${squeeze.url}/readyz`)).status).toBe(200);
    const after = await runCsv(squeeze, csvOf([['again', `${good.url}/photo.jpg`]]));
    expect(after.status).toBe('COMPLETED');
    expect(after.byName['again']).toMatchObject({ status: 'DONE', attempts: 1 });
  });

  it('never turns product names into formulas in the output CSV, keeps rows whole, and keeps the text as stored elsewhere', async () => {
    const url = `${good.url}/photo.jpg`;
    const csv = [
      'S. No.,Product Name,Input Image Urls',
      `1,"=HYPERLINK(""http://evil"")",${url}`,
      `2,+1,${url}`,
      `3,-2,${url}`,
      `4,@cmd,${url}`,
      `5,"\tTabbed",${url}`,
      `6,"Comma, ""quotes""\nand a newline",${url}`,
      `7,"=1+1\r\n=2+2",${url}`,
      `8,Plain name,${url}`,
      `9,"  =SUM(A1:A9)",${url}`,
    ].join('\r\n');
    const ended = await runCsv(squeeze, csv, { webhookUrl: `${receiver.url}/hook` });
    expect(ended.status).toBe('COMPLETED');

    // Stored text, as GraphQL shows it: never a leading '. Cells are trimmed at ingest (a leading tab or
    // spaces go), inner line breaks and quotes stay.
    const stored = ended.products.map((product) => product.productName);
    expect(stored).toEqual([
      '=HYPERLINK("http://evil")',
      '+1',
      '-2',
      '@cmd',
      'Tabbed',
      'Comma, "quotes"\nand a newline',
      '=1+1\r\n=2+2',
      'Plain name',
      '=SUM(A1:A9)',
    ]);

    const text = await fetch(ended.outputCsvUrl!).then((r) => r.text());
    const rows: string[][] = parse(text);
    expect(rows).toHaveLength(10); // the header and nine rows: the line breaks inside names broke nothing
    expect(rows.every((row) => row.length === 4)).toBe(true);
    expect(rows.slice(1).map((row) => row[0])).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const neutral = (name: string) => (/^[=+\-@\t\r]/.test(name) ? `'${name}` : name);
    expect(rows.slice(1).map((row) => row[1])).toEqual(stored.map(neutral));
    expect(rows[1]![1]).toBe(`'=HYPERLINK("http://evil")`);
    expect(rows[6]![1]).toBe('Comma, "quotes"\nand a newline');
    // No cell of the file begins with a formula character.
    for (const row of rows) for (const cell of row) expect(cell).not.toMatch(/^[=+\-@\t\r]/);

    // The webhook body is JSON: the text as stored, no '.
    await receiver.waitFor(1);
    const delivery = receiver.deliveries.find((d) => JSON.parse(d.body).data.requestId === ended.id)!;
    const body = JSON.parse(delivery.body);
    expect(body.type).toBe('request.completed');
    expect(body.data.products.map((row: any) => row['Product Name'])).toEqual(stored);
  });

  it('answers unknown ids, malformed and forged queries with GraphQL errors, not crashes', async () => {
    const PROGRESS = 'subscription($id: ID!) { requestProgress(requestId: $id) { status } }';
    for (const id of ['0190a0f0-0000-7000-8000-000000000000', 'not-a-uuid', "'; drop table requests; --"]) {
      const { events, errors } = await collectSubscription(squeeze.wsClient(), PROGRESS, { id });
      expect(events, id).toEqual([]);
      expect(errors, id).toHaveLength(1);
      expect((errors[0] as any).extensions?.code, id).toBe('NOT_FOUND');
    }

    for (const [mutation, id] of [
      ['cancelRequest(id: $id)', 'not-a-uuid'],
      ['cancelRequest(id: $id)', '0190a0f0-0000-7000-8000-000000000000'],
      ['processRequest(id: $id)', 'not-a-uuid'],
      ['retryFailedImages(requestId: $id)', "'; drop table requests; --"],
    ] as const) {
      const answer = await squeeze.graphql<any>(`mutation($id: ID!) { ${mutation} { id } }`, { id });
      expect(answer.data ?? null, mutation).toBeNull();
      expect(answer.errors?.[0]?.extensions?.code, `${mutation} ${id}`).toBe('NOT_FOUND');
    }
    const unknown = await squeeze.graphql<any>('query($id: ID!) { request(id: $id) { id } product(id: $id) { id } }', { id: 'not-a-uuid' });
    expect(unknown).toEqual({ data: { request: null, product: null } });

    // A malformed query, a body that is not JSON, a field that does not exist: GraphQL errors with the
    // status the GraphQL-over-HTTP spec gives (400 for application/graphql-response+json; legacy
    // application/json answers 200 for parse and validation errors), never a crash.
    const post = (body: string, accept: string) =>
      fetch(`${squeeze.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body });
    const malformedQuery = JSON.stringify({ query: '{ request(id: "x" { status }' });
    const unknownField = JSON.stringify({ query: '{ secrets }' });
    for (const [body, status, code] of [
      [malformedQuery, 400, 'GRAPHQL_PARSE_FAILED'],
      ['{"query": ', 400, 'BAD_REQUEST'],
      [unknownField, 400, 'GRAPHQL_VALIDATION_FAILED'],
    ] as const) {
      const strict = await post(body, 'application/graphql-response+json');
      expect(strict.status, body).toBe(status);
      const answer = await strict.json();
      expect(answer.data, body).toBeUndefined();
      expect(answer.errors[0].extensions.code, body).toBe(code);
    }
    const legacy = await post(malformedQuery, 'application/json');
    expect(legacy.status).toBe(200);
    expect((await legacy.json()).errors[0].message).toMatch(/^Syntax Error/);
    expect((await post('{"query": ', 'application/json')).status).toBe(400);

    // Too many aliases: refused by the armour before execution.
    const aliases = Array.from({ length: 50 }, (_, i) => `a${i}: requests { totalCount }`).join(' ');
    const aliased = await squeeze.graphql<any>(`{ ${aliases} }`);
    expect(aliased.data).toBeUndefined();
    expect(aliased.errors?.[0]?.message).toMatch(/alias/i);

    // An unexpected error inside a resolver is masked: the client sees "Unexpected error.", not the cause.
    const ended = await runCsv(squeeze, csvOf([['masked', `${good.url}/photo.jpg`]]));
    const storage = squeeze.app.services.storage;
    const realUrl = storage.url;
    storage.url = () => {
      throw new Error('secret internal detail: /var/lib/squeeze password=hunter2');
    };
    let masked: Awaited<ReturnType<Squeeze['graphql']>>;
    try {
      masked = await squeeze.graphql<any>('query($id: ID!) { request(id: $id) { status outputCsvUrl } }', { id: ended.id });
    } finally {
      storage.url = realUrl;
    }
    expect(masked.errors).toHaveLength(1);
    expect(masked.errors?.[0]?.message).toBe('Unexpected error.');
    expect(JSON.stringify(masked)).not.toMatch(/secret|hunter2/);
    expect((await squeeze.graphql<any>('query($id: ID!) { request(id: $id) { outputCsvUrl } }', { id: ended.id })).data.request.outputCsvUrl).toBe(
      ended.outputCsvUrl,
    );

    // Forged cursors (base64url of a kind and a value the database cannot compare: not a UUID, not an
    // integer) never leak the database's message: either a BAD_REQUEST naming the cursor or the masked error.
    const productCursor = (value: string) => Buffer.from(`p:${value}`).toString('base64url');
    const forgedAnswers = [
      await squeeze.graphql<any>('query($after: String) { requests(after: $after) { totalCount } }', { after: Buffer.from('r:not-a-uuid').toString('base64url') }),
      ...(await Promise.all(
        ['abc', '1.5', '99999999999999'].map((value) =>
          squeeze.graphql<any>('query($id: ID!, $after: String) { request(id: $id) { products(after: $after) { totalCount } } }', {
            id: ended.id,
            after: productCursor(value),
          }),
        ),
      )),
    ];
    for (const answer of forgedAnswers) {
      const error = answer.errors?.[0];
      if (!error) throw new Error(`a forged cursor was accepted: ${JSON.stringify(answer)}`);
      if (error.extensions?.code !== 'BAD_REQUEST') expect(error.message).toBe('Unexpected error.');
      expect(JSON.stringify(answer)).not.toMatch(/uuid|syntax|postgres|drizzle|select|integer/i);
    }

    expect((await fetch(`${squeeze.url}/healthz`)).status).toBe(200);
  });
});
