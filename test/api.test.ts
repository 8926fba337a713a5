import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { collectSubscription, eventually, photoJpeg, serveBytes, startImageServer, startSqueeze, uploadCsv, type LoopbackServer, type Squeeze } from './support/harness.ts';

const KEY = 'k_test_7f3a9c';
const auth = { authorization: `Bearer ${KEY}` };

/** Reads a GraphQL-over-SSE response to its end and returns the `next` payloads. */
async function readSse(response: Response): Promise<{ events: any[]; completed: boolean }> {
  const text = await response.text();
  const events: any[] = [];
  let completed = false;
  for (const block of text.split('\n\n')) {
    const event = /^event: (\w+)/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (event === 'next' && data) events.push(JSON.parse(data));
    if (event === 'complete') completed = true;
  }
  return { events, completed };
}

describe('the API with API_KEYS set', () => {
  let images: LoopbackServer;
  let squeeze: Squeeze;
  let requestId: string;

  beforeAll(async () => {
    const photo = await photoJpeg(640, 480);
    images = await startImageServer({ '/a.jpg': serveBytes(photo, 'image/jpeg'), '/b.jpg': serveBytes(photo, 'image/jpeg') });
    squeeze = await startSqueeze('api', { env: { API_KEYS: `other-key, ${KEY}` }, allowHosts: [images.host] });
    const csv = `S. No.,Product Name,Input Image Urls\n1,A,${images.url}/a.jpg,${images.url}/b.jpg\n`;
    const upload = await uploadCsv(squeeze.url, csv, {}, { 'x-graphql-yoga-csrf': '1', ...auth });
    requestId = upload.body.data.uploadCsv.request.id;
    await eventually(async () => {
      const answer = await squeeze.graphql<any>(`query($id: ID!) { request(id: $id) { status } }`, { id: requestId }, auth);
      return answer.data?.request.status === 'COMPLETED';
    });
  });
  afterAll(async () => {
    await squeeze?.close();
    await images?.close();
  });

  it('answers 401 over HTTP without a valid key, and keeps health checks open', async () => {
    const query = JSON.stringify({ query: '{ requests { totalCount } }' });
    const post = (headers: Record<string, string>) => fetch(`${squeeze.url}/graphql`, { method: 'POST', body: query, headers: { 'content-type': 'application/json', ...headers } });
    expect((await post({})).status).toBe(401);
    expect((await post({ authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await post({ authorization: KEY })).status).toBe(401);
    expect((await post(auth)).status).toBe(200);
    expect((await post({ authorization: 'Bearer other-key' })).status).toBe(200);

    expect((await fetch(`${squeeze.url}/status/${requestId}/`)).status).toBe(401);
    expect((await fetch(`${squeeze.url}/status/${requestId}/`, { headers: auth })).status).toBe(200);
    const form = new FormData();
    form.set('csv_file', new Blob(['S. No.,Product Name,Input Image Urls\n1,A,https://x.example/a.jpg\n']), 'a.csv');
    expect((await fetch(`${squeeze.url}/api/p/upload/`, { method: 'POST', body: form })).status).toBe(401);
    expect((await fetch(`${squeeze.url}/metrics`)).status).toBe(401);

    expect((await fetch(`${squeeze.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${squeeze.url}/readyz`)).status).toBe(200);
  });

  it('closes a WebSocket with 4403 when the key in connection_init is wrong', async () => {
    const closeCode = (connectionParams: Record<string, unknown>) =>
      new Promise<number>((resolve) => {
        const client = createClient({
          url: `${squeeze.url.replace('http', 'ws')}/graphql`,
          webSocketImpl: WebSocket,
          connectionParams,
          retryAttempts: 0,
          on: { closed: (event) => resolve((event as { code: number }).code) },
        });
        client.subscribe({ query: '{ __typename }' }, { next: () => undefined, error: () => undefined, complete: () => undefined });
      });
    expect(await closeCode({ authorization: 'Bearer wrong' })).toBe(4403);
    expect(await closeCode({})).toBe(4403);

    const { events, errors } = await collectSubscription<any>(squeeze.wsClient({ authorization: `Bearer ${KEY}` }), `subscription($id: ID!) { requestProgress(requestId: $id) { status } }`, {
      id: requestId,
    });
    expect(errors).toEqual([]);
    expect(events).toEqual([{ requestProgress: { status: 'COMPLETED' } }]);
  });

  it('streams progress over Server-Sent Events with the key in the Authorization header', async () => {
    const body = JSON.stringify({
      query: `subscription($id: ID!) { requestProgress(requestId: $id) { status progress { total done } image { id } } }`,
      variables: { id: requestId },
    });
    const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
    expect((await fetch(`${squeeze.url}/graphql`, { method: 'POST', body, headers })).status).toBe(401);
    const response = await fetch(`${squeeze.url}/graphql`, { method: 'POST', body, headers: { ...headers, ...auth } });
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
    const { events, completed } = await readSse(response);
    // An ended request: one event with its final state, then the stream completes.
    expect(events).toEqual([{ data: { requestProgress: { status: 'COMPLETED', progress: { total: 2, done: 2 }, image: null } } }]);
    expect(completed).toBe(true);
  });

  it('serves GraphiQL with the example operations, and refuses queries that are too deep or costly', async () => {
    const page = await fetch(`${squeeze.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('RecentRequests');
    expect(html).toContain('requestProgress');

    // The richest real query passes …
    const rich = await squeeze.graphql<any>(`{ requests { edges { node { products { edges { node { images { error { code message } } } } } } } } }`, {}, auth);
    expect(rich.errors).toBeUndefined();
    // … while 40 aliases or a flood of tokens are refused before running. (The schema has no cycles, so
    // ordinary queries cannot nest past the depth limit; it guards against future cycles.)
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: requests { totalCount }`).join(' ');
    const tooManyAliases = await squeeze.graphql<any>(`{ ${aliases} }`, {}, auth);
    expect(tooManyAliases.errors?.[0]?.message).toMatch(/alias/i);
    const tokens = await squeeze.graphql<any>(`{ requests { ${'totalCount '.repeat(5000)} } }`, {}, auth);
    expect(tokens.errors?.[0]?.message).toMatch(/token/i);
    // The contract's largest page, with every image field, passes; pages nested into a million nodes do not.
    const bigPage = await squeeze.graphql<any>(
      `query($id: ID!) { request(id: $id) { products(first: 1000) { edges { node { id serialNumber productName inputImageUrls outputImageUrls
        images { id position inputUrl outputUrl status error { code message } attempts inputBytes outputBytes width height format } } } } } }`,
      { id: requestId },
      auth,
    );
    expect(bigPage.errors).toBeUndefined();
    const nested = await squeeze.graphql<any>(`query($n: Int) { requests(first: 1000) { edges { node { products(first: $n) { totalCount } } } } }`, { n: 1000 }, auth);
    expect(nested.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_REQUEST' }, message: expect.stringMatching(/1001000 connection nodes/) });
  });

  it('exposes Prometheus metrics of the work done', async () => {
    const text = await (await fetch(`${squeeze.url}/metrics`, { headers: auth })).text();
    expect(text).toMatch(/squeeze_images_finished_total\{status="DONE",code=""\} 2/);
    expect(text).toContain('squeeze_download_seconds_bucket');
    expect(text).toContain('squeeze_compress_seconds_count 2');
    expect(text).toMatch(/squeeze_request_seconds_count\{status="COMPLETED"\} 1/);
    expect(text).toMatch(/squeeze_queue_depth 0/);
    expect(text).toContain('squeeze_pool_threads 2');
  });
});

describe('GraphQL errors', () => {
  let squeeze: Squeeze;
  beforeAll(async () => {
    squeeze = await startSqueeze('api-errors');
  });
  afterAll(() => squeeze?.close());

  it('names unknown ids NOT_FOUND and wrong-state calls BAD_REQUEST', async () => {
    const unknown = '01a20f51-84b2-7000-ae6c-12e77ee957a8';
    for (const mutation of ['processRequest(id: $id)', 'cancelRequest(id: $id)', 'retryFailedImages(requestId: $id)']) {
      const answer = await squeeze.graphql(`mutation($id: ID!) { ${mutation} { id } }`, { id: unknown });
      expect(answer.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    }
    expect((await squeeze.graphql<any>(`query($id: ID!) { request(id: $id) { id } }`, { id: unknown })).data).toEqual({ request: null });
    const upload = await uploadCsv(squeeze.url, 'S. No.,Product Name,Input Image Urls\n1,A,https://x.example/a.jpg\n', { autoStart: false });
    const id = upload.body.data.uploadCsv.request.id;
    const retry = await squeeze.graphql(`mutation($id: ID!) { retryFailedImages(requestId: $id) { id } }`, { id });
    expect(retry.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    const cancel = await squeeze.graphql<any>(`mutation($id: ID!) { cancelRequest(id: $id) { status progress { cancelled pending } outputCsvUrl } }`, { id });
    expect(cancel.data!.cancelRequest).toMatchObject({ status: 'CANCELLED', progress: { cancelled: 1, pending: 0 } });
    expect(cancel.data!.cancelRequest.outputCsvUrl).toMatch(/output\.csv$/);
    const process = await squeeze.graphql(`mutation($id: ID!) { processRequest(id: $id) { id } }`, { id });
    expect(process.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    const page = await squeeze.graphql(`{ requests(first: 5000) { totalCount } }`);
    expect(page.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
  });
});

describe('page cursors', () => {
  it('refuses a forged cursor with BAD_REQUEST', async () => {
    const squeeze = await startSqueeze('api-cursors');
    try {
      const forged = Buffer.from('r:not-a-uuid').toString('base64url');
      const answer = await squeeze.graphql(`query($after: String) { requests(after: $after) { totalCount } }`, { after: forged });
      expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
      const upload = await uploadCsv(squeeze.url, 'S. No.,Product Name,Input Image Urls\n1,A,https://x.example/a.jpg\n', { autoStart: false });
      const id = upload.body.data.uploadCsv.request.id;
      for (const cursor of ['p:abc', 'p:1.5', 'p:99999999999999', 'r:1']) {
        const page = await squeeze.graphql(`query($id: ID!, $after: String) { request(id: $id) { products(after: $after) { totalCount } } }`, {
          id,
          after: Buffer.from(cursor).toString('base64url'),
        });
        expect(page.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
      }
    } finally {
      await squeeze.close();
    }
  });
});
