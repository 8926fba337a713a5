import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { images, products, type ImageRow, type ProductRow } from '../../drizzle/schema.ts';
import { uuidv7 } from '../ids.ts';
import type { ParsedProduct } from '../ingest/parseProductCsv.ts';
import { preparedStatement, runPreparedIn, type Queryable } from './client.ts';
import { isUuid } from './requests.ts';

/** A Postgres array literal (`{"a","b"}`): one bound parameter however many values, on both drivers. */
function arrayLiteral(elements: readonly (string | number)[]): string {
  return `{${elements.join(',')}}`;
}

/** `value` as an element of a Postgres text-array literal: always quoted (so '', NULL and commas stay text), `\\` and `"` escaped. */
function arrayElement(value: string): string {
  return value.includes('"') || value.includes('\\') ? `"${value.replace(/[\\"]/g, '\\$&')}"` : `"${value}"`;
}

/** One batch of parsed products and their images as Postgres array literals, built in one pass. */
export interface BatchRows {
  productIds: string;
  serials: string;
  names: string;
  imageIds: string;
  /** Each image's product as its index (from 1) in `productIds`. */
  imageProducts: string;
  imagePositions: string;
  urls: string;
  productCount: number;
  imageCount: number;
}

/**
 * Turns a batch into the array parameters of the insert statements below, whatever the batch size:
 * `insert … select from unnest(array parameters)`. Building the same rows as a Drizzle multi-row
 * `values()` took 35 s for 100 000 products × 3 images on either driver, nearly all of it in building
 * the statement text; with arrays the statements are short and the time is the database's. Each
 * array parameter is one Postgres array literal (`{"a","b"}`). Images name their product by its index
 * in the products' id array instead of repeating its id.
 * COPY FROM STDIN (postgres.js `writable()`) was tried and measured slower: two COPYs per batch, each
 * waiting ~40 ms for its start, 7–9 s instead of 4–5 s; postgres.js 3.4.9 never settles a COPY that
 * the server fails after end() (porsager/postgres#1173), which would hang the upload; and psql's own
 * COPY of the same 400 000 rows (3.1 s) costs Postgres about what these inserts do (3.0–3.3 s CPU).
 */
export function batchRows(batch: readonly ParsedProduct[]): BatchRows {
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
  return {
    productIds: arrayLiteral(productIds),
    serials: arrayLiteral(serials),
    names: arrayLiteral(names),
    imageIds: arrayLiteral(imageIds),
    imageProducts: arrayLiteral(imageProducts),
    imagePositions: arrayLiteral(imagePositions),
    urls: arrayLiteral(urls),
    productCount: batch.length,
    imageCount: imageIds.length,
  };
}

/**
 * Inserts a batch's products and images in one statement (one round trip; PGlite): the products in a
 * CTE, whose id array is parsed once and read by index. `claimable` false leaves next_attempt_at null:
 * the images wait for processRequest. Against two statements with the images repeating their product's
 * id (100 000 products × 3 images, 3 runs each): main-thread CPU 2.20–2.23 s → 2.05–2.18 s, Postgres
 * CPU 1.79–1.80 s → 1.61–1.68 s.
 */
export async function insertProductBatch(on: Queryable, requestId: string, firstPosition: number, rows: BatchRows, claimable: boolean): Promise<void> {
  if (rows.productCount === 0) return;
  await on.execute(sql`
    with batch as (select ${rows.productIds}::uuid[] as product_ids),
    inserted as (
      insert into products (id, request_id, position, serial_number, product_name)
      select t.id, ${requestId}::uuid, ${firstPosition - 1}::int + t.n::int, t.serial_number, t.product_name
      from batch, unnest(batch.product_ids, ${rows.serials}::bigint[], ${rows.names}::text[]) with ordinality as t(id, serial_number, product_name, n)
    )
    insert into images (id, request_id, product_id, position, input_url, status, next_attempt_at)
    select t.id, ${requestId}::uuid, batch.product_ids[t.product], t.position, t.input_url, 'PENDING', ${claimable ? sql`now()` : sql`null`}
    from batch, unnest(${rows.imageIds}::uuid[], ${rows.imageProducts}::int[], ${rows.imagePositions}::int[], ${rows.urls}::text[])
      as t(id, product, position, input_url)`);
}

const INSERT_PRODUCTS = preparedStatement(
  'squeeze_insert_products',
  `insert into products (id, request_id, position, serial_number, product_name)
   select t.id, $1::uuid, $2::int + t.n::int, t.serial_number, t.product_name
   from unnest($3::uuid[], $4::bigint[], $5::text[]) with ordinality as t(id, serial_number, product_name, n)`,
);

const insertImagesStatement = (claimable: boolean) =>
  preparedStatement(
    claimable ? 'squeeze_insert_claimable_images' : 'squeeze_insert_images',
    `insert into images (id, request_id, product_id, position, input_url, status, next_attempt_at)
     select t.id, $1::uuid, ($2::uuid[])[t.product], t.position, t.input_url, 'PENDING', ${claimable ? 'now()' : 'null'}
     from unnest($3::uuid[], $4::int[], $5::int[], $6::text[]) as t(id, product, position, input_url)`,
  );
const INSERT_IMAGES = { claimable: insertImagesStatement(true), waiting: insertImagesStatement(false) };

/**
 * The products of a batch alone, on Postgres, as a prepared statement (see runPreparedIn), so that
 * Postgres gets them in pipelined statements of its own (src/ingest/ingestCsv.ts).
 */
export async function insertProducts(on: Queryable, requestId: string, firstPosition: number, rows: BatchRows): Promise<void> {
  if (rows.productCount === 0) return;
  await runPreparedIn(on, INSERT_PRODUCTS, [requestId, firstPosition - 1, rows.productIds, rows.serials, rows.names]);
}

/** The images of a batch alone: the counterpart of insertProducts. */
export async function insertImages(on: Queryable, requestId: string, rows: BatchRows, claimable: boolean): Promise<void> {
  if (rows.imageCount === 0) return;
  const statement = claimable ? INSERT_IMAGES.claimable : INSERT_IMAGES.waiting;
  await runPreparedIn(on, statement, [requestId, rows.productIds, rows.imageIds, rows.imageProducts, rows.imagePositions, rows.urls]);
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
