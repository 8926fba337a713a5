import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { eventually, photoJpeg, serveBytes, startImageServer, startSqueeze, startWebhookReceiver, uploadCsv, type LoopbackServer, type Squeeze } from './support/harness.ts';
import { openTestDatabase } from './support/database.ts';

const SECRET = `whsec_${Buffer.from('webhook-test-secret-of-some-length!').toString('base64')}`;
const DELIVERIES = `query($id: ID!) { request(id: $id) { status webhookDeliveries {
  id eventType round url status attemptCount lastStatusCode lastError nextAttemptAt deliveredAt
  attempts { attemptedAt statusCode durationMs error } } } }`;

/** A request that ends at once: its only image is a 404, so it is FAILED and its webhook is queued. */
async function endedRequest(squeeze: Squeeze, images: LoopbackServer, webhookUrl: string): Promise<string> {
  const upload = await uploadCsv(squeeze.url, `S. No.,Product Name,Input Image Urls\n1,Gone,${images.url}/missing.jpg\n`, { webhookUrl });
  expect(upload.body.data.uploadCsv.__typename).toBe('UploadCsvSuccess');
  return upload.body.data.uploadCsv.request.id;
}

async function deliveriesOf(squeeze: Squeeze, id: string): Promise<any[]> {
  const answer = await squeeze.graphql<any>(DELIVERIES, { id });
  return answer.data!.request.webhookDeliveries;
}

