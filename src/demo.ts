/**
 * `npm run demo`: the whole story offline. Serves the bundled sample images on loopback, starts Squeeze
 * on its own data directory, uploads a sample CSV over real multipart HTTP, follows the subscription
 * over WebSocket, then prints the output CSV and where the files are.
 */
import { readFile, readdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'graphql-ws';
import pino from 'pino';
import WebSocket from 'ws';
import { buildApp } from './app.ts';
import { loadConfig } from './config.ts';
import { createAddressGuard } from './net/addressGuard.ts';

const samplesDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/samples');
const TYPES: Record<string, string> = { '.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' };

const samples = new Map<string, Buffer>();
for (const name of (await readdir(samplesDir)).sort()) samples.set(name, await readFile(path.join(samplesDir, name)));

const imageServer = createServer((req, res) => {
  const name = decodeURIComponent((req.url ?? '/').slice(1));
  const bytes = samples.get(name);
  if (!bytes) {
    res.writeHead(404).end('not found');
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[path.extname(name)] ?? 'application/octet-stream', 'content-length': bytes.length });
  res.end(bytes);
});
await new Promise<void>((resolve) => imageServer.listen(0, '127.0.0.1', resolve));
const imageHost = `127.0.0.1:${(imageServer.address() as AddressInfo).port}`;

const config = loadConfig({ ...process.env, DATA_DIR: process.env.DATA_DIR ?? './data/demo', PORT: process.env.PORT ?? '4001', LOG_LEVEL: 'warn' });
// The sample server is on loopback, which the address guard refuses by default; allow exactly that host.
const guard = createAddressGuard({ allowPrivateNetworks: config.allowPrivateNetworks, allowHosts: [imageHost] });
const app = await buildApp({ config, guard, logger: pino({ level: 'warn' }) });
const baseUrl = await app.start();
console.log(`Squeeze is running at ${config.publicUrl} (data in ${config.dataDir})`);
console.log(`Sample images are served at http://${imageHost}/\n`);

const names = [...samples.keys()];
const others = names.filter((n) => !n.endsWith('.jpg'));
const csv = [
  'S. No.,Product Name,Input Image Urls',
  `1,Meadow poster,"${names.filter((n) => n.endsWith('.jpg')).map((n) => `http://${imageHost}/${n}`).join(',')}"`,
  ...others.map((n, i) => `${i + 2},${path.basename(n, path.extname(n))},http://${imageHost}/${n}`),
  `${others.length + 2},Missing picture,http://${imageHost}/missing.jpg`,
].join('\n');
console.log('Uploading this CSV:\n' + csv + '\n');

const form = new FormData();
form.set(
  'operations',
  JSON.stringify({
    query: `mutation($file: Upload!) { uploadCsv(file: $file) { __typename ... on UploadCsvSuccess { request { id } } ... on Error { code message } } }`,
    variables: { file: null },
  }),
);
form.set('map', JSON.stringify({ 0: ['variables.file'] }));
form.set('0', new Blob([csv], { type: 'text/csv' }), 'demo.csv');
const answer = (await (await fetch(`${baseUrl}/graphql`, { method: 'POST', body: form, headers: { 'x-graphql-yoga-csrf': 'demo' } })).json()) as {
  data: { uploadCsv: { __typename: string; request?: { id: string }; message?: string } };
};
const upload = answer.data.uploadCsv;
if (!upload.request) throw new Error(`Upload refused: ${upload.message}`);
console.log(`Request ${upload.request.id} accepted. Progress:`);

const client = createClient({ url: `${baseUrl.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket });
let outputCsvUrl: string | null = null;
await new Promise<void>((resolve, reject) => {
  client.subscribe<{
    requestProgress: {
      status: string;
      progress: { total: number; done: number; failed: number; pending: number };
      image: { inputUrl: string; status: string; outputUrl: string | null; inputBytes: number | null; outputBytes: number | null; error: { code: string; message: string } | null } | null;
      request: { outputCsvUrl: string | null };
    };
  }>(
    {
      query: `subscription($id: ID!) { requestProgress(requestId: $id) {
        status progress { total done failed pending }
        image { inputUrl status outputUrl inputBytes outputBytes error { code message } }
        request { outputCsvUrl } } }`,
      variables: { id: upload.request!.id },
    },
    {
      next: ({ data }) => {
        const event = data!.requestProgress;
        const { total, done, failed } = event.progress;
        const image = event.image;
        const detail = !image
          ? ''
          : image.status === 'DONE'
            ? `  ${path.basename(image.inputUrl)}: ${image.inputBytes} → ${image.outputBytes} bytes`
            : `  ${path.basename(image.inputUrl)}: ${image.status} ${image.error ? `(${image.error.code}: ${image.error.message})` : ''}`;
        console.log(`  [${event.status}] ${done + failed}/${total} ended (${done} done, ${failed} failed)${detail}`);
        outputCsvUrl = event.request.outputCsvUrl;
      },
      error: reject,
      complete: resolve,
    },
  );
});
await client.dispose();

if (outputCsvUrl) {
  console.log(`\nOutput CSV (${outputCsvUrl}):\n`);
  console.log(await (await fetch(outputCsvUrl)).text());
}
console.log(`Compressed files are in ${path.join(config.dataDir, 'files', 'requests', upload.request.id)}`);
console.log(`and served at ${config.publicUrl}/files/requests/${upload.request.id}/…`);

await app.stop();
imageServer.close();
