import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { photoJpeg, serveBytes, startImageServer, startSqueeze, type LoopbackServer, type Squeeze } from './support/harness.ts';

/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against a real Squeeze
 * and a loopback image server. Chromium talks to loopback only (the flags below, and every request to
 * another host is aborted and counted). Run `npm run build:dashboard` first when src/dashboard changed.
 */

const CHROMIUM = '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST_INDEX = path.join(ROOT, 'src/dashboard/dist/index.html');
const SCREENSHOT = path.join(ROOT, 'test-results/dashboard.png');
/** The README's screenshot: committed, so rewritten only when asked (UPDATE_SCREENSHOT=1) or missing. */
const README_SCREENSHOT = path.join(ROOT, 'src/dashboard/screenshot.png');

if (!HAS_CHROMIUM) console.warn(`dashboard tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

const HEADER = 'S. No.,Product Name,Input Image Urls';
const OUTPUT_HEADER = 'S. No.,Product Name,Input Image Urls,Output Image Urls';

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A context whose requests may go to loopback only; anything else is aborted and remembered. */
async function loopbackContext(browser: Browser, outside: string[]): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1, acceptDownloads: true, colorScheme: 'light', locale: 'en-US' });
  await context.route('**/*', (route) => {
    const { hostname } = new URL(route.request().url());
    if (hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]') return route.continue();
    outside.push(route.request().url());
    return route.abort();
  });
  return context;
}

/**
 * A product-like photo for the screenshot: a soft studio backdrop and an object in one hue, textured
 * with photoJpeg's grain so it compresses like a photograph.
 */
async function productPhoto(width: number, height: number, hue: number, shape: 'mug' | 'lamp' | 'book' | 'plant'): Promise<Buffer> {
  const objects = {
    mug: `<rect x="34%" y="30%" width="30%" height="44%" rx="4%" fill="hsl(${hue} 55% 48%)"/><path d="M ${width * 0.64} ${height * 0.4} a ${width * 0.07} ${height * 0.1} 0 1 1 0 ${height * 0.2}" fill="none" stroke="hsl(${hue} 55% 40%)" stroke-width="${width * 0.03}"/>`,
    lamp: `<polygon points="${width * 0.36},${height * 0.46} ${width * 0.64},${height * 0.46} ${width * 0.57},${height * 0.22} ${width * 0.43},${height * 0.22}" fill="hsl(${hue} 60% 52%)"/><rect x="49%" y="46%" width="2%" height="28%" fill="hsl(${hue} 30% 30%)"/><ellipse cx="50%" cy="76%" rx="12%" ry="3%" fill="hsl(${hue} 30% 30%)"/>`,
    book: `<rect x="30%" y="24%" width="40%" height="54%" rx="1.5%" fill="hsl(${hue} 50% 42%)"/><rect x="33%" y="24%" width="2%" height="54%" fill="hsl(${hue} 50% 32%)"/><rect x="42%" y="36%" width="20%" height="4%" fill="hsl(${hue} 40% 85%)"/>`,
    plant: `<ellipse cx="44%" cy="38%" rx="8%" ry="14%" fill="hsl(${hue} 50% 40%)"/><ellipse cx="57%" cy="34%" rx="7%" ry="15%" fill="hsl(${hue} 55% 46%)"/><path d="M ${width * 0.38} ${height * 0.52} h ${width * 0.24} l -${width * 0.03} ${height * 0.26} h -${width * 0.18} z" fill="hsl(24 45% 50%)"/>`,
  };
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><radialGradient id="g" cx="50%" cy="40%" r="75%"><stop offset="0" stop-color="hsl(${hue} 35% 94%)"/><stop offset="1" stop-color="hsl(${hue} 25% 72%)"/></radialGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/>
    <ellipse cx="50%" cy="80%" rx="26%" ry="4%" fill="rgba(0,0,0,0.14)"/>
    ${objects[shape]}
  </svg>`;
  const grain = await sharp(await photoJpeg(width, height)).removeAlpha().toBuffer();
  return sharp(Buffer.from(svg))
    .composite([{ input: grain, blend: 'soft-light' }])
    .jpeg({ quality: 92 })
    .toBuffer();
}

