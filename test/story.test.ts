import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { Webhook } from 'standardwebhooks';
import { parse } from 'csv-parse/sync';
import {
  collectSubscription,
  photoJpeg,
  serveBytes,
  startImageServer,
  startSqueeze,
  startWebhookReceiver,
  transparentPng,
  uploadCsv,
  type LoopbackServer,
  type Squeeze,
  type WebhookReceiver,
} from './support/harness.ts';

const SECRET = `whsec_${Buffer.from('a-very-secret-signing-key-for-tests').toString('base64')}`;

const PROGRESS = `subscription Follow($id: ID!) {
  requestProgress(requestId: $id) {
    requestId status
    progress { total done failed cancelled pending }
    image { id inputUrl outputUrl status error { code message } }
    request { outputCsvUrl }
  }
}`;

interface ProgressEvent {
  requestProgress: {
    status: string;
    progress: { total: number; done: number; failed: number; cancelled: number; pending: number };
    image: { inputUrl: string; outputUrl: string | null; status: string; error: { code: string } | null } | null;
    request: { outputCsvUrl: string | null };
  };
}

describe('a catalogue of real-looking photographs', () => {
  let images: LoopbackServer;
  let receiver: WebhookReceiver;
  let squeeze: Squeeze;
  const inputs: Record<string, Buffer> = {};

  beforeAll(async () => {
    inputs.front = await photoJpeg(800, 600);
    inputs.side = await photoJpeg(640, 480, { orientation: 6 });
    inputs.logo = await transparentPng(300, 200);
    images = await startImageServer({
      '/front.jpg': serveBytes(inputs.front, 'image/jpeg'),
      '/side.jpg': serveBytes(inputs.side, 'image/jpeg'),
      '/logo.png': serveBytes(inputs.logo, 'image/png'),
      '/page.html': serveBytes(Buffer.from('<!doctype html><html><body>not an image</body></html>'), 'image/jpeg'),
    });
    receiver = await startWebhookReceiver();
    squeeze = await startSqueeze('story', { env: { WEBHOOK_SECRET: SECRET, PROGRESS_COALESCE_MS: '0' }, allowHosts: [images.host, receiver.host] });
  });

  afterAll(async () => {
    await squeeze?.close();
    await images?.close();
    await receiver?.close();
  });

  it('compresses every image, follows progress live, writes the output CSV and sends a signed webhook', async () => {
    const csv = [
      'S. No.,Product Name,Input Image Urls',
      `1,SKU1,"${images.url}/front.jpg,${images.url}/side.jpg"`,
      `2,=Logo Shirt,${images.url}/logo.png`,
    ].join('\r\n');
    const upload = await uploadCsv(squeeze.url, csv, { webhookUrl: `${receiver.url}/hook` });
    expect(upload.status).toBe(200);
    const result = upload.body.data.uploadCsv;
    expect(result.__typename).toBe('UploadCsvSuccess');
    expect(result.request.progress.total).toBe(3);
    const requestId: string = result.request.id;

    const { events, errors } = await collectSubscription<ProgressEvent>(squeeze.wsClient(), PROGRESS, { id: requestId });
    expect(errors).toEqual([]);
    const last = events.at(-1)!.requestProgress;
    expect(last.status).toBe('COMPLETED');
    expect(last.progress).toEqual({ total: 3, done: 3, failed: 0, cancelled: 0, pending: 0 });
    expect(last.request.outputCsvUrl).toBe(`${squeeze.config.publicUrl}/files/requests/${requestId}/output.csv`);
    // Every image's change reached the subscriber, each naming its image.
    const changed = events.filter((event) => event.requestProgress.image).map((event) => event.requestProgress.image!.inputUrl);
    expect(changed.sort()).toEqual([`${images.url}/front.jpg`, `${images.url}/logo.png`, `${images.url}/side.jpg`].sort());
    const done = events.map((event) => event.requestProgress.progress.done);
    expect(done).toEqual([...done].sort((a, b) => a - b));

    const query = await squeeze.graphql<any>(
      `query($id: ID!) { request(id: $id) { status outputCsvUrl products { totalCount edges { node {
        serialNumber productName inputImageUrls outputImageUrls
        images { position status attempts inputBytes outputBytes width height format outputUrl } } } } } }`,
      { id: requestId },
    );
    expect(query.errors).toBeUndefined();
    const products = query.data.request.products.edges.map((edge: any) => edge.node);
    expect(products.map((p: any) => p.serialNumber)).toEqual([1, 2]);
    expect(products[1].productName).toBe('=Logo Shirt');

    const expectations = [
      { input: inputs.front!, width: 800, height: 600 },
      { input: inputs.side!, width: 480, height: 640 }, // EXIF orientation 6 applied: turned upright
      { input: inputs.logo!, width: 300, height: 200 },
    ];
    const allImages = products.flatMap((p: any) => p.images);
    for (const [index, image] of allImages.entries()) {
      const expected = expectations[index]!;
      expect(image.status).toBe('DONE');
      expect(image.attempts).toBe(1);
      const response = await fetch(image.outputUrl);
      expect(response.headers.get('content-type')).toBe('image/jpeg');
      const output = Buffer.from(await response.arrayBuffer());
      const meta = await sharp(output).metadata();
      expect(meta.format).toBe('jpeg');
      expect([meta.width, meta.height]).toEqual([expected.width, expected.height]);
      expect(meta.exif).toBeUndefined();
      expect(output.length).toBe(image.outputBytes);
      expect(image.inputBytes).toBe(expected.input.length);
      if (index < 2) expect(output.length).toBeLessThan(expected.input.length);
      expect([image.width, image.height, image.format]).toEqual([expected.width, expected.height, 'jpeg']);
    }
    // The PNG's transparent half was flattened onto white.
    const logo = await fetch(allImages[2].outputUrl).then(async (r) => Buffer.from(await r.arrayBuffer()));
    const { data } = await sharp(logo).extract({ left: 10, top: 10, width: 1, height: 1 }).raw().toBuffer({ resolveWithObject: true });
    expect([...data].every((channel) => channel > 245)).toBe(true);

    const csvText = await fetch(query.data.request.outputCsvUrl).then((r) => r.text());
    const rows: string[][] = parse(csvText);
    expect(rows[0]).toEqual(['S. No.', 'Product Name', 'Input Image Urls', 'Output Image Urls']);
    expect(rows[1]).toEqual(['1', 'SKU1', `${images.url}/front.jpg,${images.url}/side.jpg`, products[0].outputImageUrls.join(',')]);
    // A formula-looking name is neutralised in the CSV.
    expect(rows[2]).toEqual(['2', "'=Logo Shirt", `${images.url}/logo.png`, products[1].outputImageUrls[0]]);

    await receiver.waitFor(1);
    const delivery = receiver.deliveries[0]!;
    const verified = new Webhook(SECRET).verify(delivery.body, {
      'webhook-id': String(delivery.headers['webhook-id']),
      'webhook-timestamp': String(delivery.headers['webhook-timestamp']),
      'webhook-signature': String(delivery.headers['webhook-signature']),
    }) as any;
    expect(delivery.headers['content-type']).toBe('application/json');
    expect(delivery.headers['user-agent']).toMatch(/^Squeeze\//);
    expect(verified.type).toBe('request.completed');
    expect(verified.data.requestId).toBe(requestId);
    expect(verified.data.status).toBe('COMPLETED');
    expect(verified.data.outputCsvUrl).toBe(query.data.request.outputCsvUrl);
    expect(verified.data.products).toEqual([
      {
        'Serial Number': 1,
        'Product Name': 'SKU1',
        'Input Image Urls': `${images.url}/front.jpg,${images.url}/side.jpg`,
        'Output Image Urls': products[0].outputImageUrls.join(','),
      },
      { 'Serial Number': 2, 'Product Name': '=Logo Shirt', 'Input Image Urls': `${images.url}/logo.png`, 'Output Image Urls': products[1].outputImageUrls[0] },
    ]);
    // A tampered body fails the receiver's check.
    expect(() =>
      new Webhook(SECRET).verify(delivery.body.replace('SKU1', 'SKU9'), {
        'webhook-id': String(delivery.headers['webhook-id']),
        'webhook-timestamp': String(delivery.headers['webhook-timestamp']),
        'webhook-signature': String(delivery.headers['webhook-signature']),
      }),
    ).toThrow();
  });

  it('fails a missing image and an HTML page alone; the others are done and the request is FAILED', async () => {
    const csv = [
      'Serial Number,Product Name,Input Image Urls',
      `1,Good,${images.url}/front.jpg`,
      `2,Missing,${images.url}/gone.jpg,${images.url}/logo.png`,
      `3,Html,${images.url}/page.html`,
    ].join('\n');
    const upload = await uploadCsv(squeeze.url, csv);
    const requestId = upload.body.data.uploadCsv.request.id;
    const { events } = await collectSubscription<ProgressEvent>(squeeze.wsClient(), PROGRESS, { id: requestId });
    const last = events.at(-1)!.requestProgress;
    expect(last.status).toBe('FAILED');
    expect(last.progress).toEqual({ total: 4, done: 2, failed: 2, cancelled: 0, pending: 0 });
    const found = await squeeze.graphql<any>(
      `query($id: ID!) { request(id: $id) { products { edges { node { images { inputUrl status attempts error { code message } } } } } } }`,
      { id: requestId },
    );
    const byUrl = Object.fromEntries(
      found.data.request.products.edges.flatMap((edge: any) => edge.node.images).map((image: any) => [image.inputUrl.replace(images.url, ''), image]),
    );
    expect(byUrl['/front.jpg']).toMatchObject({ status: 'DONE', error: null });
    expect(byUrl['/logo.png']).toMatchObject({ status: 'DONE', error: null });
    // A 404 is permanent: one attempt, no retry; the message names the status.
    expect(byUrl['/gone.jpg']).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'HTTP_ERROR' } });
    expect(byUrl['/gone.jpg'].error.message).toContain('404');
    // HTML served as image/jpeg is judged by its bytes, not its content type.
    expect(byUrl['/page.html']).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'UNSUPPORTED_FORMAT' } });

    const rows: string[][] = parse(await fetch(last.request.outputCsvUrl!).then((r) => r.text()));
    expect(rows[1]![3]).toMatch(/^http:\/\/localhost:\d+\/files\/requests\/.+\.jpg$/);
    const outputs2 = rows[2]![3]!.split(',');
    expect(outputs2).toHaveLength(2);
    expect(outputs2[0]).toBe('');
    expect(outputs2[1]).toMatch(/\.jpg$/);
    expect(rows[3]![3]).toBe('');
  });
});