describe('webhook delivery', () => {
  let images: LoopbackServer;
  let hung: LoopbackServer;
  let squeeze: Squeeze;
  const receivers: LoopbackServer[] = [];

  beforeAll(async () => {
    images = await startImageServer({});
    // A receiver that reads the request and never answers.
    hung = await startImageServer({ '/hook': () => undefined });
    const answers = [
      await startWebhookReceiver((i) => (i < 2 ? 500 : 200)),
      await startWebhookReceiver(() => 410),
      await startWebhookReceiver(() => 204),
    ];
    receivers.push(...answers);
    squeeze = await startSqueeze('webhooks', {
      env: { WEBHOOK_SECRET: SECRET, WEBHOOK_RETRY_DELAYS: '0,1,1,1', WEBHOOK_TIMEOUT_MS: '800' },
      allowHosts: [images.host, hung.host, ...answers.map((r) => r.host)],
    });
  });
  afterAll(async () => {
    await squeeze?.close();
    await Promise.all([images, hung, ...receivers].map((server) => server?.close()));
  });

  it('retries a receiver that answers 500 twice, with one webhook-id, until it is delivered', async () => {
    const receiver = receivers[0] as Awaited<ReturnType<typeof startWebhookReceiver>>;
    const id = await endedRequest(squeeze, images, `${receiver.url}/hook`);
    await receiver.waitFor(3);
    const delivery = await eventually(async () => {
      const [row] = await deliveriesOf(squeeze, id);
      return row?.status === 'DELIVERED' ? row : undefined;
    });
    expect(delivery).toMatchObject({ eventType: 'request.failed', round: 1, attemptCount: 3, lastStatusCode: 200, lastError: null, nextAttemptAt: null });
    expect(delivery.attempts.map((a: any) => a.statusCode)).toEqual([500, 500, 200]);
    const ids = new Set(receiver.deliveries.map((d) => d.headers['webhook-id']));
    expect(ids).toEqual(new Set([`msg_${delivery.id}`]));
    // Every attempt is signed afresh and verifies with the peer implementation.
    const wh = new Webhook(SECRET);
    for (const d of receiver.deliveries) {
      const headers = {
        'webhook-id': String(d.headers['webhook-id']),
        'webhook-timestamp': String(d.headers['webhook-timestamp']),
        'webhook-signature': String(d.headers['webhook-signature']),
      };
      expect((wh.verify(d.body, headers) as any).data.requestId).toBe(id);
      // An old timestamp (replayed delivery) fails the check.
      expect(() => wh.verify(d.body, { ...headers, 'webhook-timestamp': String(Math.floor(Date.now() / 1000) - 3600) })).toThrow();
    }
  });

  it('stops at once when the receiver answers 410 Gone', async () => {
    const receiver = receivers[1] as Awaited<ReturnType<typeof startWebhookReceiver>>;
    const id = await endedRequest(squeeze, images, `${receiver.url}/hook`);
    const delivery = await eventually(async () => {
      const [row] = await deliveriesOf(squeeze, id);
      return row?.status === 'FAILED' ? row : undefined;
    });
    expect(delivery).toMatchObject({ attemptCount: 1, lastStatusCode: 410 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(receiver.deliveries).toHaveLength(1);
  });

  it('times out a receiver that never answers, and tries again', async () => {
    const id = await endedRequest(squeeze, images, `${hung.url}/hook`);
    const delivery = await eventually(async () => {
      const [row] = await deliveriesOf(squeeze, id);
      return row?.attempts.length >= 2 ? row : undefined;
    }, 20_000);
    expect(delivery.attempts[0]).toMatchObject({ statusCode: null, error: expect.stringMatching(/DOWNLOAD_TIMEOUT|timed out|timeout/i) });
    // undici's own header timer is coarse (it may fire a few hundred ms early); the attempt still waited.
    expect(delivery.attempts[0].durationMs).toBeGreaterThanOrEqual(300);
    expect(hung.hits.length).toBeGreaterThanOrEqual(2);
  });

  it('sends a delivered webhook once more on redeliverWebhook, with the same webhook-id', async () => {
    const receiver = receivers[2] as Awaited<ReturnType<typeof startWebhookReceiver>>;
    const id = await endedRequest(squeeze, images, `${receiver.url}/hook`);
    await receiver.waitFor(1);
    const [delivery] = await eventually(async () => {
      const rows = await deliveriesOf(squeeze, id);
      return rows[0]?.status === 'DELIVERED' ? rows : undefined;
    });
    const again = await squeeze.graphql<any>(`mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status } }`, { id: delivery.id });
    expect(again.data!.redeliverWebhook).toEqual({ id: delivery.id, status: 'PENDING' });
    await receiver.waitFor(2);
    expect(receiver.deliveries[1]!.headers['webhook-id']).toBe(receiver.deliveries[0]!.headers['webhook-id']);
    const after = await eventually(async () => {
      const [row] = await deliveriesOf(squeeze, id);
      return row?.attemptCount === 2 && row.status === 'DELIVERED' ? row : undefined;
    });
    expect(after.attempts).toHaveLength(2);
    const unknown = await squeeze.graphql(`mutation { redeliverWebhook(deliveryId: "01a20f51-84b2-7000-ae6c-12e77ee957a8") { id } }`);
    expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});

describe('a restart between webhook retries', () => {
  it('keeps the schedule: the next instance delivers', async () => {
    const images = await startImageServer({});
    const receiver = await startWebhookReceiver((i) => (i === 0 ? 503 : 200));
    const database = await openTestDatabase('webhook-restart');
    const env = { WEBHOOK_RETRY_DELAYS: '0,2' };
    const first = await startSqueeze('webhook-restart-a', { env, allowHosts: [images.host, receiver.host], database });
    try {
      const id = await endedRequest(first, images, `${receiver.url}/hook`);
      await receiver.waitFor(1);
      await eventually(async () => (await deliveriesOf(first, id))[0]?.attemptCount === 1);
      await first.close();

      const second = await startSqueeze('webhook-restart-b', { env, allowHosts: [images.host, receiver.host], database });
      try {
        await receiver.waitFor(2);
        const [delivery] = await eventually(async () => {
          const rows = await deliveriesOf(second, id);
          return rows[0]?.status === 'DELIVERED' ? rows : undefined;
        });
        expect(delivery.attempts.map((a: any) => a.statusCode)).toEqual([503, 200]);
        expect(receiver.deliveries[0]!.headers['webhook-id']).toBe(receiver.deliveries[1]!.headers['webhook-id']);
      } finally {
        await second.close();
      }
    } finally {
      await first.close();
      await database.close();
      await images.close();
      await receiver.close();
    }
  });
});

describe('two instances ending requests at the same time', () => {
  it('deliver each request’s webhook exactly once', async () => {
    const photo = await photoJpeg(320, 240);
    const images = await startImageServer(Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`/${i}.jpg`, serveBytes(photo, 'image/jpeg')])));
    const receiver = await startWebhookReceiver();
    const database = await openTestDatabase('webhook-two');
    const allowHosts = [images.host, receiver.host];
    const a = await startSqueeze('webhook-two-a', { allowHosts, database });
    const b = await startSqueeze('webhook-two-b', { allowHosts, database });
    try {
      const csv = `S. No.,Product Name,Input Image Urls\n1,A,${images.url}/0.jpg,${images.url}/1.jpg\n2,B,${images.url}/2.jpg,${images.url}/3.jpg\n`;
      // Eight requests uploaded to either instance; both run workers, so each request's images are
      // finished by both and either may end it.
      const ids = await Promise.all(
        Array.from({ length: 8 }, async (_, i) => (await uploadCsv((i % 2 ? a : b).url, csv, { webhookUrl: `${receiver.url}/hook` })).body.data.uploadCsv.request.id as string),
      );
      await receiver.waitFor(8, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const delivered = receiver.deliveries.map((d) => JSON.parse(d.body).data.requestId as string);
      expect(delivered.sort()).toEqual([...ids].sort());
      expect(new Set(receiver.deliveries.map((d) => d.headers['webhook-id'])).size).toBe(8);
    } finally {
      await a.close();
      await b.close();
      await database.close();
      await images.close();
      await receiver.close();
    }
  });
});
