import type { ImageRow, ProductRow } from '../drizzle/schema.ts';
import { getProduct, imagesOfProducts } from '../src/db/products.ts';
import { IMAGE_STATUSES } from '../src/statuses.ts';
import type { GraphQLContext } from '../src/services.ts';
import { builder } from './builder.ts';

/** A product with its images when the page that found it loaded them in one query. */
export interface ProductNode {
  row: ProductRow;
  images?: ImageRow[];
}

export const ImageStatusEnum = builder.enumType('ImageStatus', { values: IMAGE_STATUSES });

const ImageErrorRef = builder.objectRef<{ code: string; message: string }>('ImageError').implement({
  fields: (t) => ({
    code: t.exposeString('code', {
      description: 'BLOCKED_ADDRESS, DOWNLOAD_TIMEOUT, HTTP_ERROR, NETWORK_ERROR, TOO_LARGE, TOO_MANY_PIXELS, UNSUPPORTED_FORMAT or DECODE_ERROR',
    }),
    message: t.exposeString('message'),
  }),
});

export function outputUrlOf(ctx: GraphQLContext, image: ImageRow): string | null {
  return image.status === 'DONE' && image.outputKey ? ctx.services.storage.url(image.outputKey) : null;
}

export const ImageRef = builder.objectRef<ImageRow>('Image').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    position: t.exposeInt('position'),
    inputUrl: t.exposeString('inputUrl'),
    outputUrl: t.string({ nullable: true, resolve: (image, _args, ctx) => outputUrlOf(ctx, image) }),
    status: t.field({ type: ImageStatusEnum, resolve: (image) => image.status as (typeof IMAGE_STATUSES)[number] }),
    error: t.field({
      type: ImageErrorRef,
      nullable: true,
      description: 'Why it failed; on an image waiting for another attempt, the last attempt\'s error',
      resolve: (image) => (image.errorCode ? { code: image.errorCode, message: image.errorMessage ?? '' } : null),
    }),
    attempts: t.exposeInt('attempts'),
    inputBytes: t.exposeInt('inputBytes', { nullable: true }),
    outputBytes: t.exposeInt('outputBytes', { nullable: true }),
    width: t.exposeInt('width', { nullable: true, description: 'Of the output' }),
    height: t.exposeInt('height', { nullable: true, description: 'Of the output' }),
    format: t.exposeString('format', { nullable: true, description: 'Of the output: jpeg, webp, avif or png' }),
  }),
});

async function imagesOf(node: ProductNode, ctx: GraphQLContext): Promise<ImageRow[]> {
  if (!node.images) {
    node.images = (await imagesOfProducts(ctx.services.database.db, [node.row.id])).get(node.row.id) ?? [];
  }
  return node.images;
}

export const ProductRef = builder.objectRef<ProductNode>('Product').implement({
  fields: (t) => ({
    id: t.id({ resolve: (node) => node.row.id }),
    serialNumber: t.int({ resolve: (node) => node.row.serialNumber }),
    productName: t.string({ resolve: (node) => node.row.productName }),
    inputImageUrls: t.stringList({ resolve: async (node, _args, ctx) => (await imagesOf(node, ctx)).map((image) => image.inputUrl) }),
    outputImageUrls: t.field({
      type: ['String'],
      nullable: { list: false, items: true },
      description: 'Same order as inputImageUrls; null where that image has no output',
      resolve: async (node, _args, ctx) => (await imagesOf(node, ctx)).map((image) => outputUrlOf(ctx, image)),
    }),
    images: t.field({ type: [ImageRef], description: 'In input order', resolve: (node, _args, ctx) => imagesOf(node, ctx) }),
  }),
});

builder.queryField('product', (t) =>
  t.field({
    type: ProductRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const row = await getProduct(ctx.services.database.db, String(args.id));
      return row ? { row } : null;
    },
  }),
);
