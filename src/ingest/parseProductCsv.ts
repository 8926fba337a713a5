import { CsvError, Parser } from 'csv-parse';

export interface ParsedProduct {
  line: number;
  serialNumber: number;
  productName: string;
  imageUrls: string[];
}

export interface CsvProblem {
  line: number;
  column: string | null;
  message: string;
}

export interface CsvLimits {
  maxBytes: number;
  maxRows: number;
  maxUrlsPerRow: number;
}

export interface ParseOutcome {
  /** Empty means the file is valid. */
  problems: CsvProblem[];
  /** Product rows seen. */
  rows: number;
  /** Image URLs seen in valid rows. */
  urls: number;
  /** True when the input passed `limits.maxBytes` (reading stopped there). */
  tooLarge: boolean;
}

export const MAX_REPORTED_PROBLEMS = 1000;
/** Serial numbers are GraphQL `Int`s (32-bit signed), so the largest is 2 147 483 647. */
export const MAX_SERIAL_NUMBER = 2_147_483_647;

/**
 * Products per batch handed to `onBatch`. Ingest of 100 000 rows × 3 URLs on Postgres, server peak RSS
 * (3 runs each): 2000 → 172–180 MB, 1000 → 164–172 MB, 500 → 158–162 MB but 5–10 % more Postgres CPU.
 */
export const DEFAULT_BATCH_SIZE = 1000;
/** Source chunks are fed to the parser in slices of this size, so back-pressure holds even when one chunk is huge. */
const SLICE_BYTES = 64 * 1024;
const MAX_QUOTED_CHARS = 200;

type Role = 'serial' | 'name' | 'urls';

const SERIAL_NAMES = ['S. No.', 'S.No', 'S No', 'Sr No', 'Sr. No.', 'Serial Number', 'Serial No'];
const ROLES: Record<Role, { label: string; accepted: string[] }> = {
  serial: { label: 'serial number', accepted: SERIAL_NAMES },
  name: { label: '"Product Name"', accepted: ['Product Name'] },
  urls: { label: '"Input Image Urls"', accepted: ['Input Image Urls'] },
};
/** Header names compare lower-cased without dots or spaces, so `S.No.`, `SNo` and `Input Image URLs` all match. */
const ROLE_BY_KEY = new Map<string, Role>([
  ['sno', 'serial'],
  ['srno', 'serial'],
  ['serialnumber', 'serial'],
  ['serialno', 'serial'],
  ['productname', 'name'],
  ['inputimageurls', 'urls'],
]);
const EXPECTED_HEADER = 'S. No., Product Name and Input Image Urls';

interface Header {
  index: Record<Role, number>;
  title: Record<Role, string>;
  /** Fields at or past this index are further image URLs of the row. */
  width: number;
}

/**
 * Streams a product CSV through csv-parse and checks it against the contract's "Input CSV" rules.
 * Valid products go to `onBatch` in file order until the first problem; after that the file is only checked,
 * so the caller can roll back. Products are not kept once their batch is handed over.
 */
export async function parseProductCsv(
  source: AsyncIterable<Uint8Array | string>,
  limits: CsvLimits,
  onBatch?: (batch: ParsedProduct[]) => Promise<void>,
  batchSize: number = DEFAULT_BATCH_SIZE,
): Promise<ParseOutcome> {
  const lines = new LineCounter();
  const check = new ProductCheck(limits, onBatch ? Math.max(1, Math.floor(batchSize)) : 0);
  const csv = csvParser();
  let recordStart = 0;
  const onRecord = (fields: string[]) => {
    // With relax_column_count, csv-parse still builds a CsvError (a stack trace and a JSON copy of its context) for
    // each record whose field count differs from the first record's: 100 000 rows of the unquoted URL-list form
    // took 3.6 s of CPU to parse instead of 0.8 s. It takes the count of each record that comes while `info.records` is 0.
    // The counter serves only the `from` and `to` options, unused here; if csv-parse changes, only speed is lost.
    csv.info.records = 0;
    // csv-parse also reads UTF-16 after a UTF-16 byte-order mark, but the contract and the line count are UTF-8.
    if (!check.stopped && csv.options.encoding !== 'utf8') check.notUtf8();
    if (!check.stopped) check.record(fields, lines.lineAt(recordStart));
    // The offset after this record's delimiter: where the next record starts, for its line number.
    recordStart = csv.info.bytes;
  };
  /** Parses `bytes` (undefined: the end of the file), checking each record as it completes. */
  const feed = (bytes: Buffer | undefined) => {
    const error = csv.parse(bytes, bytes === undefined, onRecord, () => undefined);
    if (error === undefined) return;
    if (!(error instanceof CsvError)) throw error;
    if (!check.stopped) check.syntaxError(error, lines.lineAt(recordStart));
  };
  const handOver = async () => {
    for (let batch = check.takeBatch(); batch && onBatch; batch = check.takeBatch()) await onBatch(batch);
  };

  let received = 0;
  reading: for await (const chunk of source) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const room = limits.maxBytes - received;
    received += bytes.length;
    const accepted = bytes.length > room ? bytes.subarray(0, room) : bytes;
    for (let offset = 0; offset < accepted.length; offset += SLICE_BYTES) {
      const slice = accepted.subarray(offset, offset + SLICE_BYTES);
      lines.add(slice);
      feed(slice);
      await handOver();
      if (check.stopped) break reading;
      // A turn of the event loop per slice: while chunks are buffered, `for await` goes on in
      // microtasks, so without it the sockets were served only when the input ran dry. postgres.js
      // writes a batch (~300 KB, more than a socket buffer) from the event loop, so Postgres waited for
      // the rest of each statement while the next batch was parsed: 100 000 rows × 3 on Postgres
      // 5.7–6.1 s → 5.0–5.3 s. Health checks and status queries get their turn too.
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (received > limits.maxBytes) {
      check.tooLarge(lines.lineAt(limits.maxBytes));
      break;
    }
  }
  if (!check.stopped) {
    feed(undefined);
    check.finish();
    await handOver();
  }
  return check.outcome();
}

