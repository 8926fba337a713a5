import { request as httpRequest } from 'node:http';
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { parse } from 'csv-parse/sync';
import {
  eventually,
  photoJpeg,
  serveBytes,
  startImageServer,
  startSqueeze,
  startWebhookReceiver,
  type LoopbackServer,
  type Squeeze,
  type WebhookReceiver,
} from './support/harness.ts';

/**
 * The REST routes kept for clients of the original designs, spoken to as those clients do: multipart
 * forms, plain JSON answers, exact bodies and status codes. Images and webhooks go to loopback servers.
 */

interface ProductRow {
  'Serial Number': number;
  'Product Name': string;
  'Input Image Urls': string;
  'Output Image Urls': string | null;
}
interface StatusBody {
  request_id: string;
  status: string;
  products: ProductRow[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_CSV_BYTES = 2000;
const HEADER = 'S. No.,Product Name,Input Image Urls';

describe('the REST routes older clients use', () => {
  let images: LoopbackServer;
  let receiver: WebhookReceiver;
  let squeeze: Squeeze;
  /** Held answers of /slow.jpg, released by the test that uses it. */
  let releaseSlow: () => void = () => undefined;
  const slowReleased = new Promise<void>((resolve) => {
    releaseSlow = resolve;
  });

  beforeAll(async () => {
    // Different sizes, so an output can be matched to its input by its dimensions.
    const wide = await photoJpeg(160, 100);
    const tall = await photoJpeg(90, 120);
    const square = await photoJpeg(100, 100);
    images = await startImageServer({
      '/wide.jpg': serveBytes(wide, 'image/jpeg'),
      '/tall.jpg': serveBytes(tall, 'image/jpeg'),
      '/square.jpg': serveBytes(square, 'image/jpeg'),
      '/slow.jpg': (req, res) => {
        void slowReleased.then(() => serveBytes(square, 'image/jpeg')(req, res));
      },
    });
    receiver = await startWebhookReceiver();
    squeeze = await startSqueeze('rest', { env: { MAX_CSV_BYTES: String(MAX_CSV_BYTES) }, allowHosts: [images.host, receiver.host] });
  });

  afterAll(async () => {
    releaseSlow();
    await squeeze?.close();
    await images?.close();
    await receiver?.close();
  });

  // ---- helpers: the client side of the old routes ----

  async function postForm(route: string, fields: Record<string, string | { csv: string; name?: string }>) {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) {
      if (typeof value === 'string') form.set(name, value);
      else form.set(name, new Blob([value.csv], { type: 'text/csv' }), value.name ?? 'products.csv');
    }
    const response = await fetch(`${squeeze.url}${route}`, { method: 'POST', body: form });
    return { status: response.status, contentType: response.headers.get('content-type'), body: (await response.json()) as any };
  }

  async function getJson(route: string) {
    const response = await fetch(`${squeeze.url}${route}`);
    return { status: response.status, body: (await response.json()) as any };
  }

  async function upload(csv: string, fields: Record<string, string> = {}): Promise<string> {
    const answer = await postForm('/api/p/upload/', { csv_file: { csv }, ...fields });
    expect(answer.status).toBe(202);
    return answer.body.request_id as string;
  }

  async function statusOf(id: string): Promise<StatusBody> {
    const { status, body } = await getJson(`/status/${id}/`);
    expect(status).toBe(200);
    return body as StatusBody;
  }

  function untilEnded(id: string): Promise<StatusBody> {
    return eventually(async () => {
      const body = await statusOf(id);
      return ['completed', 'failed', 'cancelled'].includes(body.status) ? body : undefined;
    }, 20_000);
  }

  /** Uploads are spooled to DATA_DIR/tmp while the form is read; none may be left behind. */
  const spooledUploads = () => readdir(path.join(squeeze.dataDir, 'tmp')).catch(() => []);

  const requestCount = async () => (await squeeze.graphql<any>('{ requests { totalCount } }')).data!.requests.totalCount as number;

  /** Output URLs carry PUBLIC_URL (localhost); the test fetches them from the loopback address Squeeze listens on. */
  function onLoopback(absoluteUrl: string): string {
    expect(absoluteUrl.startsWith(`${squeeze.config.publicUrl}/files/`)).toBe(true);
    return `${squeeze.url}${absoluteUrl.slice(squeeze.config.publicUrl.length)}`;
  }

  async function dimensionsOf(outputUrl: string): Promise<[number, number]> {
    const response = await fetch(onLoopback(outputUrl));
    expect(response.status).toBe(200);
    const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    return [meta.width, meta.height];
  }

  function rawGet(path: string): Promise<number> {
    const { port } = new URL(squeeze.url);
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  }

  // ---- the stories ----

  it('takes a CSV at every upload route and field name, answers 202 with only the request id, and processes it', async () => {
    const csv = [HEADER, `1,SKU1,${images.url}/wide.jpg`].join('\n');
    const cases = [
      { route: '/api/p/upload/', field: 'csv_file' },
      { route: '/api/p/upload', field: 'file' },
      { route: '/upload/', field: 'csv_file' },
      { route: '/uploadAndProcessDocument', field: 'file' },
    ];
    const ids: string[] = [];
    for (const { route, field } of cases) {
      const answer = await postForm(route, { [field]: { csv } });
      expect(answer.status, `${route} with ${field}`).toBe(202);
      expect(answer.contentType).toMatch(/^application\/json/);
      expect(Object.keys(answer.body)).toEqual(['request_id']);
      expect(answer.body.request_id).toMatch(UUID);
      ids.push(answer.body.request_id);
    }
    expect(new Set(ids).size).toBe(cases.length);
    for (const id of ids) {
      const ended = await untilEnded(id);
      expect(ended.status).toBe('completed');
      expect(ended.products).toHaveLength(1);
      expect(ended.products[0]!['Output Image Urls']).toMatch(/^http:\/\/.+\/files\/.+\.jpg$/);
    }
  });

  it('refuses a form without a file, a body that is not a form, and a form whose file has another name', async () => {
    const before = await requestCount();
    const noFile = await postForm('/api/p/upload/', { webhook_url: `${receiver.url}/hook` });
    expect(noFile.status).toBe(400);
    expect(noFile.body).toEqual({ error: 'No CSV file provided' });

    const json = await fetch(`${squeeze.url}/api/p/upload/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ csv_file: `${HEADER}\n1,A,${images.url}/wide.jpg` }),
    });
    expect(json.status).toBe(400);
    expect(await json.json()).toEqual({ error: 'No CSV file provided' });

    const otherName = await postForm('/upload/', { document: { csv: `${HEADER}\n1,A,${images.url}/wide.jpg` } });
    expect(otherName.status).toBe(400);
    expect(otherName.body).toEqual({ error: 'No CSV file provided' });

    // A form cut off before its closing boundary is refused too.
    const cut = await fetch(`${squeeze.url}/api/p/upload/`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=XX' },
      body: `--XX\r\ncontent-disposition: form-data; name="csv_file"; filename="a.csv"\r\ncontent-type: text/csv\r\n\r\n${HEADER}\n1,A,${images.url}/wide.jpg\n`,
    });
    expect(cut.status).toBe(400);
    expect(((await cut.json()) as { error: string }).error).toEqual(expect.any(String));

    expect(await requestCount()).toBe(before);
    expect(await spooledUploads()).toEqual([]);
  });

  it('refuses an invalid CSV whole, listing each problem with its line, column and message', async () => {
    const before = await requestCount();
    const csv = [HEADER, `1,Good,${images.url}/wide.jpg`, '2,Bad URL,not-a-url', `1,Duplicate,${images.url}/tall.jpg`].join('\n');
    const answer = await postForm('/api/p/upload/', { csv_file: { csv } });
    expect(answer.status).toBe(400);
    expect(Object.keys(answer.body).sort()).toEqual(['error', 'problems']);
    expect(answer.body.error).toBe('Invalid CSV format');
    expect(answer.body.problems).toEqual([
      { line: 3, column: 'Input Image Urls', message: expect.any(String) },
      { line: 4, column: 'S. No.', message: expect.any(String) },
    ]);
    expect(answer.body.problems[0].message).toMatch(/url/i);
    expect(answer.body.problems[1].message).toMatch(/line 2/);
    expect(await requestCount()).toBe(before);
    expect(await spooledUploads()).toEqual([]);
    expect(images.hits).not.toContain('/tall.jpg');
  });

  it('refuses a webhook_url that is not an absolute http(s) URL or that the network policy blocks', async () => {
    const before = await requestCount();
    const csv = [HEADER, `1,SKU1,${images.url}/wide.jpg`].join('\n');
    // 127.0.0.1:1 is loopback but not one of the allowed test servers: blocked, never contacted.
    for (const webhook of ['ftp://x', 'not a url', 'http://127.0.0.1:1/hook']) {
      const answer = await postForm('/api/p/upload/', { csv_file: { csv }, webhook_url: webhook });
      expect(answer.status, webhook).toBe(400);
      expect(answer.body).toEqual({ error: 'Invalid webhook_url' });
    }
    // The field may come before the file: the form is read whole first.
    const form = new FormData();
    form.set('webhook_url', 'ftp://x');
    form.set('csv_file', new Blob([csv]), 'products.csv');
    const fieldFirst = await fetch(`${squeeze.url}/upload/`, { method: 'POST', body: form });
    expect(fieldFirst.status).toBe(400);
    expect(await fieldFirst.json()).toEqual({ error: 'Invalid webhook_url' });
    expect(await requestCount()).toBe(before);
  });

  it('answers 413 naming the limit for a CSV over MAX_CSV_BYTES, and stores nothing', async () => {
    const before = await requestCount();
    const lines = [HEADER];
    for (let i = 1; lines.join('\n').length <= MAX_CSV_BYTES + 500; i++) lines.push(`${i},Product ${i},${images.url}/wide.jpg`);
    const answer = await postForm('/api/p/upload/', { csv_file: { csv: lines.join('\n') } });
    expect(answer.status).toBe(413);
    expect(Object.keys(answer.body)).toEqual(['error']);
    expect(answer.body.error).toContain(String(MAX_CSV_BYTES));
    expect(await requestCount()).toBe(before);
    expect(await spooledUploads()).toEqual([]);
  });

  it('holds an auto_start=false upload as pending until POST /process/<id>/ starts it', async () => {
    const csv = [HEADER, `1,Held,${images.url}/square.jpg?held`].join('\n');
    const id = await upload(csv, { auto_start: 'false' });

    const pending = await statusOf(id);
    expect(pending).toEqual({
      request_id: id,
      status: 'pending',
      products: [{ 'Serial Number': 1, 'Product Name': 'Held', 'Input Image Urls': `${images.url}/square.jpg?held`, 'Output Image Urls': null }],
    });
    // Give a runner that wrongly took the images time to fetch them: nothing is fetched.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(images.hits).not.toContain('/square.jpg?held');
    expect((await statusOf(id)).status).toBe('pending');

    const started = await fetch(`${squeeze.url}/process/${id}/`, { method: 'POST' });
    expect(started.status).toBe(202);
    expect(await started.json()).toEqual({ request_id: id, status: 'processing' });

    const ended = await untilEnded(id);
    expect(ended.status).toBe('completed');
    expect(images.hits).toContain('/square.jpg?held');

    // A request that has ended cannot be started again.
    const again = await fetch(`${squeeze.url}/process/${id}`, { method: 'POST' });
    expect(again.status).toBe(409);
    const againBody = (await again.json()) as Record<string, unknown>;
    expect(Object.keys(againBody)).toEqual(['error']);
    expect(againBody.error).toMatch(/completed/);

    for (const unknown of [randomUUID(), 'not-a-uuid', '%E0%A4%A']) {
      const missing = await fetch(`${squeeze.url}/process/${unknown}/`, { method: 'POST' });
      expect(missing.status, unknown).toBe(404);
      expect(await missing.json()).toEqual({ error: 'Request ID not found' });
    }
  });

  it('shows status and rows: numbers, joined URL lists, outputs only once ended, in input order with gaps for failures', async () => {
    const csv = [
      HEADER,
      // Spaces around unquoted URLs, and a quoted list: both come back joined by "," with no spaces.
      `10,Shirt, ${images.url}/wide.jpg , ${images.url}/gone.jpg , ${images.url}/tall.jpg`,
      `7,"Mug, large","${images.url}/slow.jpg"`,
    ].join('\r\n');
    const id = await upload(csv);
    const inputs = [`${images.url}/wide.jpg,${images.url}/gone.jpg,${images.url}/tall.jpg`, `${images.url}/slow.jpg`];

    // While /slow.jpg is held the request is processing, and no row has outputs yet.
    await eventually(async () => images.hits.includes('/slow.jpg'), 10_000, 50);
    const during = await statusOf(id);
    expect(during).toEqual({
      request_id: id,
      status: 'processing',
      products: [
        { 'Serial Number': 10, 'Product Name': 'Shirt', 'Input Image Urls': inputs[0], 'Output Image Urls': null },
        { 'Serial Number': 7, 'Product Name': 'Mug, large', 'Input Image Urls': inputs[1], 'Output Image Urls': null },
      ],
    });
    releaseSlow();

    const ended = await untilEnded(id);
    expect(Object.keys(ended).sort()).toEqual(['products', 'request_id', 'status']);
    expect(ended.request_id).toBe(id);
    expect(ended.status).toBe('failed'); // one image (a 404) failed; the others were done
    expect(ended.products.map((p) => Object.keys(p))).toEqual([
      ['Serial Number', 'Product Name', 'Input Image Urls', 'Output Image Urls'],
      ['Serial Number', 'Product Name', 'Input Image Urls', 'Output Image Urls'],
    ]);
    expect(ended.products.map((p) => [p['Serial Number'], p['Product Name'], p['Input Image Urls']])).toEqual([
      [10, 'Shirt', inputs[0]],
      [7, 'Mug, large', inputs[1]],
    ]);
    const shirtOutputs = ended.products[0]!['Output Image Urls']!.split(',');
    expect(shirtOutputs).toHaveLength(3);
    expect(shirtOutputs[1]).toBe(''); // gone.jpg: no output
    expect(new URL(shirtOutputs[0]!).protocol).toBe('http:');
    // Same order as the inputs: wide first, tall last.
    expect(await dimensionsOf(shirtOutputs[0]!)).toEqual([160, 100]);
    expect(await dimensionsOf(shirtOutputs[2]!)).toEqual([90, 120]);
    expect(await dimensionsOf(ended.products[1]!['Output Image Urls']!)).toEqual([100, 100]);

    // The other name of the route answers the same body.
    const other = await getJson(`/getProcessingStatus/${id}`);
    expect(other.status).toBe(200);
    expect(other.body).toEqual(ended);
  });

  it('answers 404 with the contract body for an unknown request id', async () => {
    for (const route of [`/status/${randomUUID()}/`, `/getProcessingStatus/${randomUUID()}`, '/status/not-a-uuid/', '/getProcessingStatus/%E0%A4%A']) {
      const { status, body } = await getJson(route);
      expect(status, route).toBe(404);
      expect(body).toEqual({ error: 'Request ID not found' });
    }
  });

  it('sends a REST upload’s webhook as the bare array of product rows', async () => {
    const csv = [HEADER, `1,SKU1,"${images.url}/wide.jpg,${images.url}/tall.jpg"`, `2,=Formula,${images.url}/square.jpg`].join('\n');
    const id = await upload(csv, { webhook_url: `${receiver.url}/hook` });
    await receiver.waitFor(1);
    const delivery = receiver.deliveries[0]!;
    const body = JSON.parse(delivery.body) as ProductRow[];
    expect(Array.isArray(body)).toBe(true);

    const ended = await statusOf(id);
    expect(ended.status).toBe('completed');
    // The JSON keeps the text as stored (no leading ' for formulas) and equals the status route's rows.
    expect(body).toEqual(ended.products);
    expect(body[0]).toEqual({
      'Serial Number': 1,
      'Product Name': 'SKU1',
      'Input Image Urls': `${images.url}/wide.jpg,${images.url}/tall.jpg`,
      'Output Image Urls': expect.stringMatching(/^http:\/\/[^,]+\.jpg,http:\/\/[^,]+\.jpg$/),
    });
    expect(body[1]!['Product Name']).toBe('=Formula');

    expect(delivery.headers['content-type']).toBe('application/json');
    expect(delivery.headers['webhook-id']).toEqual(expect.any(String));
    expect(String(delivery.headers['webhook-timestamp'])).toMatch(/^\d+$/);
    expect(Math.abs(Number(delivery.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(120);
    expect(delivery.headers['webhook-signature']).toBeUndefined(); // no WEBHOOK_SECRET configured
    expect(receiver.deliveries).toHaveLength(1);
  });

  it('serves output images and the output CSV under /files/, and nothing outside it', async () => {
    const id = await upload([HEADER, `1,=SKU1,${images.url}/wide.jpg`].join('\n'));
    const ended = await untilEnded(id);
    const outputUrl = ended.products[0]!['Output Image Urls']!;

    const image = await fetch(onLoopback(outputUrl));
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toBe('image/jpeg');
    const bytes = Buffer.from(await image.arrayBuffer());
    expect(bytes.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));

    const csvUrl = `${squeeze.config.publicUrl}/files/requests/${id}/output.csv`;
    const csvAnswer = await fetch(onLoopback(csvUrl));
    expect(csvAnswer.status).toBe(200);
    expect(csvAnswer.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(parse(await csvAnswer.text())).toEqual([
      ['S. No.', 'Product Name', 'Input Image Urls', 'Output Image Urls'],
      ['1', "'=SKU1", `${images.url}/wide.jpg`, outputUrl],
    ]);

    // An unknown key, and escapes with "..", whether encoded or sent raw (fetch would normalise a raw "..").
    const missing = await fetch(`${squeeze.url}/files/requests/${id}/no-such-image.jpg`);
    expect(missing.status).toBe(404);
    await missing.body?.cancel();
    for (const escape of [`/files/requests/${id}/..%2F..%2F..%2Fpglite%2FPG_VERSION`, '/files/..%2F..%2Fetc%2Fpasswd']) {
      const answer = await fetch(`${squeeze.url}${escape}`);
      expect(answer.status, escape).toBe(404);
      await answer.body?.cancel();
    }
    expect(await rawGet(`/files/requests/${id}/../../../package.json`)).toBe(404);
    expect(await rawGet('/files/../../etc/passwd')).toBe(404);
  });
});
