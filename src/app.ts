import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { createYoga, type Plugin } from 'graphql-yoga';
import { processRequest } from 'graphql-upload-minimal';
import { WebSocketServer } from 'ws';
import type { Logger } from 'pino';
import { createLogger } from './logger.ts';
import type { Config } from './config.ts';
import { openDatabase, type Database } from './db/client.ts';
import { createCompressionPool, type CompressionPool } from './compress/compressionPool.ts';
import { keepImageThreadsDeprioritised } from './compress/threadPriority.ts';
import { ProgressBus } from './events/progressBus.ts';
import { getRequest } from './db/requests.ts';
import { RequestCache } from './requests/requestCache.ts';
import { createAddressGuard, type AddressGuard } from './net/addressGuard.ts';
import { createRunner, type Runner } from './runner/runner.ts';
import { createLocalStorage, contentTypeOf, type Storage } from './storage/localStorage.ts';
import { createWebhookSender } from './webhooks/sender.ts';
import { answerPlainQuery, isPlainJsonQueryCall, parseJsonBody, readBody, yogaParamsOf, type ParsedJsonBody } from './graphqlQueryPath.ts';
import { handleRest } from './rest/routes.ts';
import { directNextWriterOf, serveGraphqlWebSocket } from './graphqlWebSocket.ts';
import { serveDashboard } from './dashboard/serve.ts';
import type { GraphQLContext, Services } from './services.ts';
import { schema } from '../schema/index.ts';
import { pageBudgetPlugin } from '../schema/pageBudget.ts';
import { sharedProgressEvent } from '../schema/progress.ts';
import { sharedSubscriptionResultsPlugin } from '../schema/sharedSubscriptionResults.ts';
import { GRAPHIQL_DEFAULT_QUERY, GRAPHIQL_TABS } from './graphiqlExample.ts';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { createKeyCheck } from './auth.ts';
import { createMetrics } from './metrics.ts';
import { sql } from 'drizzle-orm';
import { Counter } from 'prom-client';

export interface AppOptions {
  config: Config;
  /** An open database; when absent, one is opened from the config (and closed by stop). */
  database?: Database;
  logger?: Logger;
  /** The address guard; tests pass one that marks their loopback image server as allowed. */
  guard?: AddressGuard;
}

export interface App {
  server: Server;
  services: Services;
  runner: Runner | undefined;
  /** Listens on config.port (0 picks a free port); resolves to the base URL. */
  start(): Promise<string>;
  /** Stops taking work, lets in-flight images finish for the grace period, then closes everything. */
  stop(): Promise<void>;
}

const JSON_BODY_LIMIT = 1024 * 1024;

