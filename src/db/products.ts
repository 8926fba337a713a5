import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { images, products, type ImageRow, type ProductRow } from '../../drizzle/schema.ts';
import { uuidv7 } from '../ids.ts';
import type { ParsedProduct } from '../ingest/parseProductCsv.ts';
import type { Queryable } from './client.ts';
import { isUuid } from './requests.ts';

/** Rows per insert: 8 000 images × 7 columns stays under Postgres' 65 535 bound parameters. */
const IMAGE_ROWS_PER_INSERT = 8_000;

/**
 * Inserts one batch of parsed products and their images: one statement for the products and one per
 * 8 000 images, never one per row. `startAt` is when the images may be claimed (null: wait for processRequest).
 */
export async function insertProductBatch(
  on: Queryable,
  requestId: string,
  firstPosition: number,
  batch: readonly ParsedProduct[],
  claimable: boolean,
): Promise<number> {
  if (batch.length === 0) return 0;
  const productRows: (typeof products.$inferInsert)[] = [];
  let imageRows: (typeof images.$inferInsert)[] = [];
  // The database's clock, not this process's: claims compare against now() there.
  const nextAttemptAt = (claimable ? sql`now()` : null) as Date | null;
  batch.forEach((product, index) => {
    const productId = uuidv7();
    productRows.push({
      id: productId,
      requestId,
      position: firstPosition + index,
      serialNumber: product.serialNumber,
      productName: product.productName,
    });
    product.imageUrls.forEach((inputUrl, position) => {
      imageRows.push({ id: uuidv7(), requestId, productId, position, inputUrl, status: 'PENDING', nextAttemptAt });
    });
  });
  await on.insert(products).values(productRows);
  let imageCount = 0;
  while (imageRows.length > 0) {
    const chunk = imageRows.slice(0, IMAGE_ROWS_PER_INSERT);
    imageRows = imageRows.slice(IMAGE_ROWS_PER_INSERT);
    imageCount += chunk.length;
    await on.insert(images).values(chunk);
  }
  return imageCount;
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
