import { stringify } from 'csv-stringify/sync';
import type { RequestRow } from '../../drizzle/schema.ts';
import type { Queryable } from '../db/client.ts';
import { productsWithImages } from '../db/products.ts';
import type { Storage } from '../storage/localStorage.ts';

/** One product as the webhook and the REST status route show it. */
export interface ProductRowJson {
  'Serial Number': number;
  'Product Name': string;
  'Input Image Urls': string;
  'Output Image Urls': string | null;
}

export const OUTPUT_CSV_HEADER = ['S. No.', 'Product Name', 'Input Image Urls', 'Output Image Urls'];

/** Output URLs in input order, with an empty entry where an image has no output. */
export function outputUrlList(storage: Storage, images: readonly { outputKey: string | null; status: string }[]): string {
  return images.map((image) => (image.status === 'DONE' && image.outputKey ? storage.url(image.outputKey) : '')).join(',');
}

/**
 * Spreadsheets run a cell that begins with = + - @ tab or CR as a formula; a leading ' keeps it text.
 * Applied to CSV files only; JSON keeps the text as stored.
 */
export function neutraliseFormula(cell: string): string {
  return /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell;
}

export function outputCsvKey(requestId: string): string {
  return `requests/${requestId}/output.csv`;
}

export const ERRORS_CSV_HEADER = ['S. No.', 'Product Name', 'Input Image Url', 'Error Code', 'Error Message', 'Attempts'];

function csvLine(cells: readonly string[]): string {
  return stringify([cells.map(neutraliseFormula)], { record_delimiter: 'windows' });
}

/**
 * Writes the request's output CSV (deterministic key: a re-run overwrites it) and returns the product
 * rows for the webhook body, from one pass over the products.
 */
export async function writeRequestOutputs(
  on: Queryable,
  storage: Storage,
  request: RequestRow,
  options: { collectRows: boolean },
): Promise<{ csvKey: string; errorsCsvKey: string | null; rows: ProductRowJson[] }> {
  const lines: string[] = [csvLine(OUTPUT_CSV_HEADER)];
  const errorLines: string[] = [csvLine(ERRORS_CSV_HEADER)];
  const rows: ProductRowJson[] = [];
  for await (const { product, images } of productsWithImages(on, request.id)) {
    const inputUrls = images.map((image) => image.inputUrl).join(',');
    const outputUrls = outputUrlList(storage, images);
    lines.push(csvLine([String(product.serialNumber), product.productName, inputUrls, outputUrls]));
    for (const image of images) {
      if (image.status !== 'FAILED') continue;
      errorLines.push(
        csvLine([String(product.serialNumber), product.productName, image.inputUrl, image.errorCode ?? '', image.errorMessage ?? '', String(image.attempts)]),
      );
    }
    if (options.collectRows) {
      rows.push({
        'Serial Number': product.serialNumber,
        'Product Name': product.productName,
        'Input Image Urls': inputUrls,
        'Output Image Urls': outputUrls,
      });
    }
  }
  const csvKey = outputCsvKey(request.id);
  await storage.write(csvKey, lines.join(''));
  let errorsCsvKey: string | null = null;
  if (errorLines.length > 1) {
    errorsCsvKey = `requests/${request.id}/errors.csv`;
    await storage.write(errorsCsvKey, errorLines.join(''));
  }
  return { csvKey, errorsCsvKey, rows };
}