/** A gate for an image route: requests wait until `open()`. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

function held(opened: Promise<void>, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, res: ServerResponse) => void opened.then(() => handler(req, res));
}

/** Splits an RFC 4180 line (quoted fields with doubled quotes). */
function csvFields(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (quoted) {
      if (char === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      fields.push(field);
      field = '';
    } else field += char;
  }
  fields.push(field);
  return fields;
}

async function chooseCsv(page: Page, csv: string, name = 'products.csv') {
  await page.getByTestId('file-input').setInputFiles({ name, mimeType: 'text/csv', buffer: Buffer.from(csv, 'utf8') });
  await expect.poll(() => page.getByTestId('chosen-file').textContent()).toContain(name);
}

/** Uploads through the page; resolves to the new request's id. */
async function uploadThroughPage(page: Page, csv: string, name?: string): Promise<string> {
  await chooseCsv(page, csv, name);
  await page.getByTestId('upload-button').click();
  const link = page.getByTestId('uploaded-request-link');
  await link.waitFor({ timeout: 15_000 });
  const href = await link.getAttribute('href');
  return decodeURIComponent(href!.replace('/requests/', ''));
}

function progressOf(page: Page, requestId: string) {
  return () => page.locator(`[data-testid="request-row"][data-request-id="${requestId}"] [data-testid="progress-bar"]`).getAttribute('aria-valuenow');
}

/** True once every image matched has loaded with real pixels. */
async function allLoaded(page: Page, testid: string): Promise<boolean> {
  return page.evaluate((id) => {
    const images = [...document.querySelectorAll<HTMLImageElement>(`img[data-testid="${id}"]`)];
    return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0);
  }, testid);
}

async function downloadText(page: Page, testid: string): Promise<{ name: string; text: string }> {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), page.getByTestId(testid).click()]);
  const file = await download.path();
  return { name: download.suggestedFilename(), text: await readFile(file, 'utf8') };
}

