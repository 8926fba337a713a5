import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BATCH_SIZE,
  MAX_REPORTED_PROBLEMS,
  parseProductCsv,
  type CsvLimits,
  type ParsedProduct,
  type ParseOutcome,
} from '../src/ingest/parseProductCsv.ts';

const LIMITS: CsvLimits = { maxBytes: 50 * 1024 * 1024, maxRows: 100_000, maxUrlsPerRow: 50 };
const HEADER = 'S. No.,Product Name,Input Image Urls';

interface Upload extends ParseOutcome {
  products: ParsedProduct[];
  batches: number[];
}

/** Uploads `file` the way the server receives it: a Node Readable of Buffers, in chunks of `chunkSize` bytes. */
async function upload(
  file: string | Uint8Array,
  options: { limits?: Partial<CsvLimits>; chunkSize?: number; batchSize?: number } = {},
): Promise<Upload> {
  const bytes = typeof file === 'string' ? Buffer.from(file, 'utf8') : Buffer.from(file);
  const chunkSize = options.chunkSize ?? 64 * 1024;
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) chunks.push(bytes.subarray(offset, offset + chunkSize));
  const products: ParsedProduct[] = [];
  const batches: number[] = [];
  const outcome = await parseProductCsv(
    Readable.from(chunks),
    { ...LIMITS, ...options.limits },
    async (batch) => {
      batches.push(batch.length);
      products.push(...batch);
    },
    options.batchSize,
  );
  return { ...outcome, products, batches };
}

function csv(...lines: string[]): string {
  return lines.join('\n') + '\n';
}

