import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { images, products, type ImageRow, type ProductRow } from '../../drizzle/schema.ts';
import { uuidv7 } from '../ids.ts';
import type { ParsedProduct } from '../ingest/parseProductCsv.ts';
import type { Queryable } from './client.ts';
import { isUuid } from './requests.ts';

/** A Postgres array literal (`{"a","b"}`): one bound parameter however many values, on both drivers. */
function pgArray(values: readonly (string | number)[]): string {
  return `{${values.map((value) => (typeof value === 'number' ? String(value) : `"${value.replace(/[\\"]/g, '\\$&')}"`)).join(',')}}`;
}

/**
 * Inserts one batch of parsed products and their images: two statements whatever the batch size, each
 * `insert … select from unnest(array parameters)`. Building the same rows as a Drizzle multi-row
 * `values()` took 35 s for 100 000 products × 3 images on either driver, nearly all of it in building
 * the statement text; with arrays the statements are short and the time is the database's.
 * `claimable` false leaves next_attempt_at null: the images wait for processRequest.
 */
export async function insertProductBatch(
  on: Queryable,
  requestId: string,
  firstPosition: number,
  batch: readonly ParsedProduct[],
  claimable: boolean,
): Promise<number> {
  if (batch.length === 0) return 0;
  const productIds: string[] = [];
  const positions: number[] = [];
  const serials: number[] = [];
  const names: string[] = [];
  const imageIds: string[] = [];
  const imageProducts: string[] = [];
  const imagePositions: number[] = [];
  const urls: string[] = [];
  batch.forEach((product, index) => {
    const productId = uuidv7();
    productIds.push(productId);
    positions.push(firstPosition + index);
    serials.push(product.serialNumber);
    names.push(product.productName);
    product.imageUrls.forEach((url, position) => {
      imageIds.push(uuidv7());
      imageProducts.push(productId);
      imagePositions.push(position);
      urls.push(url);
    });
  });
  await on.execute(sql`
    insert into products (id, request_id, position, serial_number, product_name)
    select id, ${requestId}::uuid, position, serial_number, product_name
    from unnest(${pgArray(productIds)}::uuid[], ${pgArray(positions)}::int[], ${pgArray(serials)}::bigint[], ${pgArray(names)}::text[])
      as t(id, position, serial_number, product_name)`);
  await on.execute(sql`
    insert into images (id, request_id, product_id, position, input_url, status, next_attempt_at)
    select id, ${requestId}::uuid, product_id, position, input_url, 'PENDING', ${claimable ? sql`now()` : sql`null`}
    from unnest(${pgArray(imageIds)}::uuid[], ${pgArray(imageProducts)}::uuid[], ${pgArray(imagePositions)}::int[], ${pgArray(urls)}::text[])
      as t(id, product_id, position, input_url)`);
  return imageIds.length;
}

export async function getProduct(on: Queryable, id: string): Promise<ProductRow | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await on.select().from(products).where(eq(products.id, id));
  return row;
}

/** Products of a request in file order, keyset-paginated by position. */
export async function listProducts(
  on: Queryable,
  requestId: string,
  args: { first: number; afterPosition?: number },
): Promise<{ rows: ProductRow[]; hasNextPage: boolean; totalCount: number }> {
  const rows = await listProductPage(on, requestId, args.first + 1, args.afterPosition);
  const [count] = await on
    .select({ n: sql<number>`count(*)::int` })
    .from(products)
    .where(eq(products.requestId, requestId));
  return { rows: rows.slice(0, args.first), hasNextPage: rows.length > args.first, totalCount: Number(count?.n ?? 0) };
}

/** Images of many products at once, each list in input order (one query for a page of products). */
export async function imagesOfProducts(on: Queryable, productIds: readonly string[]): Promise<Map<string, ImageRow[]>> {
  const byProduct = new Map<string, ImageRow[]>(productIds.map((id) => [id, []]));
  if (productIds.length === 0) return byProduct;
  const rows = await on
    .select()
    .from(images)
    .where(inArray(images.productId, [...productIds]))
    .orderBy(asc(images.productId), asc(images.position));
  for (const row of rows) byProduct.get(row.productId)?.push(row);
  return byProduct;
}

export async function getImages(on: Queryable, ids: readonly string[]): Promise<ImageRow[]> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return [];
  return on.select().from(images).where(inArray(images.id, valid));
}

export interface ProductWithImages {
  product: ProductRow;
  images: ImageRow[];
}

/**
 * Walks a request's products with their images in file order, a page at a time, so a 100 000-row
 * request never sits in memory whole.
 */
export async function* productsWithImages(on: Queryable, requestId: string, pageSize = 2_000): AsyncGenerator<ProductWithImages> {
  let afterPosition: number | undefined;
  while (true) {
    const page = await listProductPage(on, requestId, pageSize, afterPosition);
    if (page.length === 0) return;
    const byProduct = await imagesOfProducts(
      on,
      page.map((p) => p.id),
    );
    for (const product of page) yield { product, images: byProduct.get(product.id) ?? [] };
    if (page.length < pageSize) return;
    afterPosition = page[page.length - 1]!.position;
  }
}

function listProductPage(on: Queryable, requestId: string, limit: number, afterPosition?: number) {
  return on
    .select()
    .from(products)
    .where(and(eq(products.requestId, requestId), afterPosition === undefined ? undefined : gt(products.position, afterPosition)))
    .orderBy(asc(products.position))
    .limit(limit);
}
