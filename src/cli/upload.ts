import { CONNECTION_HELP, CONNECTION_OPTIONS, HELP_OPTION, connect, expectPositionals, parseCommand } from './args.ts';
import type { SqueezeClient } from './client.ts';
import { ENDED_STATUSES, type Command, type Progress } from './command.ts';
import { CliError, EXIT, UsageError } from './errors.ts';
import { createProgressDisplay } from './progressDisplay.ts';

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  ...HELP_OPTION,
  webhook: { type: 'string' },
  quality: { type: 'string' },
  format: { type: 'string' },
  'max-width': { type: 'string' },
  'max-height': { type: 'string' },
  'no-start': { type: 'boolean' },
  wait: { type: 'boolean' },
} as const;

const FORMATS: Record<string, string> = { jpeg: 'JPEG', jpg: 'JPEG', webp: 'WEBP', avif: 'AVIF', png: 'PNG' };

const UPLOAD = `mutation Upload($file: Upload!, $webhookUrl: String, $options: CompressionOptions, $autoStart: Boolean) {
  uploadCsv(file: $file, webhookUrl: $webhookUrl, options: $options, autoStart: $autoStart) {
    __typename
    ... on UploadCsvSuccess { request { id status progress { total } products(first: 0) { totalCount } } }
    ... on CsvInvalidError { message problems { line column message } }
    ... on InvalidInputError { message code field }
  }
}`;

const FOLLOW = `subscription Follow($id: ID!) {
  requestProgress(requestId: $id) {
    status
    progress { total done failed cancelled pending }
    image { inputUrl status error { code message } }
    request { outputCsvUrl }
  }
}`;

const FAILURES = `query Failures($id: ID!, $after: String) {
  request(id: $id) {
    products(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { images { inputUrl status error { code message } } } }
    }
  }
}`;

/** Failed images named at the end of --wait, at most. */
const FAILURES_SHOWN = 10;

const FINAL_STATE = `query Final($id: ID!) { request(id: $id) { status progress { total done failed cancelled pending } outputCsvUrl } }`;

type UploadResult =
  | { __typename: 'UploadCsvSuccess'; request: { id: string; status: string; progress: { total: number }; products: { totalCount: number } } }
  | { __typename: 'CsvInvalidError'; message: string; problems: { line: number; column: string | null; message: string }[] }
  | { __typename: 'InvalidInputError'; message: string; code: string; field: string | null };

interface ProgressEvent {
  status: string;
  progress: Progress;
  image: { inputUrl: string; status: string; error: { code: string; message: string } | null } | null;
  request: { outputCsvUrl: string | null };
}

export const upload: Command = {
  name: 'upload',
  summary: 'upload a CSV of products and print the request id (--wait follows it to the end)',
  help: `Usage: squeeze upload <products.csv> [options]

Uploads a CSV of products (columns S. No., Product Name, Input Image Urls) and prints the new
request's id on stdout. Squeeze then compresses every image in the background.

Options:
  --webhook URL       POST a webhook to URL when the request ends
  --quality N         output quality, 1 to 100 (default 50)
  --format FORMAT     output format: jpeg, webp, avif or png (default jpeg)
  --max-width N       shrink wider images to N pixels, keeping the aspect ratio (never enlarges)
  --max-height N      shrink taller images to N pixels, keeping the aspect ratio (never enlarges)
  --no-start          store the request without starting it (start it with the processRequest mutation)
  --wait              follow the request to its end: a progress bar on stderr, then the output
                      CSV's URL on stdout; exits 0 when COMPLETED, 1 when FAILED or CANCELLED

${CONNECTION_HELP}

A CSV that breaks the rules is refused whole: every problem is printed as
"line L, column C: message" on stderr, and the exit code is 2.

Examples:
  squeeze upload products.csv
  squeeze upload products.csv --format webp --quality 70 --max-width 1600 --wait
  id=$(squeeze upload products.csv) && squeeze status "$id"`,

  async run(args) {
    const { values, positionals } = parseCommand('upload', args, OPTIONS);
    if (values.help) {
      process.stdout.write(`${upload.help}\n`);
      return EXIT.OK;
    }
    const [file] = expectPositionals('upload', positionals, ['products.csv']);
    if (values.wait && values['no-start']) {
      throw new UsageError('--wait cannot be used with --no-start: a request that is not started never ends', 'upload');
    }
    const options = compressionOptions(values);
    const client = connect('upload', values);

    const result = (
      await client.upload<{ uploadCsv: UploadResult }>(
        UPLOAD,
        {
          ...(values.webhook !== undefined ? { webhookUrl: values.webhook } : {}),
          ...(options ? { options } : {}),
          ...(values['no-start'] ? { autoStart: false } : {}),
        },
        'file',
        file!,
      )
    ).uploadCsv;

    if (result.__typename === 'CsvInvalidError') {
      throw new CliError(
        EXIT.BAD_INPUT,
        `${file} was refused: ${result.message}`,
        result.problems.map((p) => `line ${p.line}${p.column ? `, column ${p.column}` : ''}: ${p.message}`),
      );
    }
    if (result.__typename === 'InvalidInputError') {
      const flag = result.field ? flagOf(result.field) : undefined;
      throw new CliError(EXIT.BAD_INPUT, `${flag ? `${flag} was refused` : 'the upload was refused'}: ${result.message} (${result.code})`);
    }

    const { request } = result;
    process.stdout.write(`${request.id}\n`);
    const products = request.products.totalCount;
    process.stderr.write(
      `Uploaded ${products} ${products === 1 ? 'product' : 'products'} with ${request.progress.total} ${request.progress.total === 1 ? 'image' : 'images'} as request ${request.id} (${request.status}).\n`,
    );
    if (!values.wait) return EXIT.OK;
    return follow(client, request.id);
  },
};

