import { getImages } from '../src/db/products.ts';
import { getRequest } from '../src/db/requests.ts';
import { requestProgress, type ProgressUpdate } from '../src/events/requestProgress.ts';
import { builder } from './builder.ts';
import { notFound } from './errors.ts';
import { ImageRef } from './product.ts';
import { ProgressRef, RequestRef, RequestStatusEnum } from './request.ts';

/**
 * Reads shared by every subscriber of one event: with 1 000 subscribers, reading the image (or the
 * request) per subscriber made 116 000 queries for 300 images and slowed processing 26-fold
 * (bench:progress); keyed by the event object, it is one read per event.
 */
const sharedReads = new WeakMap<object, Map<string, Promise<unknown>>>();
function once<T>(update: ProgressUpdate, what: string, load: () => Promise<T>): Promise<T> {
  if (!update.event) return load();
  let reads = sharedReads.get(update.event);
  if (!reads) sharedReads.set(update.event, (reads = new Map()));
  let read = reads.get(what) as Promise<T> | undefined;
  if (!read) reads.set(what, (read = load()));
  return read;
}

/**
 * The NOTIFY a requestProgress payload came from: one object for every subscriber it reached, so their
 * results can be shared (sharedSubscriptionResultsPlugin). A snapshot or a re-read state has none.
 */
export function sharedProgressEvent(payload: unknown): object | undefined {
  return typeof payload === 'object' && payload !== null && 'event' in payload ? (payload as ProgressUpdate).event : undefined;
}

const RequestProgressRef = builder.objectRef<ProgressUpdate>('RequestProgress').implement({
  fields: (t) => ({
    requestId: t.exposeID('requestId'),
    status: t.field({ type: RequestStatusEnum, resolve: (update) => update.status }),
    progress: t.field({ type: ProgressRef, resolve: (update) => update.progress }),
    request: t.field({
      type: RequestRef,
      resolve: async (update, _args, ctx) => {
        const request = await once(update, 'request', () => getRequest(ctx.services.database.db, update.requestId));
        if (!request) throw new Error(`Request ${update.requestId} vanished`);
        return request;
      },
    }),
    image: t.field({
      type: ImageRef,
      nullable: true,
      description: 'The image whose change caused this event; null on the first one',
      resolve: async (update, _args, ctx) => {
        const imageId = update.imageId;
        if (!imageId) return null;
        return once(update, 'image', async () => (await getImages(ctx.services.database.db, [imageId]))[0] ?? null);
      },
    }),
  }),
});

builder.subscriptionField('requestProgress', (t) =>
  t.field({
    type: RequestProgressRef,
    description: 'The current state first, then a new state as images finish; completes after the state whose status has ended.',
    args: { requestId: t.arg.id({ required: true }) },
    subscribe: async (_root, args, ctx) => {
      const requestId = String(args.requestId);
      // Checked before subscribing, so an unknown id is a GraphQL error with code NOT_FOUND.
      if (!(await getRequest(ctx.services.database.db, requestId))) throw notFound(`Request ${requestId} not found`);
      return requestProgress(ctx.services, requestId, ctx.services.config.progressCoalesceMs);
    },
    resolve: (update) => update,
  }),
);