describe('a valid product CSV is accepted', () => {
  it('reads the quoted URL list of the contract', async () => {
    const result = await upload(csv(HEADER, '1,SKU1,"https://a/1.jpg,https://a/2.jpg"', '2,SKU2,https://b/1.jpg'));

    expect(result.problems).toEqual([]);
    expect(result).toMatchObject({ rows: 2, urls: 3, tooLarge: false });
    expect(result.products).toEqual([
      { line: 2, serialNumber: 1, productName: 'SKU1', imageUrls: ['https://a/1.jpg', 'https://a/2.jpg'] },
      { line: 3, serialNumber: 2, productName: 'SKU2', imageUrls: ['https://b/1.jpg'] },
    ]);
  });

  it('reads unquoted URL lists, where the fields past the header are further URLs, as real files arrive', async () => {
    const result = await upload(
      csv(HEADER, '1,SKU1,https://a/1.jpg,https://a/2.jpg,https://a/3.jpg', '2,SKU2,https://b/1.jpg', '3,SKU3,"https://c/1.jpg,https://c/2.jpg",https://c/3.jpg'),
    );

    expect(result.problems).toEqual([]);
    expect(result.products.map((product) => product.imageUrls)).toEqual([
      ['https://a/1.jpg', 'https://a/2.jpg', 'https://a/3.jpg'],
      ['https://b/1.jpg'],
      ['https://c/1.jpg', 'https://c/2.jpg', 'https://c/3.jpg'],
    ]);
    expect(result.urls).toBe(7);
  });

  it('accepts a byte-order mark, CRLF line ends and a mix of CRLF, LF and CR', async () => {
    const result = await upload(`\uFEFF${HEADER}\r\n1,SKU1,https://a/1.jpg\r\n2,SKU2,https://a/2.jpg\n3,SKU3,https://a/3.jpg\r4,SKU4,https://a/4.jpg`);

    expect(result.problems).toEqual([]);
    expect(result.products.map((product) => [product.line, product.serialNumber, product.productName])).toEqual([
      [2, 1, 'SKU1'],
      [3, 2, 'SKU2'],
      [4, 3, 'SKU3'],
      [5, 4, 'SKU4'],
    ]);
  });

  it('skips blank lines and lines of only commas and spaces, and still counts them', async () => {
    const result = await upload(`\n${HEADER}\r\n\r\n1,SKU1,https://a/1.jpg\n   \n , ,, \n\t\n2,SKU2,https://a/2.jpg\n\n\n`);

    expect(result.problems).toEqual([]);
    expect(result.rows).toBe(2);
    expect(result.products.map((product) => product.line)).toEqual([4, 8]);
  });

  it('trims spaces around URLs and drops empty list entries', async () => {
    const result = await upload(csv(HEADER, '1 , SKU1 ,"  https://a/1.jpg ,, https://a/2.jpg , " ,  https://a/3.jpg  ,', '2,SKU2, "https://b/1.jpg , https://b/2.jpg" '));

    expect(result.problems).toEqual([]);
    expect(result.products).toEqual([
      { line: 2, serialNumber: 1, productName: 'SKU1', imageUrls: ['https://a/1.jpg', 'https://a/2.jpg', 'https://a/3.jpg'] },
      { line: 3, serialNumber: 2, productName: 'SKU2', imageUrls: ['https://b/1.jpg', 'https://b/2.jpg'] },
    ]);
  });

  const serialHeaders = ['S. No.', 'S.No', 'S No', 'Sr No', 'Sr. No.', 'Serial Number', 'Serial No', 'S.No.', 'Sr.No', 'SNo', 'Sr. No', 'SERIAL NUMBER', ' s. no. '];
  it.each(serialHeaders)('accepts %j as the serial number column', async (serialHeader) => {
    const result = await upload(csv(`${serialHeader},Product Name,Input Image Urls`, '7,SKU7,https://a/7.jpg'));

    expect(result.problems).toEqual([]);
    expect(result.products[0]?.serialNumber).toBe(7);
  });

  it('matches the other two columns case-insensitively, with spaces around them', async () => {
    const result = await upload(csv(' sr no ,  PRODUCT NAME ,Input Image URLs  ', '1,SKU1,https://a/1.jpg'));

    expect(result.problems).toEqual([]);
    expect(result.rows).toBe(1);
  });

  it('accepts the three columns in any order', async () => {
    const result = await upload(csv('Input Image Urls,Product Name,Serial Number', 'https://a/1.jpg,SKU1,1,https://a/2.jpg', '"https://b/1.jpg,https://b/2.jpg",SKU2,2'));

    expect(result.problems).toEqual([]);
    expect(result.products).toEqual([
      { line: 2, serialNumber: 1, productName: 'SKU1', imageUrls: ['https://a/1.jpg', 'https://a/2.jpg'] },
      { line: 3, serialNumber: 2, productName: 'SKU2', imageUrls: ['https://b/1.jpg', 'https://b/2.jpg'] },
    ]);
  });

  it('reads RFC 4180 quoting: doubled quotes, commas and a line break inside a product name', async () => {
    const result = await upload(`${HEADER}\r\n1,"The ""Big"" one, in blue\r\nsecond line",https://a/1.jpg\r\n2,SKU2,https://a/2.jpg\r\n`);

    expect(result.problems).toEqual([]);
    expect(result.products.map((product) => [product.line, product.productName])).toEqual([
      [2, 'The "Big" one, in blue\r\nsecond line'],
      [4, 'SKU2'],
    ]);
  });

  it('keeps names that begin with = as written, and URLs exactly as written', async () => {
    const result = await upload(csv(HEADER, '1,"=HYPERLINK(""https://evil/""),x",HTTPS://Example.COM/a/../b.jpg?x=1#top'));

    expect(result.problems).toEqual([]);
    expect(result.products[0]).toMatchObject({ productName: '=HYPERLINK("https://evil/"),x', imageUrls: ['HTTPS://Example.COM/a/../b.jpg?x=1#top'] });
  });

  it('replaces bytes that are not UTF-8 instead of failing', async () => {
    const file = Buffer.concat([Buffer.from(`${HEADER}\n1,SKU`), Buffer.from([0xff, 0xc3]), Buffer.from(',https://a/1.jpg\n')]);
    const result = await upload(file);

    expect(result.problems).toEqual([]);
    expect(result.products[0]?.productName).toBe('SKU\uFFFD\uFFFD');
  });

  it('hands valid products over in file order, in batches of at most batchSize', async () => {
    const rows = Array.from({ length: 7 }, (_, i) => `${i + 1},SKU${i + 1},https://a/${i + 1}.jpg`);
    const result = await upload(csv(HEADER, ...rows), { batchSize: 3, chunkSize: 10 });

    expect(result.batches).toEqual([3, 3, 1]);
    expect(result.products.map((product) => product.serialNumber)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('accepts a file of exactly maxBytes', async () => {
    const file = csv(HEADER, '1,SKU1,https://a/1.jpg');
    const result = await upload(file, { limits: { maxBytes: Buffer.byteLength(file) } });

    expect(result).toMatchObject({ problems: [], tooLarge: false, rows: 1 });
  });
});

describe('a CSV that breaks a rule is refused with every problem, its line and its column', () => {
  it.each([
    ['', 'The serial number is empty'],
    ['abc', 'The serial number "abc" is not a positive whole number'],
    ['1.5', 'The serial number "1.5" is not a positive whole number'],
    ['-3', 'The serial number "-3" is not a positive whole number'],
    ['+3', 'The serial number "+3" is not a positive whole number'],
    ['0', 'The serial number "0" is not a positive whole number'],
    ['2147483648', 'The serial number "2147483648" is too large; the largest accepted is 2147483647'],
  ])('refuses the serial number %j', async (serial, message) => {
    const result = await upload(csv(HEADER, '1,SKU1,https://a/1.jpg', '', `${serial},SKU2,https://a/2.jpg`));

    expect(result.problems).toEqual([{ line: 4, column: 'S. No.', message }]);
    expect(result.urls).toBe(1);
  });

  it('accepts the largest safe serial number and leading zeros', async () => {
    const result = await upload(csv(HEADER, '2147483647,SKU1,https://a/1.jpg', '007,SKU7,https://a/7.jpg'));

    expect(result.problems).toEqual([]);
    expect(result.products.map((product) => product.serialNumber)).toEqual([2147483647, 7]);
  });

  it('names the line where a repeated serial number first appeared', async () => {
    const result = await upload(csv('Sr No,Product Name,Input Image Urls', '5,SKU1,https://a/1.jpg', '6,SKU2,https://a/2.jpg', '05,SKU3,https://a/3.jpg'));

    expect(result.problems).toEqual([{ line: 4, column: 'Sr No', message: 'The serial number 5 already appears on line 2' }]);
  });

  it('refuses an empty product name, naming the column as the file writes it', async () => {
    const result = await upload(csv('S No,PRODUCT NAME,Input Image Urls', '1,   ,https://a/1.jpg', '2,"",https://a/2.jpg'));

    expect(result.problems).toEqual([
      { line: 2, column: 'PRODUCT NAME', message: 'The product name is empty' },
      { line: 3, column: 'PRODUCT NAME', message: 'The product name is empty' },
    ]);
  });

  it('refuses a NUL character in a name or a URL, which the database cannot store', async () => {
    const result = await upload(csv(HEADER, '1,SKU\u00001,https://a/1.jpg', '2,SKU2,https://a/2\u0000.jpg'));

    expect(result.problems).toEqual([
      { line: 2, column: 'Product Name', message: 'The product name contains a NUL character (byte 0), which cannot be stored' },
      { line: 3, column: 'Input Image Urls', message: 'The image URL "https://a/2\\0.jpg" contains a NUL character (byte 0), which cannot be stored' },
    ]);
  });

  it('refuses a row without any image URL', async () => {
    const result = await upload(csv(HEADER, '1,SKU1', '2,SKU2,', '3,SKU3," , ,",,'));

    expect(result.problems).toEqual([
      { line: 2, column: 'Input Image Urls', message: 'The row has no image URL' },
      { line: 3, column: 'Input Image Urls', message: 'The row has no image URL' },
      { line: 4, column: 'Input Image Urls', message: 'The row has no image URL' },
    ]);
  });

  it.each([
    ['ftp://a/1.jpg', 'The image URL "ftp://a/1.jpg" uses ftp:; only http and https are accepted'],
    ['javascript:alert(1)', 'The image URL "javascript:alert(1)" uses javascript:; only http and https are accepted'],
    ['file:///etc/passwd', 'The image URL "file:///etc/passwd" uses file:; only http and https are accepted'],
    ['/images/1.jpg', 'The image URL "/images/1.jpg" is not an absolute http or https URL'],
    ['www.example.com/1.jpg', 'The image URL "www.example.com/1.jpg" is not an absolute http or https URL'],
    ['http://', 'The image URL "http://" is not an absolute http or https URL'],
  ])('refuses the image URL %j and says which one', async (url, message) => {
    const result = await upload(csv(HEADER, `1,SKU1,https://a/1.jpg,${url},https://a/3.jpg`));

    expect(result.problems).toEqual([{ line: 2, column: 'Input Image Urls', message }]);
  });

  it('quotes at most 200 characters of a wrong URL', async () => {
    const url = `ftp://a/${'x'.repeat(300)}`;
    const result = await upload(csv(HEADER, `1,SKU1,${url}`));

    expect(result.problems[0]?.message).toBe(`The image URL "${url.slice(0, 200)}…" uses ftp:; only http and https are accepted`);
  });

  it('refuses a row with more URLs than maxUrlsPerRow', async () => {
    const urls = Array.from({ length: 4 }, (_, i) => `https://a/${i}.jpg`);
    const result = await upload(csv(HEADER, `1,SKU1,${urls.slice(0, 3).join(',')}`, `2,SKU2,"${urls.join(',')}"`), { limits: { maxUrlsPerRow: 3 } });

    expect(result.problems).toEqual([
      { line: 3, column: 'Input Image Urls', message: 'The row has 4 image URLs; at most 3 are allowed (MAX_URLS_PER_ROW)' },
    ]);
  });

  it('reports every problem across the file, and stops handing over products at the first', async () => {
    const result = await upload(
      csv(HEADER, '1,SKU1,https://a/1.jpg', '2,SKU2,https://a/2.jpg', '3,SKU3,https://a/3.jpg', 'x,,ftp://a/4.jpg', '5,SKU5,https://a/5.jpg', '1,SKU6,https://a/6.jpg'),
      { batchSize: 2, chunkSize: 16 },
    );

    expect(result.problems).toEqual([
      { line: 5, column: 'S. No.', message: 'The serial number "x" is not a positive whole number' },
      { line: 5, column: 'Product Name', message: 'The product name is empty' },
      { line: 5, column: 'Input Image Urls', message: 'The image URL "ftp://a/4.jpg" uses ftp:; only http and https are accepted' },
      { line: 7, column: 'S. No.', message: 'The serial number 1 already appears on line 2' },
    ]);
    expect(result).toMatchObject({ rows: 6, urls: 4 });
    expect(result.products.map((product) => product.serialNumber)).toEqual([1, 2]);
  });

  it(`keeps ${MAX_REPORTED_PROBLEMS} problems and sums up the rest in a last entry`, async () => {
    const rows = Array.from({ length: 1500 }, (_, i) => `${i + 1},,https://a/${i}.jpg`);
    const result = await upload(csv(HEADER, ...rows));

    expect(result.problems).toHaveLength(MAX_REPORTED_PROBLEMS + 1);
    expect(result.problems[MAX_REPORTED_PROBLEMS - 1]).toEqual({ line: 1001, column: 'Product Name', message: 'The product name is empty' });
    expect(result.problems[MAX_REPORTED_PROBLEMS]).toEqual({ line: 1002, column: null, message: '… and 500 more problems' });
    expect(result.rows).toBe(1500);
  });

  describe('the header', () => {
    it('must name the serial number column, with the names it accepts', async () => {
      const result = await upload(csv('Number,Product Name,Input Image Urls', '1,SKU1,https://a/1.jpg'));

      expect(result.problems).toEqual([
        { line: 1, column: 'Number', message: 'Unknown column "Number"; expected the columns S. No., Product Name and Input Image Urls' },
        {
          line: 1,
          column: null,
          message: 'The header has no serial number column; accepted names: S. No., S.No, S No, Sr No, Sr. No., Serial Number, Serial No',
        },
      ]);
      expect(result.rows).toBe(0);
    });

    it('must name the Product Name and Input Image Urls columns', async () => {
      const result = await upload(csv('S. No.', '1,SKU1,https://a/1.jpg'));

      expect(result.problems).toEqual([
        { line: 1, column: null, message: 'The header has no "Product Name" column; accepted names: Product Name' },
        { line: 1, column: null, message: 'The header has no "Input Image Urls" column; accepted names: Input Image Urls' },
      ]);
    });

    it('must not name a column twice', async () => {
      const result = await upload(csv('S. No.,Product Name,Input Image Urls,Serial No', '1,SKU1,https://a/1.jpg,1'));

      expect(result.problems).toEqual([
        { line: 1, column: 'Serial No', message: 'The serial number column appears twice: "S. No." (column 1) and "Serial No" (column 4)' },
      ]);
    });

    it('is the first line that is not blank, and must not be a product row', async () => {
      const result = await upload(csv('', '1,SKU1,https://a/1.jpg'));

      expect(result.problems).toEqual([
        {
          line: 2,
          column: null,
          message: 'The first line is not a header: expected the columns S. No., Product Name and Input Image Urls, found "1", "SKU1", "https://a/1.jpg"',
        },
      ]);
    });

    it('may end in empty cells, as spreadsheets write it, but may not have one in between', async () => {
      expect((await upload(csv(`${HEADER},,`, '1,SKU1,https://a/1.jpg,,'))).problems).toEqual([]);
      expect((await upload(csv('S. No.,,Product Name,Input Image Urls', '1,,SKU1,https://a/1.jpg'))).problems).toEqual([
        { line: 1, column: null, message: 'Column 2 of the header has no name; expected the columns S. No., Product Name and Input Image Urls' },
      ]);
    });
  });

  describe('the file as a whole', () => {
    it('must not be empty', async () => {
      for (const file of ['', '\uFEFF', '\r\n\n  \n']) {
        const result = await upload(file);
        expect(result.problems).toEqual([{ line: 1, column: null, message: 'The file is empty: it has no header row' }]);
      }
    });

    it('must be UTF-8, not UTF-16', async () => {
      const result = await upload(Buffer.from(`\uFEFF${csv(HEADER, '1,SKU1,https://a/1.jpg')}`, 'utf16le'));

      expect(result.problems).toEqual([
        { line: 1, column: null, message: 'The file is UTF-16 text; save it as CSV in UTF-8 (Excel: "CSV UTF-8") and upload it again' },
      ]);
    });

    it('must have product rows after the header', async () => {
      const result = await upload(`${HEADER}\r\n\r\n , , \r\n`);

      expect(result.problems).toEqual([{ line: 1, column: null, message: 'The file has no product rows' }]);
      expect(result.rows).toBe(0);
    });

    it('must close every quote; the problem is on the line where the unclosed row starts', async () => {
      const result = await upload(csv(HEADER, '1,SKU1,https://a/1.jpg', '', '2,"SKU2,https://a/2.jpg', '3,SKU3,https://a/3.jpg'));

      expect(result.problems).toEqual([
        { line: 4, column: null, message: 'A quoted field that starts on this row is never closed: a closing " is missing' },
      ]);
    });

    it('must not have a quote inside an unquoted field', async () => {
      const result = await upload(csv(HEADER, '1,SKU1,https://a/1.jpg', '2,12" pipe,https://a/2.jpg', '3,,https://a/3.jpg'));

      expect(result.problems).toEqual([
        { line: 3, column: null, message: 'A " appears inside a field that is not quoted; quote the whole field and double the " inside it ("")' },
      ]);
    });

    it('must not have text after a closing quote', async () => {
      const result = await upload(csv(HEADER, '1,"12" pipe",https://a/1.jpg'));

      expect(result.problems).toEqual([
        {
          line: 2,
          column: null,
          message: 'A quoted field is followed by other text instead of a comma or the end of the line; a " inside a quoted field must be doubled ("")',
        },
      ]);
    });

    it('must not be larger than maxBytes, and is not read past it', async () => {
      let chunksRead = 0;
      async function* source() {
        yield `${HEADER}\n`;
        for (let i = 1; i <= 1000; i++) {
          chunksRead++;
          yield `${i},SKU${i},https://a/${i}.jpg\n`;
        }
      }
      const outcome = await parseProductCsv(source(), { ...LIMITS, maxBytes: 1536 });

      expect(outcome.tooLarge).toBe(true);
      expect(outcome.problems).toEqual([
        { line: 60, column: null, message: 'The file is larger than the limit of 1536 bytes (1.5 KB) set by MAX_CSV_BYTES' },
      ]);
      // Rows 1 to 58 fill 1518 bytes; row 59, on line 60, passes the limit.
      expect(outcome.rows).toBe(58);
      expect(chunksRead).toBe(59);
    });

    it('must not have more than maxRows product rows, and is not read past them', async () => {
      const result = await upload(csv(HEADER, '1,SKU1,https://a/1.jpg', '2,SKU2,https://a/2.jpg', '', '3,SKU3,https://a/3.jpg', '4,,ftp://x'), {
        limits: { maxRows: 2 },
      });

      expect(result.problems).toEqual([
        { line: 5, column: null, message: 'The file has more than 2 product rows, the limit set by MAX_CSV_ROWS' },
      ]);
      expect(result.tooLarge).toBe(false);
    });
  });
});

describe('large files', () => {
  /** Streams a file of `rows` products with three URLs each, in chunks of about 64 KiB, without building it whole. */
  async function* bigFile(rows: number, onChunk: () => void = () => undefined): AsyncGenerator<string> {
    let chunk = `${HEADER}\r\n`;
    for (let i = 1; i <= rows; i++) {
      const base = `https://cdn.example.com/products/${i}/photo`;
      chunk += i % 2 === 0 ? `${i},Product ${i},"${base}-1.jpg,${base}-2.jpg,${base}-3.jpg"\r\n` : `${i},Product ${i},${base}-1.jpg,${base}-2.jpg,${base}-3.jpg\r\n`;
      if (chunk.length >= 64 * 1024) {
        onChunk();
        yield chunk;
        chunk = '';
      }
    }
    onChunk();
    yield chunk;
  }

  it('accepts 100 000 rows of three URLs and hands them all over in order', async () => {
    const batchSizes: number[] = [];
    let expectedSerial = 1;
    let inOrder = true;
    const outcome = await parseProductCsv(bigFile(100_000), LIMITS, async (batch) => {
      batchSizes.push(batch.length);
      for (const product of batch) {
        if (product.serialNumber !== expectedSerial || product.line !== expectedSerial + 1 || product.imageUrls.length !== 3) inOrder = false;
        expectedSerial++;
      }
    });

    expect(outcome).toEqual({ problems: [], rows: 100_000, urls: 300_000, tooLarge: false });
    expect(inOrder).toBe(true);
    expect(batchSizes.reduce((sum, size) => sum + size, 0)).toBe(100_000);
    expect(batchSizes.every((size) => size === DEFAULT_BATCH_SIZE)).toBe(true);
  });

  it('does not read ahead while onBatch is busy, and still gets every batch in order', async () => {
    let chunksRead = 0;
    const serials: number[] = [];
    const outcome = await parseProductCsv(
      bigFile(5000, () => chunksRead++),
      LIMITS,
      async (batch) => {
        const readBefore = chunksRead;
        await sleep(5);
        expect(chunksRead).toBe(readBefore);
        serials.push(...batch.map((product) => product.serialNumber));
      },
      500,
    );

    expect(outcome.problems).toEqual([]);
    expect(serials).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1));
  });
});

describe('any input at all', () => {
  const csvish = fc
    .tuple(
      fc.boolean(),
      fc.array(fc.constantFrom(',', '"', '""', '\r', '\n', '\r\n', ' ', 'a', 'b', 'http://x/', '1', '2', '\uFEFF', '='), { maxLength: 80 }),
    )
    .map(([withHeader, parts]) => (withHeader ? `${HEADER}\n` : '') + parts.join(''));

  function physicalLines(bytes: Uint8Array): number {
    return Buffer.from(bytes).toString('latin1').split(/\r\n|\r|\n/).length;
  }

  function expectWellFormed(outcome: ParseOutcome, bytes: Uint8Array): void {
    for (const problem of outcome.problems) {
      expect(Number.isInteger(problem.line)).toBe(true);
      expect(problem.line).toBeGreaterThanOrEqual(1);
      expect(problem.line).toBeLessThanOrEqual(physicalLines(bytes));
      expect(problem.message).not.toBe('');
    }
  }

  it('never throws on arbitrary bytes, and every problem has a line and a message', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        expectWellFormed(await upload(bytes), bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on CSV-like text, and every problem has a line and a message', async () => {
    await fc.assert(
      fc.asyncProperty(csvish, async (text) => {
        expectWellFormed(await upload(text), Buffer.from(text));
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same answer however the upload is split into chunks', async () => {
    await fc.assert(
      fc.asyncProperty(csvish, fc.integer({ min: 1, max: 7 }), async (text, chunkSize) => {
        const { products, batches: _, ...whole } = await upload(text, { batchSize: 1 });
        const split = await upload(text, { batchSize: 1, chunkSize });
        expect(split).toMatchObject(whole);
        // Products handed over before the first problem depend on where chunks end; a valid file hands over all.
        if (whole.problems.length === 0) expect(split.products).toEqual(products);
      }),
      { numRuns: 300 },
    );
  });
});
