import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSqueeze, uploadCsv, type Squeeze } from './support/harness.ts';

/** Uploads go through real multipart HTTP to /graphql; no images are fetched (autoStart: false). */
describe('uploading a product CSV', () => {
  let squeeze: Squeeze;

  beforeAll(async () => {
    squeeze = await startSqueeze('upload');
  });
  afterAll(() => squeeze?.close());

  const requestCount = async () => (await squeeze.graphql<any>('{ requests { totalCount } }')).data!.requests.totalCount as number;

  it('accepts the forms real files arrive in: BOM, CRLF, blank lines, unquoted extra URLs, spaces', async () => {
    const csv =
      '\uFEFFSr. No. , product name ,INPUT IMAGE URLS\r\n' +
      '1,SKU1, https://shop.example/a.jpg , https://shop.example/b.jpg\r\n' +
      '\r\n' +
      '2,"SKU ""two"", with comma","https://shop.example/c.jpg,https://shop.example/d.jpg"\r\n';
    const { body } = await uploadCsv(squeeze.url, csv, { autoStart: false });
    const result = body.data.uploadCsv;
    expect(result.__typename).toBe('UploadCsvSuccess');
    expect(result.request.status).toBe('PENDING');
    const stored = await squeeze.graphql<any>(
      `query($id: ID!) { request(id: $id) { products { edges { node { serialNumber productName inputImageUrls outputImageUrls } } } } }`,
      { id: result.request.id },
    );
    expect(stored.data!.request.products.edges.map((edge: any) => edge.node)).toEqual([
      { serialNumber: 1, productName: 'SKU1', inputImageUrls: ['https://shop.example/a.jpg', 'https://shop.example/b.jpg'], outputImageUrls: [null, null] },
      {
        serialNumber: 2,
        productName: 'SKU "two", with comma',
        inputImageUrls: ['https://shop.example/c.jpg', 'https://shop.example/d.jpg'],
        outputImageUrls: [null, null],
      },
    ]);
  });

  it('refuses a bad file whole, listing every problem with its line and column', async () => {
    const before = await requestCount();
    const csv = [
      'S. No.,Product Name,Input Image Urls',
      '1,Good,https://shop.example/a.jpg',
      '0,Zero serial,https://shop.example/b.jpg',
      '3,,https://shop.example/c.jpg',
      '1,Duplicate,https://shop.example/d.jpg',
      '5,Bad URL,ftp://shop.example/e.jpg',
      '6,No URL,',
    ].join('\n');
    const { body } = await uploadCsv(squeeze.url, csv);
    const result = body.data.uploadCsv;
    expect(result.__typename).toBe('CsvInvalidError');
    expect(result.code).toBe('CSV_INVALID');
    const where = result.problems.map((p: any) => [p.line, p.column]);
    expect(where).toEqual([
      [3, 'S. No.'],
      [4, 'Product Name'],
      [5, 'S. No.'],
      [6, 'Input Image Urls'],
      [7, 'Input Image Urls'],
    ]);
    expect(result.problems[2].message).toMatch(/line 2/);
    expect(await requestCount()).toBe(before);
  });

  it('refuses a header without the needed columns and a file without product rows', async () => {
    const header = await uploadCsv(squeeze.url, 'id,name,urls\n1,a,https://x.example/a.jpg\n');
    expect(header.body.data.uploadCsv.__typename).toBe('CsvInvalidError');
    expect(header.body.data.uploadCsv.problems[0].line).toBe(1);
    const empty = await uploadCsv(squeeze.url, 'S. No.,Product Name,Input Image Urls\n');
    expect(empty.body.data.uploadCsv.problems).toEqual([{ line: 1, column: null, message: expect.stringMatching(/no product rows/i) }]);
  });

  it('stores a 100 000-row file in one go', async () => {
    const lines = ['S. No.,Product Name,Input Image Urls'];
    for (let i = 1; i <= 100_000; i++) {
      lines.push(`${i},Product ${i},"https://cdn.example/p/${i}/1.jpg,https://cdn.example/p/${i}/2.jpg,https://cdn.example/p/${i}/3.jpg"`);
    }
    const csv = lines.join('\n');
    const { body } = await uploadCsv(squeeze.url, csv, { autoStart: false });
    const result = body.data.uploadCsv;
    expect(result.__typename).toBe('UploadCsvSuccess');
    expect(result.request.progress).toEqual({ total: 300_000, done: 0, failed: 0, cancelled: 0, pending: 300_000 });
    const page = await squeeze.graphql<any>(
      `query($id: ID!) { request(id: $id) { products(first: 2, after: null) { totalCount edges { cursor node { serialNumber } } pageInfo { hasNextPage endCursor } } } }`,
      { id: result.request.id },
    );
    const products = page.data!.request.products;
    expect(products.totalCount).toBe(100_000);
    expect(products.edges.map((edge: any) => edge.node.serialNumber)).toEqual([1, 2]);
    const next = await squeeze.graphql<any>(
      `query($id: ID!, $after: String) { request(id: $id) { products(first: 1, after: $after) { edges { node { serialNumber } } } } }`,
      { id: result.request.id, after: products.pageInfo.endCursor },
    );
    expect(next.data!.request.products.edges[0].node.serialNumber).toBe(3);
  });

  const storedRows = async () => {
    const [row] = await squeeze.database.rows<{ products: number; images: number }>(
      sql`select (select count(*)::int from products) as products, (select count(*)::int from images) as images`,
    );
    return { products: Number(row!.products), images: Number(row!.images) };
  };

  it('stores nothing of a long file whose last row is bad, though the good rows before it were already being written', async () => {
    const before = { requests: await requestCount(), ...(await storedRows()) };
    const lines = ['S. No.,Product Name,Input Image Urls'];
    for (let i = 1; i <= 5_000; i++) lines.push(`${i},Product ${i},"https://cdn.example/p/${i}/1.jpg,https://cdn.example/p/${i}/2.jpg"`);
    lines.push('5001,Last,not-a-url');
    const { body } = await uploadCsv(squeeze.url, lines.join('\n'), { autoStart: false });
    expect(body.data.uploadCsv.__typename).toBe('CsvInvalidError');
    expect(body.data.uploadCsv.problems.map((p: any) => p.line)).toEqual([5002]);
    expect({ requests: await requestCount(), ...(await storedRows()) }).toEqual(before);
  });

  it('stores several long files uploaded at once, each product with its own images in order', async () => {
    const file = (tag: string) => {
      const lines = ['S. No.,Product Name,Input Image Urls'];
      for (let i = 1; i <= 3_000; i++) lines.push(`${i},${tag} ${i},"https://cdn.example/${tag}/${i}/a.jpg,https://cdn.example/${tag}/${i}/b.jpg"`);
      return lines.join('\n');
    };
    // Concurrent ingests, each pipelining its statements on its own transaction's connection.
    const tags = ['north', 'south', 'east', 'west'];
    const results = await Promise.all(tags.map((tag) => uploadCsv(squeeze.url, file(tag), { autoStart: false })));
    for (const [index, { body }] of results.entries()) {
      const request = body.data.uploadCsv.request;
      expect(request.progress.total).toBe(6_000);
      const page = await squeeze.graphql<any>(
        `query($id: ID!, $after: String) { request(id: $id) { products(first: 2, after: $after) { totalCount edges { node { serialNumber productName inputImageUrls } } } } }`,
        { id: request.id, after: null },
      );
      const tag = tags[index]!;
      expect(page.data!.request.products.totalCount).toBe(3_000);
      expect(page.data!.request.products.edges.map((edge: any) => edge.node)).toEqual([1, 2].map((i) => ({
        serialNumber: i,
        productName: `${tag} ${i}`,
        inputImageUrls: [`https://cdn.example/${tag}/${i}/a.jpg`, `https://cdn.example/${tag}/${i}/b.jpg`],
      })));
    }
  });

  it('checks the webhook URL and the options before storing anything', async () => {
    const csv = 'S. No.,Product Name,Input Image Urls\n1,A,https://shop.example/a.jpg\n';
    const notUrl = await uploadCsv(squeeze.url, csv, { webhookUrl: 'not a url' });
    expect(notUrl.body.data.uploadCsv).toMatchObject({ __typename: 'InvalidInputError', field: 'webhookUrl', code: 'INVALID_URL' });
    const ftp = await uploadCsv(squeeze.url, csv, { webhookUrl: 'ftp://hooks.example/x' });
    expect(ftp.body.data.uploadCsv).toMatchObject({ __typename: 'InvalidInputError', field: 'webhookUrl' });
    // The network policy refuses a loopback receiver (checked on the literal address, no connection made).
    const blocked = await uploadCsv(squeeze.url, csv, { webhookUrl: 'http://127.0.0.1:9/hook' });
    expect(blocked.body.data.uploadCsv).toMatchObject({ __typename: 'InvalidInputError', field: 'webhookUrl', code: 'BLOCKED_ADDRESS' });
    const quality = await uploadCsv(squeeze.url, csv, { options: { quality: 0 } });
    expect(quality.body.data.uploadCsv).toMatchObject({ __typename: 'InvalidInputError', field: 'options.quality' });
  });

  it('needs the CSRF header on multipart requests, and takes one file only', async () => {
    const csv = 'S. No.,Product Name,Input Image Urls\n1,A,https://shop.example/a.jpg\n';
    const withoutHeader = await uploadCsv(squeeze.url, csv, {}, {});
    expect(withoutHeader.status).toBe(403);
    const apollo = await uploadCsv(squeeze.url, csv, { autoStart: false }, { 'apollo-require-preflight': 'true' });
    expect(apollo.body.data.uploadCsv.__typename).toBe('UploadCsvSuccess');

    const form = new FormData();
    form.set('operations', JSON.stringify({ query: 'mutation($file: Upload!) { uploadCsv(file: $file) { __typename } }', variables: { file: null } }));
    form.set('map', JSON.stringify({ 0: ['variables.file'], 1: ['variables.file'] }));
    form.set('0', new Blob([csv]), 'a.csv');
    form.set('1', new Blob([csv]), 'b.csv');
    const twoFiles = await fetch(`${squeeze.url}/graphql`, { method: 'POST', body: form, headers: { 'x-graphql-yoga-csrf': '1' } });
    expect(twoFiles.status).toBe(413);
  });
});