describe.skipIf(!HAS_CHROMIUM)(`the dashboard in Chromium (skipped without ${CHROMIUM})`, () => {
  let images: LoopbackServer;
  let squeeze: Squeeze;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const outside: string[] = [];
  const lastImage = gate();
  const slowImage = gate();
  let flakyFixed = false;
  let completedId: string;

  beforeAll(async () => {
    if (!existsSync(DIST_INDEX)) throw new Error('src/dashboard/dist is missing: run `npm run build:dashboard`');
    const [large, medium, wide, small] = await Promise.all([
      productPhoto(1200, 900, 200, 'mug'),
      productPhoto(960, 720, 14, 'mug'),
      productPhoto(1280, 720, 42, 'lamp'),
      productPhoto(640, 640, 150, 'book'),
    ]);
    const jpeg = (bytes: Buffer) => serveBytes(bytes, 'image/jpeg');
    images = await startImageServer({
      '/mug-front.jpg': jpeg(large),
      '/mug-side.jpg': jpeg(medium),
      '/lamp.jpg': jpeg(wide),
      // Held until the test has seen the progress bar stop short of 100 %.
      '/notebook.jpg': held(lastImage.opened, jpeg(small)),
      '/flaky.jpg': (req, res) => {
        if (flakyFixed) return jpeg(medium)(req, res);
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not yet');
      },
      '/slow.jpg': held(slowImage.opened, jpeg(small)),
    });
    squeeze = await startSqueeze('dashboard', { allowHosts: [images.host] });
    browser = await launch();
    context = await loopbackContext(browser, outside);
    page = await context.newPage();
  });

  afterAll(async () => {
    lastImage.open();
    slowImage.open();
    await context?.close();
    await browser?.close();
    await squeeze?.close();
    await images?.close();
  });

  it('serves the page and its assets without an API key, with fitting headers', async () => {
    const index = await fetch(`${squeeze.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await index.text();
    const script = /src="(\/assets\/index-[\w-]+\.js)"/.exec(html)?.[1];
    const style = /href="(\/assets\/index-[\w-]+\.css)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    // No external resource of any kind.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);

    const js = await fetch(`${squeeze.url}${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${squeeze.url}${style}`)).headers.get('content-type')).toBe('text/css; charset=utf-8');

    // Client-side routes get the page; the ETag spares a second download.
    const deep = await fetch(`${squeeze.url}/requests/0197e0f1-0000-7000-8000-000000000000`);
    expect(deep.status).toBe(200);
    expect(await deep.text()).toBe(html);
    const again = await fetch(`${squeeze.url}/`, { headers: { 'if-none-match': index.headers.get('etag')! } });
    expect(again.status).toBe(304);

    for (const missing of ['/assets/nothing.js', '/assets/..%2Fserve.ts', '/assets/%2e%2e/index.html']) expect((await fetch(`${squeeze.url}${missing}`)).status).toBe(404);
    expect((await fetch(`${squeeze.url}/`, { method: 'POST' })).status).toBe(404);
  });

  it('uploads a CSV dropped on the page and moves its progress bar live to 100 %', async () => {
    await page.goto(`${squeeze.url}/`);
    await expect.poll(() => page.getByTestId('empty-list').isVisible()).toBe(true);

    const csv = [
      HEADER,
      `1,Stoneware mug,"${images.url}/mug-front.jpg,${images.url}/mug-side.jpg"`,
      `2,"Desk lamp, brass",${images.url}/lamp.jpg`,
      `3,Dot-grid notebook,${images.url}/notebook.jpg`,
    ].join('\r\n');
    completedId = await uploadThroughPage(page, csv, 'spring-catalogue.csv');
    const row = page.locator(`[data-testid="request-row"][data-request-id="${completedId}"]`);
    await row.waitFor();

    // Three of four images end while the fourth is held: the bar shows it without a reload.
    await expect.poll(progressOf(page, completedId), { timeout: 30_000 }).toBe('75');
    expect(await row.getByTestId('progress-text').textContent()).toContain('3 / 4 images');
    expect(await row.getByTestId('status').textContent()).toBe('Processing');
    lastImage.open();
    await expect.poll(progressOf(page, completedId), { timeout: 30_000 }).toBe('100');
    await expect.poll(() => row.getByTestId('status').textContent(), { timeout: 10_000 }).toBe('Completed');
    await expect.poll(() => row.getByTestId('row-saved').textContent(), { timeout: 10_000 }).toMatch(/^\d+ % smaller$/);
    expect(await row.getByTestId('row-saved').getAttribute('title')).toMatch(/KB → .*KB/);
    await row.getByTestId('row-output-csv').waitFor();
  });

  it('shows every product with its images before and after, their sizes, and downloads the output CSV', async () => {
    await page.locator(`[data-request-id="${completedId}"] [data-testid="request-link"]`).click();
    await page.waitForURL(`**/requests/${completedId}`);
    await expect.poll(() => page.getByTestId('request-status').textContent()).toBe('Completed');
    expect(await page.getByTestId('product').count()).toBe(3);
    expect(await page.getByTestId('image').count()).toBe(4);
    expect(await page.getByTestId('product').nth(1).textContent()).toContain('Desk lamp, brass');

    await expect.poll(() => allLoaded(page, 'thumb-before'), { timeout: 15_000 }).toBe(true);
    await expect.poll(() => allLoaded(page, 'thumb-after'), { timeout: 15_000 }).toBe(true);
    const afterSources = await page.locator('img[data-testid="thumb-after"]').evaluateAll((list) => list.map((image) => (image as HTMLImageElement).src));
    expect(afterSources).toHaveLength(4);
    for (const source of afterSources) expect(source).toMatch(/\/files\/.+\.jpg$/);

    for (const text of await page.getByTestId('image-bytes').allTextContents()) expect(text).toMatch(/^[\d.,]+ (KB|MB) → [\d.,]+ (B|KB|MB)$/);
    for (const text of await page.getByTestId('image-saved').allTextContents()) expect(text).toMatch(/^\d+ % smaller$/);
    expect(await page.getByTestId('total-bytes').textContent()).toMatch(/→/);
    expect(await page.getByTestId('progress-text').textContent()).toContain('4 / 4 images · 100 %');
    expect(await page.getByTestId('cancel-button').count()).toBe(0);
    expect(await page.getByTestId('retry-button').count()).toBe(0);

    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
    if (process.env.UPDATE_SCREENSHOT === '1' || !existsSync(README_SCREENSHOT)) await copyFile(SCREENSHOT, README_SCREENSHOT);

    const { text } = await downloadText(page, 'output-csv-link');
    const lines = text.trim().split(/\r?\n/);
    expect(lines[0]).toBe(OUTPUT_HEADER);
    expect(lines).toHaveLength(4);
    const rows = lines.slice(1).map(csvFields);
    expect(rows.map((row) => row.slice(0, 2))).toEqual([
      ['1', 'Stoneware mug'],
      ['2', 'Desk lamp, brass'],
      ['3', 'Dot-grid notebook'],
    ]);
    expect(rows[0]![2]).toBe(`${images.url}/mug-front.jpg,${images.url}/mug-side.jpg`);
    const outputs = rows.map((row) => row[3]!.split(','));
    expect(outputs.map((list) => list.length)).toEqual([2, 1, 1]);
    for (const url of outputs.flat()) expect(url).toMatch(/^http:\/\/.+\/files\/.+\.jpg$/);
  });

  it('lists a refused CSV problem by problem, and names a refused webhook URL', async () => {
    await page.getByTestId('back-link').click();
    await page.waitForURL(`${squeeze.url}/`);
    await chooseCsv(page, `${HEADER}\n1,,${images.url}/a.jpg\nx,Plate,not-a-url\n`, 'broken.csv');
    await page.getByTestId('upload-button').click();
    await page.getByTestId('csv-problems').waitFor();
    const problems = await page.getByTestId('csv-problem').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent)));
    expect(problems.length).toBeGreaterThanOrEqual(3);
    expect(problems.map((problem) => problem[0])).toEqual(expect.arrayContaining(['2', '3']));
    expect(problems.map((problem) => problem[1])).toEqual(expect.arrayContaining(['Product Name', 'Input Image Urls']));

    await chooseCsv(page, `${HEADER}\n1,Plate,${images.url}/mug-front.jpg\n`, 'plates.csv');
    await page.getByTestId('webhook-url').fill('http://10.0.0.1/hook');
    await page.getByTestId('upload-button').click();
    const error = page.getByTestId('input-error');
    await error.waitFor();
    expect(await error.getAttribute('data-field')).toBe('webhookUrl');
    expect(await error.getAttribute('data-code')).toBe('BLOCKED_ADDRESS');
    expect(await error.textContent()).toContain('Webhook URL:');
    expect(await page.getByTestId('webhook-url').getAttribute('aria-invalid')).toBe('true');
    await page.getByTestId('webhook-url').fill('');
  });

  it('shows per-image errors and retries the failed images', async () => {
    const id = await uploadThroughPage(page, `${HEADER}\n7,Linen napkin,${images.url}/flaky.jpg,${images.url}/mug-side.jpg\n`, 'napkins.csv');
    await expect.poll(progressOf(page, id), { timeout: 30_000 }).toBe('100');
    await page.getByTestId('uploaded-request-link').click();
    await page.waitForURL(`**/requests/${id}`);
    await expect.poll(() => page.getByTestId('request-status').textContent(), { timeout: 10_000 }).toBe('Failed');
    const error = page.getByTestId('image-error').first();
    expect(await error.getAttribute('data-code')).toBe('HTTP_ERROR');
    expect(await error.textContent()).toContain('404');
    await page.getByTestId('errors-csv-link').waitFor();

    flakyFixed = true;
    await page.getByTestId('retry-button').click();
    await expect.poll(() => page.getByTestId('request-status').textContent(), { timeout: 30_000 }).toBe('Completed');
    await expect.poll(() => page.locator('[data-testid="image-error"]:visible').count(), { timeout: 10_000 }).toBe(0);
    await expect.poll(() => allLoaded(page, 'thumb-after'), { timeout: 15_000 }).toBe(true);
    expect(await page.getByTestId('retry-button').count()).toBe(0);
  });

  it('cancels a running request', async () => {
    await page.goto(`${squeeze.url}/`);
    const id = await uploadThroughPage(page, `${HEADER}\n9,Slow stool,${images.url}/slow.jpg\n`, 'slow.csv');
    await page.getByTestId('uploaded-request-link').click();
    await page.waitForURL(`**/requests/${id}`);
    await page.getByTestId('cancel-button').click();
    await expect.poll(() => page.getByTestId('request-status').textContent(), { timeout: 10_000 }).toBe('Cancelled');
    expect(await page.getByTestId('cancel-button').count()).toBe(0);
    slowImage.open();
    await page.getByTestId('output-csv-link').waitFor();

    // The list of everything this suite did: completed, retried, cancelled.
    await page.getByTestId('back-link').click();
    await expect.poll(() => page.getByTestId('request-row').count()).toBe(3);
    await page.screenshot({ path: SCREENSHOT.replace('.png', '-home.png') });
    expect(outside).toEqual([]);
  });
});

describe.skipIf(!HAS_CHROMIUM)(`the dashboard with API_KEYS set (skipped without ${CHROMIUM})`, () => {
  const KEY = 'k_dash_51c0e2';
  let images: LoopbackServer;
  let squeeze: Squeeze;
  let browser: Browser;
  let context: BrowserContext;
  const outside: string[] = [];

  beforeAll(async () => {
    const photo = await photoJpeg(800, 600);
    images = await startImageServer({ '/chair.jpg': serveBytes(photo, 'image/jpeg'), '/table.jpg': serveBytes(photo, 'image/jpeg') });
    squeeze = await startSqueeze('dashboard-keys', { env: { API_KEYS: KEY }, allowHosts: [images.host] });
    browser = await launch();
    context = await loopbackContext(browser, outside);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await squeeze?.close();
    await images?.close();
  });

  it('asks for the key, refuses a wrong one, keeps the right one, and then works throughout', async () => {
    // The page loads without a key; its first call is refused and the key form opens.
    const page = await context.newPage();
    await page.goto(`${squeeze.url}/`);
    await page.getByTestId('key-form').waitFor();
    expect(await page.getByTestId('key-error').isVisible()).toBe(false);

    await page.getByTestId('key-input').fill('wrong-key');
    await page.getByTestId('key-submit').click();
    await page.getByTestId('key-error').waitFor();
    expect(await page.getByTestId('key-form').isVisible()).toBe(true);

    await page.getByTestId('key-input').fill(KEY);
    await page.getByTestId('key-submit').click();
    await page.getByTestId('empty-list').waitFor();
    expect(await page.getByTestId('key-form').isVisible()).toBe(false);
    expect(await page.evaluate(() => localStorage.getItem('squeeze.apiKey'))).toBe(KEY);

    // Upload (HTTP, with the key), live progress (WebSocket, key in connection_init) to the end.
    const id = await uploadThroughPage(page, `${HEADER}\n1,Oak chair,${images.url}/chair.jpg\n2,Oak table,${images.url}/table.jpg\n`);
    await expect.poll(progressOf(page, id), { timeout: 30_000 }).toBe('100');
    await expect.poll(() => page.locator(`[data-request-id="${id}"] [data-testid="status"]`).textContent(), { timeout: 10_000 }).toBe('Completed');

    // A reload keeps the key: no form, the list is there.
    await page.reload();
    await page.locator(`[data-request-id="${id}"]`).waitFor();
    expect(await page.getByTestId('key-form').isVisible()).toBe(false);

    // The outputs sit behind the key too: the page fetches them with it.
    await page.locator(`[data-request-id="${id}"] [data-testid="request-link"]`).click();
    await page.waitForURL(`**/requests/${id}`);
    await expect.poll(() => page.getByTestId('request-status').textContent()).toBe('Completed');
    await expect.poll(() => allLoaded(page, 'thumb-after'), { timeout: 15_000 }).toBe(true);
    expect((await fetch(`${squeeze.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' })).status).toBe(401);
    const { text } = await downloadText(page, 'output-csv-link');
    expect(text.split(/\r?\n/)[0]).toBe(OUTPUT_HEADER);
    expect(text.trim().split(/\r?\n/)).toHaveLength(3);

    // "Forget key" removes it; the next call asks again.
    await page.getByTestId('forget-key').click();
    await page.getByTestId('key-form').waitFor();
    expect(await page.evaluate(() => localStorage.getItem('squeeze.apiKey'))).toBeNull();
    expect(outside).toEqual([]);
  });
});

// The README's screenshot stays small enough to commit.
describe.skipIf(!existsSync(README_SCREENSHOT))('the README screenshot', () => {
  it('is under 200 KB', async () => {
    expect((await stat(README_SCREENSHOT)).size).toBeLessThan(200 * 1024);
  });
});
