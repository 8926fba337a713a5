import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/**
 * Serves the dashboard built into `src/dashboard/dist` (committed, so a production install needs no
 * Vite): `/` and `/requests/...` answer index.html (the page routes on the client), `/assets/*` the
 * content-hashed bundles. Nothing here needs an API key; the calls the page makes carry it.
 */

const DIST = fileURLToPath(new URL('./dist/', import.meta.url));
const ASSETS = path.join(DIST, 'assets');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The page loads only its own scripts and styles and talks only to this origin (fetch and WebSocket);
 * images come from anywhere, since the thumbnails show the input URLs of the CSV.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  'img-src http: https: data: blob:',
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface CachedFile {
  mtimeMs: number;
  size: number;
  body: Buffer;
  gzip: Buffer | null;
  etag: string;
}

const cache = new Map<string, CachedFile>();

async function load(file: string): Promise<CachedFile | null> {
  let info;
  try {
    info = await stat(file);
  } catch {
    return null;
  }
  if (!info.isFile()) return null;
  const cached = cache.get(file);
  if (cached && cached.mtimeMs === info.mtimeMs && cached.size === info.size) return cached;
  const body = await readFile(file);
  const compressible = /\.(html|js|mjs|css|svg|json|txt)$/.test(file) && body.length > 1024;
  const gzip = compressible ? gzipSync(body, { level: 9 }) : null;
  const entry: CachedFile = {
    mtimeMs: info.mtimeMs,
    size: info.size,
    body,
    gzip: gzip && gzip.length < body.length ? gzip : null,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
  };
  cache.set(file, entry);
  return entry;
}

function send(req: IncomingMessage, res: ServerResponse, file: CachedFile, headers: Record<string, string>): void {
  const common: Record<string, string> = { ...headers, etag: file.etag, vary: 'accept-encoding', 'x-content-type-options': 'nosniff' };
  const match = req.headers['if-none-match'];
  if (match && match.split(',').some((tag) => tag.trim().replace(/^W\//, '') === file.etag)) {
    res.writeHead(304, common);
    res.end();
    return;
  }
  const useGzip = file.gzip !== null && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = useGzip ? file.gzip! : file.body;
  res.writeHead(200, { ...common, 'content-length': String(body.length), ...(useGzip ? { 'content-encoding': 'gzip' } : {}) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function notFound(res: ServerResponse): void {
  const text = JSON.stringify({ error: 'Not found' });
  res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/** True for the paths the dashboard answers: `/`, `/requests`, `/requests/...`, `/assets/...`. */
export function isDashboardPath(pathname: string): boolean {
  return pathname === '/' || pathname === '/requests' || pathname.startsWith('/requests/') || pathname.startsWith('/assets/');
}

/**
 * Answers a GET or HEAD for the dashboard and resolves to true; resolves to false (having sent
 * nothing) when the method or path is not the dashboard's, so the caller routes it on.
 */
export async function serveDashboard(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (!isDashboardPath(pathname)) return false;

  if (pathname.startsWith('/assets/')) {
    const name = pathname.slice('/assets/'.length);
    // Only plain file names: no folders, no "..", no encoded separators.
    if (!/^[\w][\w.-]*$/.test(name) || name.includes('..')) {
      notFound(res);
      return true;
    }
    const file = await load(path.join(ASSETS, name));
    if (!file) {
      notFound(res);
      return true;
    }
    const type = CONTENT_TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream';
    send(req, res, file, { 'content-type': type, 'cache-control': 'public, max-age=31536000, immutable' });
    return true;
  }

  // `/`, `/requests/<id>` and any deeper path under /requests/: the page itself, which routes on the client.
  const index = await load(path.join(DIST, 'index.html'));
  if (!index) {
    const text = 'The dashboard is not built: run `npm run build:dashboard`. The GraphQL API is at /graphql.\n';
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
    res.end(req.method === 'HEAD' ? undefined : text);
    return true;
  }
  send(req, res, index, {
    'content-type': CONTENT_TYPES['.html']!,
    'cache-control': 'no-cache',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  });
  return true;
}