/** The part of csv-parse's parser that does the work: what its stream (and its sync API) call for every chunk. */
interface CsvParserCore {
  /** Calls `push` with each complete record; returns the error that stopped it, if any. */
  parse(bytes: Buffer | undefined, end: boolean, push: (fields: string[]) => void, close: () => void): Error | undefined;
  /** `bytes`: input consumed so far, up to the end of the last record's delimiter while `push` runs. */
  info: { bytes: number; records: number };
  options: { encoding: string };
}

/**
 * csv-parse's core, driven directly rather than through its Transform stream: with the stream, a record
 * reaches us through `on_record`, and csv-parse builds a context object for each one (two object spreads
 * of its state). 100 000 rows × 3 URLs parsed and checked, median of 7: 1.09 s of CPU through the
 * stream and on_record, 0.83 s this way. Records are checked as they complete, never buffered.
 */
function csvParser(): CsvParserCore {
  const parser = new Parser({
    bom: true,
    relax_column_count: true,
    // Lets a quoted field have spaces around it (`1,SKU1, "https://a/1.jpg,https://a/2.jpg"`); cells are trimmed anyway.
    trim: true,
    // Listed rather than auto-detected: csv-parse keeps only the first delimiter it sees, and files mix them.
    record_delimiter: ['\r\n', '\n', '\r'],
  });
  return (parser as unknown as { api: CsvParserCore }).api;
}

/** Maps byte offsets, asked for in increasing order, to 1-based physical lines; CRLF, LF and a lone CR each end a line. */
class LineCounter {
  private readonly chunks: Buffer[] = [];
  /** Absolute offset of `chunks[0]`. */
  private chunkStart = 0;
  private counted = 0;
  private line = 1;
  private afterCr = false;

  add(bytes: Buffer): void {
    this.chunks.push(bytes);
  }

  lineAt(offset: number): number {
    while (this.counted < offset) {
      const chunk = this.chunks[0];
      if (!chunk) break;
      const to = Math.min(chunk.length, offset - this.chunkStart);
      let line = this.line;
      let afterCr = this.afterCr;
      for (let i = this.counted - this.chunkStart; i < to; i++) {
        const byte = chunk[i];
        if (byte === 13) {
          line++;
          afterCr = true;
        } else {
          if (byte === 10 && !afterCr) line++;
          afterCr = false;
        }
      }
      this.line = line;
      this.afterCr = afterCr;
      this.counted = this.chunkStart + to;
      if (to === chunk.length) {
        this.chunks.shift();
        this.chunkStart += chunk.length;
      }
    }
    return this.line;
  }
}

/** The rules of the contract's "Input CSV", applied one record at a time. */
class ProductCheck {
  stopped = false;
  private header: Header | undefined;
  private readonly problems: CsvProblem[] = [];
  private problemCount = 0;
  private firstOmittedLine = 0;
  private rows = 0;
  private urls = 0;
  private isTooLarge = false;
  /** First line of each serial number, to name it when the number comes again. */
  private readonly serialLines = new Map<number, number>();
  private batch: ParsedProduct[] = [];
  private readonly ready: ParsedProduct[][] = [];

  /** `batchSize` 0 means nobody takes the products, so none are kept. */
  constructor(
    private readonly limits: CsvLimits,
    private readonly batchSize: number,
  ) {}

