import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { parse } from 'csv-parse/sync';
import { eventually, photoJpeg, serveBytes, startImageServer, startSqueeze, transparentPng, uploadCsv, type LoopbackServer, type Squeeze } from './support/harness.ts';

const RESULT = `query($id: ID!) { request(id: $id) { status inputBytes outputBytes savedPercent errorsCsvUrl outputCsvUrl
  products { edges { node { productName images { status format width height outputUrl outputBytes inputBytes error { code } } } } } } }`;

describe('output formats and request totals', () => {
  let images: LoopbackServer;
  let squeeze: Squeeze;

  beforeAll(async () => {
    images = await startImageServer({
      '/photo.jpg': serveBytes(await photoJpeg(1200, 800), 'image/jpeg'),
      '/small.jpg': serveBytes(await photoJpeg(300, 200), 'image/jpeg'),
      '/logo.png': serveBytes(await transparentPng(400, 300), 'image/png'),
    });
    squeeze = await startSqueeze('formats', { allowHosts: [images.host] });
  });
  afterAll(async () => {
    await squeeze?.close();
    await images?.close();
  });

  async function run(options: Record<string, unknown>, urls: string[]) {
    const csv = ['S. No.,Product Name,Input Image Urls', ...urls.map((url, i) => `${i + 1},P${i + 1},${images.url}${url}`)].join('\n');
    const upload = await uploadCsv(squeeze.url, csv, { options });
    expect(upload.body.data.uploadCsv.__typename).toBe('UploadCsvSuccess');
    const id = upload.body.data.uploadCsv.request.id;
    return eventually(async () => {
      const answer = await squeeze.graphql<any>(RESULT, { id });
      const request = answer.data?.request;
      return request && ['COMPLETED', 'FAILED'].includes(request.status) ? request : undefined;
    });
  }

  const fetchBytes = async (url: string) => Buffer.from(await (await fetch(url)).arrayBuffer());

  for (const [format, sharpName, contentType] of [
    ['WEBP', 'webp', 'image/webp'],
    ['AVIF', 'heif', 'image/avif'],
    ['PNG', 'png', 'image/png'],
  ] as const) {
    it(`writes ${format} when asked, keeping transparency`, async () => {
      const request = await run({ format, quality: 60 }, ['/logo.png']);
      const image = request.products.edges[0].node.images[0];
      expect(image).toMatchObject({ status: 'DONE', format: format.toLowerCase(), width: 400, height: 300 });
      const response = await fetch(image.outputUrl);
      expect(response.headers.get('content-type')).toBe(contentType);
      const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      expect(meta.format).toBe(sharpName);
      expect(meta.hasAlpha).toBe(true);
    });
  }

  it('shrinks to maxWidth/maxHeight keeping the aspect ratio, never enlarging, and totals the bytes', async () => {
    const request = await run({ maxWidth: 600, maxHeight: 600 }, ['/photo.jpg', '/small.jpg']);
    const [photo, small] = request.products.edges.map((edge: any) => edge.node.images[0]);
    expect([photo.width, photo.height]).toEqual([600, 400]);
    expect([small.width, small.height]).toEqual([300, 200]);
    const meta = await sharp(await fetchBytes(photo.outputUrl)).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([600, 400, 'jpeg']);
    expect(request.inputBytes).toBe(photo.inputBytes + small.inputBytes);
    expect(request.outputBytes).toBe(photo.outputBytes + small.outputBytes);
    expect(request.savedPercent).toBeCloseTo((1 - request.outputBytes / request.inputBytes) * 100, 0);
    expect(request.savedPercent).toBeGreaterThan(50);
    expect(request.errorsCsvUrl).toBeNull();
  });

  it('lists each failed image with its code and message in the errors CSV', async () => {
    const request = await run({}, ['/photo.jpg', '/missing.jpg']);
    expect(request.status).toBe('FAILED');
    const rows: string[][] = parse(await (await fetch(request.errorsCsvUrl)).text());
    expect(rows[0]).toEqual(['S. No.', 'Product Name', 'Input Image Url', 'Error Code', 'Error Message', 'Attempts']);
    expect(rows).toHaveLength(2);
    expect(rows[1]!.slice(0, 4)).toEqual(['2', 'P2', `${images.url}/missing.jpg`, 'HTTP_ERROR']);
    expect(rows[1]![4]).toContain('404');
    expect(rows[1]![5]).toBe('1');
  });
});
