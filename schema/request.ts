import type { RequestRow } from '../drizzle/schema.ts';
import { imagesOfProducts, listProducts } from '../src/db/products.ts';
import { isUuid, listRequests } from '../src/db/requests.ts';
import { cancelRequest, retryFailedImages, startRequest } from '../src/requests/lifecycle.ts';
import { progressOf, REQUEST_STATUSES, type RequestStatus } from '../src/statuses.ts';
import { builder } from './builder.ts';
import { connectionOf, decodeCursor, encodeCursor, isPosition, PageInfoRef, pageSize, type Connection } from './connection.ts';
import { withServiceErrors } from './errors.ts';
import { ProductRef, type ProductNode } from './product.ts';

export const RequestStatusEnum = builder.enumType('RequestStatus', { values: REQUEST_STATUSES });

export const ProgressRef = builder.objectRef<ReturnType<typeof progressOf>>('Progress').implement({
  fields: (t) => ({
    total: t.exposeInt('total'),
    done: t.exposeInt('done'),
    failed: t.exposeInt('failed'),
    cancelled: t.exposeInt('cancelled'),
    pending: t.exposeInt('pending', { description: 'Images not yet ended (PENDING or PROCESSING)' }),
  }),
});

const ProductEdgeRef = builder.objectRef<{ cursor: string; node: ProductNode }>('ProductEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: ProductRef, resolve: (edge) => edge.node }) }),
});
const ProductConnectionRef = builder.objectRef<Connection<ProductNode>>('ProductConnection').implement({
  fields: (t) => ({
    edges: t.field({ type: [ProductEdgeRef], resolve: (c) => c.edges }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
    totalCount: t.exposeInt('totalCount'),
  }),
});

export const RequestRef = builder.objectRef<RequestRow>('Request').implement({
  fields: (t) => ({
    id: t.exposeID('id', { description: 'A UUID; the same value is the REST request_id' }),
    status: t.field({ type: RequestStatusEnum, resolve: (request) => request.status as RequestStatus }),
    createdAt: t.field({ type: 'DateTime', resolve: (request) => request.createdAt }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (request) => request.startedAt }),
    completedAt: t.field({ type: 'DateTime', nullable: true, resolve: (request) => request.completedAt }),
    webhookUrl: t.exposeString('webhookUrl', { nullable: true }),
    progress: t.field({ type: ProgressRef, resolve: (request) => progressOf(request) }),
    products: t.field({
      type: ProductConnectionRef,
      description: 'In file order',
      args: { first: t.arg.int(), after: t.arg.string() },
      resolve: async (request, args, ctx) => {
        const first = pageSize(args.first);
        const after = decodeCursor('p', args.after, isPosition);
        const afterPosition = after === undefined ? undefined : Number(after);
        const db = ctx.services.database.db;
        const page = await listProducts(db, request.id, { first, afterPosition });
        const images = await imagesOfProducts(
          db,
          page.rows.map((row) => row.id),
        );
        const nodes = page.rows.map((row) => ({ row, images: images.get(row.id) ?? [] }));
        return connectionOf(nodes, (node) => encodeCursor('p', node.row.position), page.hasNextPage, page.totalCount, args.after ?? undefined);
      },
    }),
    errorsCsvUrl: t.string({
      nullable: true,
      description: 'Absolute URL of a CSV listing each failed image with its error code and message; set at the end when some failed',
      resolve: (request, _args, ctx) => (request.errorsCsvKey ? ctx.services.storage.url(request.errorsCsvKey) : null),
    }),
    inputBytes: t.field({ type: 'Float', description: 'Bytes downloaded for the images that are DONE', resolve: (request) => request.inputBytes }),
    outputBytes: t.field({ type: 'Float', description: 'Bytes written for the images that are DONE', resolve: (request) => request.outputBytes }),
    savedPercent: t.float({
      nullable: true,
      description: 'How much smaller the outputs are than their inputs, in percent (null before any image is DONE)',
      resolve: (request) => (request.inputBytes > 0 ? Math.round((1 - request.outputBytes / request.inputBytes) * 1000) / 10 : null),
    }),
    outputCsvUrl: t.string({
      nullable: true,
      description: 'Absolute URL, set once the request has ended',
      resolve: (request, _args, ctx) => (request.outputCsvKey ? ctx.services.storage.url(request.outputCsvKey) : null),
    }),
  }),
});

const RequestEdgeRef = builder.objectRef<{ cursor: string; node: RequestRow }>('RequestEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: RequestRef, resolve: (edge) => edge.node }) }),
});
const RequestConnectionRef = builder.objectRef<Connection<RequestRow>>('RequestConnection').implement({
  fields: (t) => ({
    edges: t.field({ type: [RequestEdgeRef], resolve: (c) => c.edges }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
    totalCount: t.exposeInt('totalCount'),
  }),
});

builder.queryFields((t) => ({
  request: t.field({
    type: RequestRef,
    nullable: true,
    description: 'null when unknown',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.services.requestCache.get(String(args.id))) ?? null,
  }),
  requests: t.field({
    type: RequestConnectionRef,
    description: 'Newest first',
    args: { first: t.arg.int(), after: t.arg.string(), status: t.arg({ type: RequestStatusEnum }) },
    resolve: async (_root, args, ctx) => {
      const first = pageSize(args.first);
      const after = decodeCursor('r', args.after, isUuid);
      const page = await listRequests(ctx.services.database.db, { first, after, status: args.status ?? undefined });
      return connectionOf(page.rows, (row) => encodeCursor('r', row.id), page.hasNextPage, page.totalCount, after);
    },
  }),
}));

builder.mutationFields((t) => ({
  processRequest: t.field({
    type: RequestRef,
    description: 'Starts a request uploaded with autoStart: false',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) =>
      withServiceErrors(async () => {
        const request = await startRequest(ctx.services, String(args.id));
        ctx.services.logger.info({ requestId: request.id, images: request.total }, 'request started');
        ctx.services.workQueued();
        return request;
      }),
  }),
  cancelRequest: t.field({
    type: RequestRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => withServiceErrors(() => cancelRequest(ctx.services, String(args.id))),
  }),
  retryFailedImages: t.field({
    type: RequestRef,
    args: { requestId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) =>
      withServiceErrors(async () => {
        const request = await retryFailedImages(ctx.services, String(args.requestId));
        ctx.services.workQueued();
        return request;
      }),
  }),
}));
