import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { getRequest } from '../db/requests.ts';
import { productsWithImages } from '../db/products.ts';
import { ServiceError } from '../errors.ts';
import { ingestCsv } from '../ingest/ingestCsv.ts';
import { checkWebhookUrl } from '../ingest/uploadChecks.ts';
import { outputUrlList, type ProductRowJson } from '../output/requestOutputs.ts';
import { startRequest } from '../requests/lifecycle.ts';
import { hasEnded, type RequestStatus } from '../statuses.ts';
import type { Services } from '../services.ts';

const UPLOAD_PATHS = new Set(['/api/p/upload', '/upload', '/uploadAndProcessDocument']);

/** The REST routes older clients of this kind of service use. Returns false when the path is not one of them. */
export async function handleRest(services: Services, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const pathname = url.pathname.replace(/\/+$/, '') || '/';
  if (UPLOAD_PATHS.has(pathname)) {
    if (req.method !== 'POST') return send(res, 405, { error: 'Use POST with a multipart form' });
    await upload(services, req, res);
    return true;
  }
  const process = /^\/process\/([^/]+)$/.exec(pathname);
  if (process) {
    if (req.method !== 'POST') return send(res, 405, { error: 'Use POST' });
    const id = decodeId(process[1]!);
    try {
      const started = await startRequest(services, id);
      services.logger.info({ requestId: started.id, images: started.total }, 'request started (REST)');
      services.workQueued();
      return send(res, 202, { request_id: id, status: 'processing' });
    } catch (error) {
      if (error instanceof ServiceError && error.code === 'NOT_FOUND') return send(res, 404, { error: 'Request ID not found' });
      if (error instanceof ServiceError) return send(res, 409, { error: error.message });
      throw error;
    }
  }
  const status = /^\/(?:status|getProcessingStatus)\/([^/]+)$/.exec(pathname);
  if (status) {
    if (req.method !== 'GET') return send(res, 405, { error: 'Use GET' });
    await statusOf(services, decodeId(status[1]!), res);
    return true;
  }
  return false;
}

/** A path segment as an id; malformed percent-encoding (`%E0%A4%A`) cannot be an id, so it reads as an unknown one, not a 500. */
function decodeId(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function send(res: ServerResponse, status: number, body: unknown): true {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return true;
}

async function statusOf(services: Services, id: string, res: ServerResponse) {
  const request = await getRequest(services.database.db, id);
  if (!request) return send(res, 404, { error: 'Request ID not found' });
  const ended = hasEnded(request.status as RequestStatus);
  const products: ProductRowJson[] = [];
  for await (const { product, images } of productsWithImages(services.database.db, request.id)) {
    products.push({
      'Serial Number': product.serialNumber,
      'Product Name': product.productName,
      'Input Image Urls': images.map((image) => image.inputUrl).join(','),
      'Output Image Urls': ended ? outputUrlList(services.storage, images) : null,
    });
  }
  return send(res, 200, { request_id: request.id, status: request.status.toLowerCase(), products });
}

interface UploadForm {
  csvPath?: string;
  tooLarge: boolean;
  fields: Record<string, string>;
}

/**
 * The multipart form is read whole before anything is stored: fields may come after the file, and the
 * webhook URL must be checked before the request exists. The file goes to a temporary file on disk,
 * never to memory, and is parsed from there.
 */
async function upload(services: Services, req: IncomingMessage, res: ServerResponse) {
  const { config } = services;
  const contentType = req.headers['content-type'] ?? '';
  if (!contentType.startsWith('multipart/form-data')) return send(res, 400, { error: 'No CSV file provided' });
  const tmpDir = path.join(config.dataDir, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  const form: UploadForm = { tooLarge: false, fields: {} };
  try {
    await readForm(req, tmpDir, config.maxCsvBytes, form);
  } catch (error) {
    if (form.csvPath) await rm(form.csvPath, { force: true });
    return send(res, 400, { error: `Malformed multipart form: ${(error as Error).message}` });
  }
  // The spooled file is removed before the answer goes out: a client that sees the answer sees it gone.
  let answer: [status: number, body: unknown];
  try {
    answer = await answerUpload(services, config, form);
  } finally {
    if (form.csvPath) await rm(form.csvPath, { force: true });
  }
  return send(res, ...answer);
}

async function answerUpload(services: Services, config: Services['config'], form: UploadForm): Promise<[status: number, body: unknown]> {
  if (form.tooLarge) {
    return [413, { error: `CSV file is larger than the limit of ${config.maxCsvBytes} bytes (MAX_CSV_BYTES)` }];
  }
  if (!form.csvPath) return [400, { error: 'No CSV file provided' }];
  const webhookUrl = form.fields.webhook_url?.trim() || null;
  if (await checkWebhookUrl(webhookUrl, services.guard)) return [400, { error: 'Invalid webhook_url' }];
  const autoStart = !['false', '0', 'no', 'off'].includes((form.fields.auto_start ?? 'true').trim().toLowerCase());
  const result = await ingestCsv(services, {
    source: createReadStream(form.csvPath),
    webhookUrl,
    options: { quality: 50, format: 'JPEG' },
    autoStart,
    origin: 'rest',
  });
  if (!result.ok) {
    if (result.reason === 'tooLarge') return [413, { error: result.message }];
    return [400, { error: 'Invalid CSV format', problems: result.problems }];
  }
  if (autoStart) services.workQueued();
  services.logger.info({ requestId: result.request.id, images: result.request.total }, 'request uploaded (REST)');
  return [202, { request_id: result.request.id }];
}

function readForm(req: IncomingMessage, tmpDir: string, maxBytes: number, form: UploadForm): Promise<void> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { files: 1, fileSize: maxBytes, fields: 20, fieldSize: 64 * 1024 },
      });
    } catch (error) {
      reject(error);
      return;
    }
    const writes: Promise<void>[] = [];
    const files: Readable[] = [];
    parser.on('field', (name, value) => {
      form.fields[name] = value;
    });
    parser.on('file', (name, stream) => {
      if ((name !== 'csv_file' && name !== 'file') || form.csvPath) {
        stream.resume();
        return;
      }
      const target = path.join(tmpDir, `upload-${randomBytes(8).toString('hex')}.csv`);
      form.csvPath = target;
      stream.on('limit', () => {
        form.tooLarge = true;
      });
      files.push(stream);
      writes.push(pipeline(stream, createWriteStream(target)));
    });
    // A broken form settles only once its spool file is closed: the caller removes the file next, and a
    // write stream still opening would otherwise create it again after the removal.
    parser.on('error', (error) => {
      for (const file of files) file.destroy(error as Error);
      void Promise.allSettled(writes).then(() => reject(error));
    });
    parser.on('close', () => {
      Promise.all(writes).then(() => resolve(), reject);
    });
    req.pipe(parser);
  });
}
