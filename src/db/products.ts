import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { images, products, type ImageRow, type ProductRow } from '../../drizzle/schema.ts';
import { uuidv7 } from '../ids.ts';
import type { ParsedProduct } from '../ingest/parseProductCsv.ts';
import type { Queryable } from './client.ts';
import { isUuid } from './requests.ts';

/** A Postgres array literal (`{"a","b"}`): one bound parameter however many values, on both drivers. */
function arrayLiteral(elements: readonly (string | number)[]): string {
  return `{${elements.join(',')}}`;
}

/** `value` as an element of a Postgres text-array literal: always quoted (so '', NULL and commas stay text), `\\` and `"` escaped. */
function arrayElement(value: string): string {
  return value.includes('"') || value.includes('\\') ? `"${value.replace(/[\\"]/g, '\\$&')}"` : `"${value}"`;
}

/**
 * Inserts one batch of parsed products and their images in one statement, whatever the batch size:
 * `insert … select from unnest(array parameters)` for the products in a CTE, then the images, which
 * name their product by its index in the products' id array instead of repeating its id. Building
 * the same rows as a Drizzle multi-row `values()` took 35 s for 100 000 products × 3 images on either
 * driver, nearly all of it in building the statement text; with arrays the statements are short and
 * the time is the database's. Each array parameter is one Postgres array literal (`{"a","b"}`), built
 * here in one pass over the batch. Against two statements with the images repeating their product's
 * id (100 000 products × 3 images, 3 runs each): main-thread CPU 2.20–2.23 s → 2.05–2.18 s, Postgres
 * CPU 1.79–1.80 s → 1.61–1.68 s.
 * COPY FROM STDIN (postgres.js `writable()`) was tried and measured slower: two COPYs per batch, each
 * waiting ~40 ms for its start (postgres.js leaves Nagle on: a small write behind a large one waits
 * for a delayed ACK), 7–9 s instead of 4–5 s; and postgres.js 3.4.9 never settles a COPY that the
 * server fails after end() (porsager/postgres#1173), which would hang the upload.
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
  const serials: number[] = [];
  const names: string[] = [];
  const imageIds: string[] = [];
  const imageProducts: number[] = [];
  const imagePositions: number[] = [];
  const urls: string[] = [];
  for (let index = 0; index < batch.length; index++) {
    const product = batch[index]!;
    productIds.push(uuidv7());
    serials.push(product.serialNumber);
    names.push(arrayElement(product.productName));
    const productUrls = product.imageUrls;
    for (let position = 0; position < productUrls.length; position++) {
      imageIds.push(uuidv7());
      // Postgres arrays count from 1.
      imageProducts.push(index + 1);
      imagePositions.push(position);
      urls.push(arrayElement(productUrls[position]!));
    }
  }
  // A CTE read twice is computed once: the product ids are parsed once, then read by index.
  await on.execute(sql`
    with batch as (select ${arrayLiteral(productIds)}::uuid[] as product_ids),
    inserted as (
      insert into products (id, request_id, position, serial_number, product_name)
      select t.id, ${requestId}::uuid, ${firstPosition - 1}::int + t.n::int, t.serial_number, t.product_name
      from batch, unnest(batch.product_ids, ${arrayLiteral(serials)}::bigint[], ${arrayLiteral(names)}::text[]) with ordinality as t(id, serial_number, product_name, n)
    )
    insert into images (id, request_id, product_id, position, input_url, status, next_attempt_at)
    select t.id, ${requestId}::uuid, batch.product_ids[t.product], t.position, t.input_url, 'PENDING', ${claimable ? sql`now()` : sql`null`}
    from batch, unnest(${arrayLiteral(imageIds)}::uuid[], ${arrayLiteral(imageProducts)}::int[], ${arrayLiteral(imagePositions)}::int[], ${arrayLiteral(urls)}::text[])
      as t(id, product, position, input_url)`);
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