export async function buildApp(options: AppOptions): Promise<App> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.logLevel);
  const ownsDatabase = !options.database;
  const database =
    options.database ??
    (await openDatabase({
      databaseUrl: config.databaseUrl,
      pgliteDir: config.databaseUrl ? undefined : path.join(config.dataDir, 'pglite'),
    }));
  const storage: Storage = createLocalStorage(path.join(config.dataDir, 'files'), config.publicUrl);
  const guard = options.guard ?? createAddressGuard({ allowPrivateNetworks: config.allowPrivateNetworks });
  // Files half-written by an instance that was killed; an hour is far longer than any write.
  void storage
    .sweepTemporaryFiles(3_600_000)
    .then((removed) => removed > 0 && logger.info({ removed }, 'removed half-written files left by a stopped instance'))
    .catch((error) => logger.warn({ err: error }, 'sweeping half-written files failed'));
  const bus = new ProgressBus(database);
  await bus.start();
  const requestCache = new RequestCache((id) => getRequest(database.db, id));
  requestCache.follow(bus);

  const runsWorker = config.role !== 'api';
  const pool: CompressionPool | undefined = runsWorker
    ? createCompressionPool({ threads: config.workerThreads, maxPixels: config.maxImagePixels, jpegOptimizeCoding: config.jpegOptimizeCoding })
    : undefined;
  const stopDeprioritising = pool ? keepImageThreadsDeprioritised(config.imageThreadNice) : () => undefined;
  const workerId = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const metrics = createMetrics();
  const runner = pool ? createRunner({ database, storage, pool, guard, config, logger, workerId, metrics }) : undefined;
  metrics.gauge('squeeze_images_in_flight', 'Images this instance holds (downloading, queued or compressing)', () => runner?.inFlight ?? 0);
  metrics.gauge('squeeze_pool_utilization', 'Share of the compression threads busy (0–1)', () => pool?.utilization ?? 0);
  metrics.gauge('squeeze_pool_threads', 'Compression threads in this instance', () => pool?.threads ?? 0);
  metrics.gauge('squeeze_queue_depth', 'Images waiting to be claimed, on every instance (the claimable partial index)', async () => {
    const [row] = await database.rows<{ n: number | string }>(
      sql`select count(*)::int as n from images where status = 'PENDING' and next_attempt_at is not null`,
    );
    return Number(row?.n ?? 0);
  });
  const subscriptionResultsCounter = new Counter({
    name: 'squeeze_subscription_results_total',
    help: 'Subscription results by how they were had: executed (first subscriber of an event), reused (shared with it), own (a snapshot)',
    labelNames: ['outcome'] as const,
    registers: [metrics.registry],
  });
  const subscriptionResults = {
    executed: subscriptionResultsCounter.labels('executed'),
    reused: subscriptionResultsCounter.labels('reused'),
    own: subscriptionResultsCounter.labels('own'),
  };
  const jsonCallsCounter = new Counter({
    name: 'squeeze_graphql_json_calls_total',
    help: 'GraphQL JSON POSTs without an Origin, by who answered: direct (a plain query, src/graphqlQueryPath.ts) or yoga (the rest)',
    labelNames: ['answered_by'] as const,
    registers: [metrics.registry],
  });
  const jsonCalls = { direct: jsonCallsCounter.labels('direct'), yoga: jsonCallsCounter.labels('yoga') };
  const keys = createKeyCheck(config.apiKeys);
  const sender = createWebhookSender({ database, guard, config, logger });

  const services: Services = {
    config,
    database,
    storage,
    bus,
    guard,
    logger,
    requestCache,
    workQueued: () => runner?.wake(),
    webhooksQueued: () => sender.wake(),
  };

  // Bodies read before Yoga runs: a streamed multipart upload, or a JSON body the query fast path declined.
  const uploadBodyPlugin: Plugin<{ uploadBody?: unknown; jsonBody?: ParsedJsonBody }> = {
    onRequestParse({ serverContext, setRequestParser }) {
      const context = serverContext as { uploadBody?: unknown; jsonBody?: ParsedJsonBody } | undefined;
      const body = context?.uploadBody;
      if (body) setRequestParser(() => body as never);
      const json = context?.jsonBody;
      if (json) setRequestParser(() => yogaParamsOf(json) as never);
    },
  };

  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse; uploadBody?: unknown; jsonBody?: ParsedJsonBody }, GraphQLContext>({
    schema,
    context: () => ({ services }),
    graphqlEndpoint: '/graphql',
    // Multipart bodies are streamed by graphql-upload-minimal before Yoga runs; JSON bodies are checked in route().
    maxRequestBodySize: false as never,
    logging: {
      debug: (...args) => logger.debug(args.map(String).join(' ')),
      info: (...args) => logger.info(args.map(String).join(' ')),
      warn: (...args) => logger.warn(args.map(String).join(' ')),
      error: (...args) => logger.error(args.map(String).join(' ')),
    },
    graphiql: { title: 'Squeeze', defaultQuery: GRAPHIQL_DEFAULT_QUERY, defaultTabs: GRAPHIQL_TABS, subscriptionsProtocol: 'WS' },
    plugins: [
      uploadBodyPlugin,
      // Limits sized so the richest real query (requests → products → images → error) passes with room.
      EnvelopArmorPlugin({
        maxDepth: { n: 12 },
        maxAliases: { n: 20 },
        maxTokens: { n: 4000 },
        // armor's cost grows with depth and fields, not page sizes: a page of 1 000 products with every
        // image field costs about 93 000, and the contract allows first up to 1 000. Page sizes are
        // bounded by pageBudgetPlugin below instead.
        costLimit: { maxCost: 250_000 },
        maxDirectives: { n: 20 },
        // GraphiQL and clients learn from suggestions; the schema is public (introspection stays on).
        blockFieldSuggestion: { enabled: false },
      }),
      // One page of 1 000 requests with a page of 100 products each, at most.
      pageBudgetPlugin(101_000),
      // One execution per progress event for all subscribers with the same operation and variables. The
      // context holds only the services every caller shares (API keys admit or refuse, they name nobody).
      sharedSubscriptionResultsPlugin<GraphQLContext>({
        sharedEventOf: sharedProgressEvent,
        contextKey: () => '',
        observe: (outcome) => subscriptionResults[outcome].inc(),
        // WebSocket subscribers get shared results without errors written straight to their socket. The
        // only per-result hook in this app is error masking, which leaves those results as they are.
        directWriterOf: directNextWriterOf,
      }),
    ],
  });

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://squeeze.local');
    const pathname = url.pathname;

    if (pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (pathname === '/readyz') {
      const dbReady = await database.ping();
      const poolReady = pool ? await pool.ready() : true;
      return sendJson(res, dbReady && poolReady ? 200 : 503, { database: dbReady, pool: poolReady });
    }
    // The dashboard's own files (/, /requests/<id>, /assets/*) hold nothing secret; the calls it makes carry the key.
    if (config.role !== 'worker' && (await serveDashboard(req, res, pathname))) return;
    // GraphiQL's page itself holds nothing; the operations it sends carry the key like any other call.
    const graphiqlPage = pathname === '/graphql' && req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
    if (!graphiqlPage && !keys.checkHeaders(req.headers)) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendJson(res, 401, { error: 'A valid API key is required: send Authorization: Bearer <key>' });
    }
    if (pathname === '/metrics' && req.method === 'GET') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      return res.end(text);
    }
    // A worker-only instance serves health and metrics; the API lives on instances with ROLE api or all.
    if (config.role === 'worker') return sendJson(res, 404, { error: 'This instance runs with ROLE=worker and serves no API' });

    if (pathname === '/graphql') {
      const contentType = req.headers['content-type'] ?? '';
      if (req.method === 'POST' && contentType.startsWith('multipart/form-data')) {
        // Checked before the body is read: Yoga's own CSRF plugin would run only after the upload streamed in.
        if (!req.headers['x-graphql-yoga-csrf'] && !req.headers['apollo-require-preflight']) {
          return sendJson(res, 403, {
            errors: [{ message: 'Required CSRF header(s) not present: send x-graphql-yoga-csrf or apollo-require-preflight with multipart requests' }],
          });
        }
        // A declared length far over the limit is refused before anything is read or stored.
        if (Number(req.headers['content-length'] ?? 0) > config.maxCsvBytes + JSON_BODY_LIMIT) {
          res.setHeader('connection', 'close');
          return sendJson(res, 413, {
            errors: [{ message: `The upload is larger than the CSV limit of ${config.maxCsvBytes} bytes (MAX_CSV_BYTES)`, extensions: { code: 'TOO_LARGE' } }],
          });
        }
        let uploadBody;
        try {
          // One more byte than the limit, so the CSV parser sees the excess and reports the limit by name.
          uploadBody = await processRequest(req, res, { maxFileSize: config.maxCsvBytes + 1, maxFiles: 1, maxFieldSize: JSON_BODY_LIMIT });
        } catch (error) {
          // graphql-upload-minimal's HttpErrors: a second file (413), a malformed multipart body (400).
          const status = (error as { status?: number }).status;
          if (!status) throw error;
          const message = status === 413 && /max file uploads/.test((error as Error).message) ? 'Upload one CSV file per request' : (error as Error).message;
          return sendJson(res, status, { errors: [{ message, extensions: { code: status === 413 ? 'TOO_LARGE' : 'BAD_REQUEST' } }] });
        }
        return yoga(req, res, { req, res, uploadBody });
      }
      const length = Number(req.headers['content-length'] ?? 0);
      const tooLarge = () => sendJson(res, 413, { errors: [{ message: `Request body over ${JSON_BODY_LIMIT} bytes` }] });
      if (length > JSON_BODY_LIMIT) return tooLarge();
      if (isPlainJsonQueryCall(req)) {
        const text = await readBody(req, JSON_BODY_LIMIT);
        if (text === undefined) return tooLarge();
        const jsonBody = parseJsonBody(text);
        if ('params' in jsonBody && (await answerPlainQuery(yoga, { req, res }, jsonBody.params, res))) return jsonCalls.direct.inc();
        jsonCalls.yoga.inc();
        return yoga(req, res, { req, res, jsonBody });
      }
      return yoga(req, res, { req, res });
    }

    if (pathname.startsWith('/files/') && (req.method === 'GET' || req.method === 'HEAD')) {
      let key: string;
      try {
        key = decodeURIComponent(pathname.slice('/files/'.length));
      } catch {
        return sendJson(res, 404, { error: 'File not found' });
      }
      const file = await storage.open(key);
      if (!file) return sendJson(res, 404, { error: 'File not found' });
      res.writeHead(200, {
        'content-type': contentTypeOf(key),
        'content-length': file.size,
        'cache-control': key.endsWith('.csv') ? 'no-cache' : 'public, max-age=86400',
        'x-content-type-options': 'nosniff',
      });
      if (req.method === 'HEAD') {
        file.stream.destroy();
        return res.end();
      }
      return pipeline(file.stream, res);
    }

    if (await handleRest(services, req, res, url)) return;
    sendJson(res, 404, { error: 'Not found' });
  }

  // Node checks request timeouts on this interval (30 s by default, longer than a short UPLOAD_TIMEOUT_MS).
  const connectionsCheckingInterval = Math.max(250, Math.min(30_000, Math.round(config.uploadTimeoutMs / 10)));
  const server = createServer({ connectionsCheckingInterval }, (req, res) => {
    route(req, res).catch((error) => {
      logger.error({ err: error, url: req.url }, 'request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'Unexpected error.' });
      else res.destroy();
    });
  });
  // The whole request (an upload included) must arrive within UPLOAD_TIMEOUT_MS; Node answers 408 and
  // closes the socket otherwise, so a client trickling a CSV cannot hold a connection (and, on
  // Postgres, an open ingest transaction) for ever.
  server.requestTimeout = config.uploadTimeoutMs;
  server.headersTimeout = Math.min(60_000, config.uploadTimeoutMs);

  // Attached by hand, not with `server`: ws would re-emit the HTTP server's own errors (its port in use)
  // on itself, which graphql-ws prints as "Internal error emitted on the WebSocket server. Please check
  // your implementation" with a stack, before main.ts could say what is wrong. handleUpgrade still
  // answers 400 to any other path.
  const wss = new WebSocketServer({ noServer: true, path: '/graphql' });
  server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
  // graphql-ws closes the socket with 4403 Forbidden when canConnect says no.
  const wsServer = serveGraphqlWebSocket(wss, yoga, (params) => config.role !== 'worker' && keys.checkConnectionParams(params));

  // Keep-alive: ping every WebSocket client; one that has not answered the previous ping is gone.
  const alive = new WeakSet<import('ws').WebSocket>();
  wss.on('connection', (socket) => {
    alive.add(socket);
    socket.on('pong', () => alive.add(socket));
  });
  const keepAlive = setInterval(() => {
    for (const socket of wss.clients) {
      if (!alive.has(socket)) {
        socket.terminate();
        continue;
      }
      alive.delete(socket);
      socket.ping();
    }
  }, 15_000);
  keepAlive.unref();

  let stopped = false;
  return {
    server,
    services,
    runner,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      });
      runner?.start();
      sender.start();
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${host}:${address.port}`;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await runner?.stop(config.shutdownGraceMs);
      await sender.stop();
      clearInterval(keepAlive);
      await wsServer.dispose();
      wss.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      stopDeprioritising();
      await pool?.close();
      await bus.stop();
      if (ownsDatabase) await database.close();
    },
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