describe('a file over the size limit', () => {
  it('is refused by name and nothing is stored', async () => {
    const MAX_CSV_BYTES = 200_000;
    const squeeze = await startSqueeze('upload-limit', { env: { MAX_CSV_BYTES: String(MAX_CSV_BYTES) } });
    try {
      // Long rows, so the size limit comes before the row limit.
      const urls = Array.from({ length: 40 }, (_, i) => `https://cdn.example/a/${i}.jpg`).join(',');
      const lines = ['S. No.,Product Name,Input Image Urls'];
      for (let size = 0, i = 1; size <= MAX_CSV_BYTES; i++) {
        const line = `${i},Product ${i},"${urls}"`;
        lines.push(line);
        size += line.length + 1;
      }
      const { body } = await uploadCsv(squeeze.url, lines.join('\n'));
      const result = body.data.uploadCsv;
      expect(result).toMatchObject({ __typename: 'InvalidInputError', code: 'TOO_LARGE', field: 'file' });
      expect(result.message).toContain(String(MAX_CSV_BYTES));
      expect(result.message).toContain('MAX_CSV_BYTES');
      expect((await squeeze.graphql<any>('{ requests { totalCount } }')).data!.requests.totalCount).toBe(0);

      // A body whose declared length is far over the limit is refused before it is read.
      const huge = await fetch(`${squeeze.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data; boundary=x', 'x-graphql-yoga-csrf': '1' },
        body: Buffer.alloc(MAX_CSV_BYTES * 20),
      });
      expect(huge.status).toBe(413);
      expect(JSON.stringify(await huge.json())).toContain('MAX_CSV_BYTES');
    } finally {
      await squeeze.close();
    }
  });
});

describe('a slow upload', () => {
  it('is cut at UPLOAD_TIMEOUT_MS and nothing is stored', async () => {
    const squeeze = await startSqueeze('upload-slow', { env: { UPLOAD_TIMEOUT_MS: '1500' } });
    try {
      const { request } = await import('node:http');
      const boundary = 'squeezeboundary';
      const head =
        `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n` +
        JSON.stringify({ query: 'mutation($file: Upload!) { uploadCsv(file: $file) { __typename } }', variables: { file: null } }) +
        `\r\n--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="slow.csv"\r\nContent-Type: text/csv\r\n\r\nS. No.,Product Name,Input Image Urls\n`;
      const started = Date.now();
      const outcome = await new Promise<string>((resolve) => {
        const req = request(`${squeeze.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'x-graphql-yoga-csrf': '1' },
        });
        req.on('response', (res) => resolve(`status ${res.statusCode}`));
        req.on('error', (error) => resolve(`error ${(error as NodeJS.ErrnoException).code}`));
        req.write(head);
        let row = 1;
        // One row every 200 ms: the upload would take minutes.
        const timer = setInterval(() => {
          if (!req.destroyed) req.write(`${row},P${row},https://x.example/${row++}.jpg\n`);
        }, 200);
        req.on('close', () => clearInterval(timer));
      });
      expect(outcome).toMatch(/status 408|error ECONNRESET|error EPIPE/);
      expect(Date.now() - started).toBeLessThan(10_000);
      const count = await squeeze.graphql<any>('{ requests { totalCount } }');
      expect(count.data!.requests.totalCount).toBe(0);
    } finally {
      await squeeze.close();
    }
  });
});