/** Follows a request to its end over the subscription; prints the output CSV's URL on stdout. */
async function follow(client: SqueezeClient, id: string): Promise<number> {
  const display = createProgressDisplay();
  let last: { status: string; progress: Progress; outputCsvUrl: string | null } | undefined;
  const noted = new Set<string>();
  const subscription = client.subscribe<{ requestProgress: ProgressEvent }>(FOLLOW, { id }, ({ requestProgress: event }) => {
    if (event.image?.status === 'FAILED' && !noted.has(event.image.inputUrl)) {
      noted.add(event.image.inputUrl);
      display.note(describeFailure(event.image));
    }
    display.update(event.status, event.progress);
    last = { status: event.status, progress: event.progress, outputCsvUrl: event.request.outputCsvUrl };
  });

  const interrupted = () => {
    display.finish();
    process.stderr.write(`Stopped waiting; request ${id} carries on. Follow it with: squeeze status ${id}\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  try {
    await subscription.done;
  } finally {
    process.off('SIGINT', interrupted);
    display.finish();
  }

  // The stream completes after the state that ends the request; should it stop early, ask once.
  if (!last || !ENDED_STATUSES.has(last.status)) {
    const { request } = await client.query<{ request: { status: string; progress: Progress; outputCsvUrl: string | null } | null }>(FINAL_STATE, { id });
    if (!request) throw new CliError(EXIT.NOT_FOUND, `request ${id} is no longer on ${client.server}`);
    last = request;
    if (!ENDED_STATUSES.has(request.status)) {
      throw new CliError(EXIT.SERVER, `the progress stream stopped before request ${id} ended (it is ${request.status}); follow it with: squeeze status ${id}`);
    }
  }

  if (last.outputCsvUrl) process.stdout.write(`${last.outputCsvUrl}\n`);
  if (last.status === 'COMPLETED') return EXIT.OK;
  const { failed, cancelled, total } = last.progress;
  // Best effort: naming the failures must not change the outcome.
  if (failed > noted.size) await listFailures(client, id, noted, failed).catch(() => undefined);
  const why = last.status === 'FAILED' ? `${failed} of ${total} images failed` : `${cancelled} of ${total} images were cancelled`;
  process.stderr.write(`Request ${id} ended ${last.status}: ${why}. The output CSV lists every row; an image without output has an empty entry.\n`);
  return EXIT.ENDED_BADLY;
}

function describeFailure(image: { inputUrl: string; error: { code: string; message: string } | null }): string {
  return `image failed: ${image.inputUrl}${image.error ? ` (${image.error.code}: ${image.error.message})` : ''}`;
}

/** Names failed images the progress events did not (events are coalesced), a few pages at most. */
async function listFailures(client: SqueezeClient, id: string, noted: Set<string>, failed: number): Promise<void> {
  type Image = { inputUrl: string; status: string; error: { code: string; message: string } | null };
  type Page = { request: { products: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: { images: Image[] } }[] } } | null };
  const shown: string[] = [];
  let after: string | null = null;
  for (let page = 0; page < 10 && noted.size < Math.min(failed, FAILURES_SHOWN); page++) {
    const answer: Page = await client.query<Page>(FAILURES, { id, after });
    const products = answer.request?.products;
    if (!products) break;
    for (const { node } of products.edges) {
      for (const image of node.images) {
        if (image.status === 'FAILED' && !noted.has(image.inputUrl) && noted.size < FAILURES_SHOWN) {
          noted.add(image.inputUrl);
          shown.push(describeFailure(image));
        }
      }
    }
    if (!products.pageInfo.hasNextPage) break;
    after = products.pageInfo.endCursor;
  }
  for (const line of shown) process.stderr.write(`${line}\n`);
  if (failed > noted.size) process.stderr.write(`… and ${failed - noted.size} more failed images\n`);
}

/** The CompressionOptions input from the flags, or undefined when none was given (server defaults). */
function compressionOptions(values: { quality?: string; format?: string; 'max-width'?: string; 'max-height'?: string }) {
  const options: Record<string, unknown> = {};
  if (values.quality !== undefined) options.quality = positiveInteger('--quality', values.quality);
  if (values['max-width'] !== undefined) options.maxWidth = positiveInteger('--max-width', values['max-width']);
  if (values['max-height'] !== undefined) options.maxHeight = positiveInteger('--max-height', values['max-height']);
  if (values.format !== undefined) {
    const format = FORMATS[values.format.trim().toLowerCase()];
    if (!format) throw new CliError(EXIT.BAD_INPUT, `--format must be jpeg, webp, avif or png, got "${values.format}"`);
    options.format = format;
  }
  return Object.keys(options).length ? options : undefined;
}

/** A whole number the GraphQL Int can carry; the server checks the ranges (quality 1–100 and so on). */
function positiveInteger(flag: string, raw: string): number {
  const value = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new CliError(EXIT.BAD_INPUT, `${flag} must be a whole number of 1 or more, got "${raw}"`);
  }
  return value;
}

/** The flag behind an InvalidInputError field (options.quality → --quality). */
function flagOf(field: string): string | undefined {
  const flags: Record<string, string> = {
    webhookUrl: '--webhook',
    'options.quality': '--quality',
    'options.format': '--format',
    'options.maxWidth': '--max-width',
    'options.maxHeight': '--max-height',
    file: 'the CSV file',
  };
  return flags[field];
}