  record(fields: string[], line: number): void {
    if (isBlank(fields)) return;
    if (!this.header) {
      this.readHeader(fields, line);
      return;
    }
    this.rows++;
    if (this.rows > this.limits.maxRows) {
      this.problem(line, null, `The file has more than ${this.limits.maxRows} product rows, the limit set by MAX_CSV_ROWS`);
      this.stopped = true;
      return;
    }
    this.readRow(fields, line, this.header);
  }

  tooLarge(line: number): void {
    const { maxBytes } = this.limits;
    const size = maxBytes >= 1024 ? ` (${humanBytes(maxBytes)})` : '';
    this.problem(line, null, `The file is larger than the limit of ${maxBytes} bytes${size} set by MAX_CSV_BYTES`);
    this.isTooLarge = true;
    this.stopped = true;
  }

  notUtf8(): void {
    this.problem(1, null, 'The file is UTF-16 text; save it as CSV in UTF-8 (Excel: "CSV UTF-8") and upload it again');
    this.stopped = true;
  }

  syntaxError(error: CsvError, line: number): void {
    this.problem(line, null, syntaxMessage(error));
    this.stopped = true;
  }

  /** Called once the whole file was read without stopping. */
  finish(): void {
    if (this.stopped) return;
    if (!this.header) this.problem(1, null, 'The file is empty: it has no header row');
    else if (this.rows === 0) this.problem(1, null, 'The file has no product rows');
    else if (this.batchSize > 0 && this.problemCount === 0 && this.batch.length > 0) {
      this.ready.push(this.batch);
      this.batch = [];
    }
  }

  takeBatch(): ParsedProduct[] | undefined {
    return this.ready.shift();
  }

  outcome(): ParseOutcome {
    const problems = [...this.problems];
    const omitted = this.problemCount - this.problems.length;
    if (omitted > 0) {
      problems.push({ line: this.firstOmittedLine, column: null, message: `… and ${omitted} more problem${omitted === 1 ? '' : 's'}` });
    }
    return { problems, rows: this.rows, urls: this.urls, tooLarge: this.isTooLarge };
  }

  private problem(line: number, column: string | null, message: string): void {
    if (this.problems.length < MAX_REPORTED_PROBLEMS) this.problems.push({ line, column, message });
    else if (this.problemCount === this.problems.length) this.firstOmittedLine = line;
    this.problemCount++;
    // The caller rolls back at the first problem, so products still waiting are of no use.
    this.batch = [];
    this.ready.length = 0;
  }

  private readHeader(fields: string[], line: number): void {
    let width = fields.length;
    while (width > 0 && fields[width - 1]!.trim() === '') width--;
    const titles = fields.slice(0, width).map((field) => field.trim());
    const roles = titles.map((title) => ROLE_BY_KEY.get(title.toLowerCase().replace(/[.\s]/g, '')));
    if (roles.every((role) => role === undefined)) {
      const found = quoted(titles.map((title) => `"${title}"`).join(', '));
      this.problem(line, null, `The first line is not a header: expected the columns ${EXPECTED_HEADER}, found ${found}`);
      this.stopped = true;
      return;
    }
    const index: Partial<Record<Role, number>> = {};
    titles.forEach((title, i) => {
      const role = roles[i];
      if (title === '') {
        this.problem(line, null, `Column ${i + 1} of the header has no name; expected the columns ${EXPECTED_HEADER}`);
      } else if (role === undefined) {
        this.problem(line, title, `Unknown column "${quoted(title)}"; expected the columns ${EXPECTED_HEADER}`);
      } else if (index[role] !== undefined) {
        const first = index[role];
        this.problem(line, title, `The ${ROLES[role].label} column appears twice: "${titles[first]}" (column ${first + 1}) and "${title}" (column ${i + 1})`);
      } else {
        index[role] = i;
      }
    });
    for (const role of ['serial', 'name', 'urls'] as const) {
      if (index[role] === undefined) {
        const accepted = ROLES[role].accepted.join(', ');
        this.problem(line, null, `The header has no ${ROLES[role].label} column; accepted names: ${accepted}`);
      }
    }
    if (this.problemCount > 0 || index.serial === undefined || index.name === undefined || index.urls === undefined) {
      this.stopped = true;
      return;
    }
    this.header = {
      index: { serial: index.serial, name: index.name, urls: index.urls },
      title: { serial: titles[index.serial]!, name: titles[index.name]!, urls: titles[index.urls]! },
      width,
    };
  }

