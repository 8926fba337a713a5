import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { buildApp, type App } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createAddressGuard } from '../../src/net/addressGuard.ts';
import { openTestDatabase, type TestDatabase } from './database.ts';
import { freePort } from './processes.ts';

export interface Squeeze {
  app: App;
  url: string;
  config: Config;
  database: TestDatabase;
  dataDir: string;
  graphql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<{ data?: T; errors?: { message: string; extensions?: { code?: string } }[] }>;
  wsClient(connectionParams?: Record<string, unknown>): Client;
  close(): Promise<void>;
}


/**
 * A real Squeeze on a loopback port with its own data directory and database. `allowHosts` are the
 * test's own loopback servers, treated as public by the address guard; everything else stays blocked.
 */
export async function startSqueeze(
  name: string,
  options: { env?: Record<string, string>; allowHosts?: string[]; database?: TestDatabase } = {},
): Promise<Squeeze> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `squeeze-${name}-`));
  const port = await freePort();
  const config = loadConfig({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, WORKER_THREADS: '2', LOG_LEVEL: 'silent', ...options.env });
  const database = options.database ?? (await openTestDatabase(name));
  const guard = createAddressGuard({ allowPrivateNetworks: config.allowPrivateNetworks, allowHosts: options.allowHosts ?? [] });
  const app = await buildApp({ config, database, guard, logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) });
  const url = await app.start();
  const clients: Client[] = [];
  return {
    app,
    url,
    config,
    database,
    dataDir,
    async graphql(query, variables, headers) {
      const response = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as never;
    },
    wsClient(connectionParams) {
      const client = createClient({ url: `${url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true });
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((client) => client.dispose()));
      await app.stop();
      if (!options.database) await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs a subscription to its end and returns every event. */
export function collectSubscription<T>(client: Client, query: string, variables: Record<string, unknown>): Promise<{ events: T[]; errors: unknown[] }> {
  return new Promise((resolve, reject) => {
    const events: T[] = [];
    client.subscribe<T>(
      { query, variables },
      {
        next: (result) => {
          if (result.errors) resolve({ events, errors: [...result.errors] });
          else if (result.data) events.push(result.data as T);
        },
        error: (error) => (Array.isArray(error) ? resolve({ events, errors: error }) : reject(error)),
        complete: () => resolve({ events, errors: [] }),
      },
    );
  });
}

/** Uploads a CSV through the GraphQL multipart spec, as Apollo and curl clients do. */
export async function uploadCsv(
  baseUrl: string,
  csv: string | Buffer,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = { 'x-graphql-yoga-csrf': '1' },
): Promise<{ status: number; body: any }> {
  const form = new FormData();
  form.set(
    'operations',
    JSON.stringify({
      query: `mutation Upload($file: Upload!, $webhookUrl: String, $options: CompressionOptions, $autoStart: Boolean) {
        uploadCsv(file: $file, webhookUrl: $webhookUrl, options: $options, autoStart: $autoStart) {
          __typename
          ... on UploadCsvSuccess { request { id status progress { total done failed cancelled pending } } }
          ... on Error { code message }
          ... on CsvInvalidError { problems { line column message } }
          ... on InvalidInputError { field }
        }
      }`,
      variables: { file: null, ...variables },
    }),
  );
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([typeof csv === 'string' ? csv : new Uint8Array(csv)], { type: 'text/csv' }), 'products.csv');
  const response = await fetch(`${baseUrl}/graphql`, { method: 'POST', body: form, headers });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body };
}

export interface LoopbackServer {
  url: string;
  host: string;
  hits: string[];
  close(): Promise<void>;
}

/** A loopback HTTP server for images (or traps): `routes` maps a path to a handler. */
export async function startImageServer(routes: Record<string, (req: IncomingMessage, res: import('node:http').ServerResponse) => void>): Promise<LoopbackServer> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const handler = routes[new URL(req.url ?? '/', 'http://x').pathname];
    if (handler) return handler(req, res);
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function serveBytes(bytes: Buffer, contentType: string) {
  return (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': bytes.length });
    res.end(bytes);
  };
}

export interface WebhookReceiver extends LoopbackServer {
  deliveries: { headers: IncomingMessage['headers']; body: string }[];
  /** Resolves when `count` deliveries have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
}

export async function startWebhookReceiver(answer: (index: number) => number = () => 200): Promise<WebhookReceiver> {
  const deliveries: WebhookReceiver['deliveries'] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = await startImageServer({
    '/hook': (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const index = deliveries.length;
        deliveries.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(answer(index));
        res.end();
        for (const waiter of waiters) if (deliveries.length >= waiter.count) waiter.resolve();
      });
    },
  });
  return {
    ...server,
    deliveries,
    waitFor(count, timeoutMs = 20_000) {
      if (deliveries.length >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`expected ${count} webhook deliveries, got ${deliveries.length}`)), timeoutMs);
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}

/** A photo-like JPEG: noise softened by a blur over a gradient compresses like a real photograph. */
export async function photoJpeg(width: number, height: number, options: { orientation?: number; quality?: number } = {}): Promise<Buffer> {
  const noise = Buffer.alloc(width * height * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (((i * 2654435761) >>> 24) & 0xff) ^ ((i / width) & 0x3f);
  let image = sharp(noise, { raw: { width, height, channels: 3 } }).blur(1.2);
  if (options.orientation) image = image.withMetadata({ orientation: options.orientation });
  return image.jpeg({ quality: options.quality ?? 92 }).toBuffer();
}

/** A PNG whose left half is fully transparent and right half is opaque blue. */
export async function transparentPng(width: number, height: number): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 4;
      if (x >= width / 2) pixels.set([20, 40, 200, 255], offset);
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 4 } }).png().toBuffer();
}

/** Waits until `check` returns a truthy value, polling. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A valid one-bit greyscale PNG, all black: 20000×20000 (400 M pixels) is about 50 KB, a
 * decompression bomb. Built by hand: sharp's `create` + `png()` takes ~8 s for 400 M pixels.
 */
export function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const rows = Buffer.alloc(height * (1 + Math.ceil(width / 8))); // filter byte 0 + all-black pixels
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(rows, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
