import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSqueeze, uploadCsv, type Squeeze } from './support/harness.ts';

/**
 * Plain JSON queries are answered without Yoga's fetch layer (src/graphqlQueryPath.ts); everything
 * else still goes through Yoga. A client must not be able to tell the two apart.
 */
describe('GraphQL over a JSON POST', () => {
  let squeeze: Squeeze;
  let requestId: string;

  beforeAll(async () => {
    squeeze = await startSqueeze('query-path');
    const csv = 'S. No.,Product Name,Input Image Urls\n1,Mug,"https://shop.example/mug-1.jpg,https://shop.example/mug-2.jpg"\n';
    const { body } = await uploadCsv(squeeze.url, csv, { autoStart: false });
    requestId = body.data.uploadCsv.request.id;
  });
  afterAll(() => squeeze?.close());

  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${squeeze.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  /** How many JSON calls each side answered, from /metrics. */
  const answered = async () => {
    const text = await (await fetch(`${squeeze.url}/metrics`)).text();
    const count = (by: string) => Number(new RegExp(`squeeze_graphql_json_calls_total\\{answered_by="${by}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    return { direct: count('direct'), yoga: count('yoga') };
  };

  const STATUS = 'query Status($id: ID!) { request(id: $id) { status progress { total done failed pending } products(first: 1) { edges { node { productName inputImageUrls } } } } }';

  it('answers a status poll directly, with the same body and headers as Yoga gives', async () => {
    const before = await answered();
    const direct = await post(JSON.stringify({ query: STATUS, variables: { id: requestId }, operationName: 'Status' }), { accept: 'application/json' });
    // An Origin header sends the call through Yoga (its CORS handling), which makes the reference answer.
    const viaYoga = await post(JSON.stringify({ query: STATUS, variables: { id: requestId } }), { accept: 'application/json', origin: squeeze.url });
    expect(await answered()).toEqual({ direct: before.direct + 1, yoga: before.yoga });

    expect(direct.status).toBe(200);
    expect(direct.headers.get('content-type')).toBe(viaYoga.headers.get('content-type'));
    const body = await direct.json();
    expect(body).toEqual(await viaYoga.json());
    expect(body.data.request).toEqual({
      status: 'PENDING',
      progress: { total: 2, done: 0, failed: 0, pending: 2 },
      products: { edges: [{ node: { productName: 'Mug', inputImageUrls: ['https://shop.example/mug-1.jpg', 'https://shop.example/mug-2.jpg'] } }] },
    });
    // Without an Accept header (fetch sends */*), the answer is JSON too; an unknown id is null, not an error.
    const unknown = await post(JSON.stringify({ query: STATUS, variables: { id: '01890000-0000-7000-8000-000000000000' } }));
    expect(await unknown.json()).toEqual({ data: { request: null } });
  });

  it('leaves every error to Yoga, which answers as it does for any call: bad JSON, bad parameters, bad queries, the limits', async () => {
    const deepQuery = `{ requests { edges { node { ${'products { edges { node { images { '.repeat(3)} id } } } } } } } } } } } } } } } }`;
    const bodies = [
      '{"query": ',
      'null',
      '"a string"',
      '[{"query": "{ requests { totalCount } }"}]',
      JSON.stringify({ variables: {} }),
      JSON.stringify({ query: '{ requests { totalCount } }', surprise: true }),
      JSON.stringify({ query: '{ requests { nonsense } }' }),
      JSON.stringify({ query: '{ requests { ' }),
      JSON.stringify({ query: STATUS, variables: { id: true } }),
      JSON.stringify({ query: deepQuery }),
      // Page sizes in variables: graphql-armor's cost limit cannot see them, the page budget does.
      JSON.stringify({ query: 'query($n: Int) { requests(first: 1000) { edges { node { products(first: $n) { totalCount } } } } }', variables: { n: 1000 } }),
    ];
    const before = await answered();
    const answers = [];
    for (const body of bodies) {
      const response = await post(body);
      // The reference: the same call sent straight to Yoga (an Origin header takes it there).
      const reference = await post(body, { origin: squeeze.url });
      const answer = { status: response.status, body: await response.json() };
      expect(answer).toEqual({ status: reference.status, body: await reference.json() });
      expect(answer.body.errors?.length ?? 0, body).toBeGreaterThan(0);
      answers.push(answer);
    }
    expect(answers[0]!.body.errors[0].message).toBe('POST body sent invalid JSON.');
    expect(answers[1]!.body.errors[0].message).toBe('POST body is expected to be object but received null');
    expect(answers[6]!.body.errors[0].message).toMatch(/Cannot query field "nonsense"/);
    expect(answers[9]!.body.errors[0].message).toMatch(/depth/i);
    expect(answers[10]!.body.errors[0]).toMatchObject({ message: expect.stringMatching(/connection nodes, over the limit/), extensions: { code: 'BAD_REQUEST' } });

    // A body sent without a length is still cut at the limit.
    const long = new TextEncoder().encode(JSON.stringify({ query: STATUS, variables: { id: 'x'.repeat(1024 * 1024) } }));
    const tooLong = await fetch(`${squeeze.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(long);
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(tooLong.status).toBe(413);

    expect(await answered()).toEqual({ direct: before.direct, yoga: before.yoga + bodies.length });
  });

  it('leaves mutations to Yoga', async () => {
    const before = await answered();
    const response = await post(
      JSON.stringify({ query: 'mutation($id: ID!) { processRequest(id: $id) { status } }', variables: { id: '01890000-0000-7000-8000-000000000000' } }),
    );
    const body = await response.json();
    expect(JSON.stringify(body)).toMatch(/NOT_FOUND|not found/i);
    const counts = await answered();
    expect(counts).toEqual({ direct: before.direct, yoga: before.yoga + 1 });
  });
});