  private readRow(fields: string[], line: number, header: Header): void {
    const problemsBefore = this.problemCount;
    const serialNumber = this.readSerial((fields[header.index.serial] ?? '').trim(), line, header.title.serial);

    const productName = (fields[header.index.name] ?? '').trim();
    if (productName === '') this.problem(line, header.title.name, 'The product name is empty');
    else if (productName.includes('\0')) this.problem(line, header.title.name, NUL_MESSAGE);

    const imageUrls: string[] = [];
    addUrls(imageUrls, fields[header.index.urls]);
    for (let i = header.width; i < fields.length; i++) addUrls(imageUrls, fields[i]);
    const urlColumn = header.title.urls;
    if (imageUrls.length === 0) {
      this.problem(line, urlColumn, 'The row has no image URL');
    } else if (imageUrls.length > this.limits.maxUrlsPerRow) {
      this.problem(
        line,
        urlColumn,
        `The row has ${imageUrls.length} image URLs; at most ${this.limits.maxUrlsPerRow} are allowed (MAX_URLS_PER_ROW)`,
      );
    }
    for (const url of imageUrls) {
      const wrong = urlProblem(url);
      if (wrong) this.problem(line, urlColumn, wrong);
    }

    if (this.problemCount > problemsBefore) return;
    this.urls += imageUrls.length;
    if (this.batchSize === 0 || this.problemCount > 0) return;
    this.batch.push({ line, serialNumber, productName, imageUrls });
    if (this.batch.length >= this.batchSize) {
      this.ready.push(this.batch);
      this.batch = [];
    }
  }

  /** Returns the serial number, or 0 after reporting why the cell is wrong. */
  private readSerial(text: string, line: number, column: string): number {
    if (text === '') {
      this.problem(line, column, 'The serial number is empty');
      return 0;
    }
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code < 48 || code > 57) {
        this.problem(line, column, `The serial number "${quoted(text)}" is not a positive whole number`);
        return 0;
      }
    }
    const value = Number(text);
    if (value === 0) {
      this.problem(line, column, `The serial number "${text}" is not a positive whole number`);
      return 0;
    }
    if (value > MAX_SERIAL_NUMBER) {
      this.problem(line, column, `The serial number "${quoted(text)}" is too large; the largest accepted is ${MAX_SERIAL_NUMBER}`);
      return 0;
    }
    const firstLine = this.serialLines.get(value);
    if (firstLine !== undefined) {
      this.problem(line, column, `The serial number ${value} already appears on line ${firstLine}`);
      return 0;
    }
    this.serialLines.set(value, line);
    return value;
  }
}

function isBlank(fields: string[]): boolean {
  for (const field of fields) {
    if (field.trim() !== '') return false;
  }
  return true;
}

/** A cell may hold a comma-separated list (the quoted form); empty entries are dropped. */
function addUrls(urls: string[], cell: string | undefined): void {
  if (cell === undefined) return;
  if (!cell.includes(',')) {
    const url = cell.trim();
    if (url !== '') urls.push(url);
    return;
  }
  for (const part of cell.split(',')) {
    const url = part.trim();
    if (url !== '') urls.push(url);
  }
}

const HTTP_PREFIX = /^https?:\/\//i;

/** Postgres text cannot hold a NUL character: such a row could not be stored, so it is a problem of the file like the others. */
const NUL_MESSAGE = 'The product name contains a NUL character (byte 0), which cannot be stored';

function urlProblem(text: string): string | undefined {
  if (text.includes('\0')) return `The image URL "${quoted(text.replaceAll('\0', '\\0'))}" contains a NUL character (byte 0), which cannot be stored`;
  // canParse first: a thrown TypeError per bad URL made a file of 300 000 of them three times slower to check.
  if (!URL.canParse(text)) return `The image URL "${quoted(text)}" is not an absolute http or https URL`;
  // The usual case without building the URL: a URL that parses and starts with http:// or https:// has that
  // scheme, and (a special scheme) a host. Parsing twice cost 0.1–0.2 s more CPU per 300 000 URLs.
  if (HTTP_PREFIX.test(text)) return undefined;
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `The image URL "${quoted(text)}" uses ${url.protocol}; only http and https are accepted`;
  }
  if (url.hostname === '') return `The image URL "${quoted(text)}" has no host`;
  return undefined;
}

function syntaxMessage(error: CsvError): string {
  switch (error.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'A quoted field that starts on this row is never closed: a closing " is missing';
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return 'A quoted field is followed by other text instead of a comma or the end of the line; a " inside a quoted field must be doubled ("")';
    case 'INVALID_OPENING_QUOTE':
      return 'A " appears inside a field that is not quoted; quote the whole field and double the " inside it ("")';
    default:
      return `The file is not valid CSV: ${error.message}`;
  }
}

function quoted(text: string): string {
  return text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS)}…` : text;
}

function humanBytes(bytes: number): string {
  const units: [string, number][] = [
    ['GB', 1024 ** 3],
    ['MB', 1024 ** 2],
    ['KB', 1024],
  ];
  for (const [unit, size] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`;
  }
  return `${bytes} bytes`;
}
