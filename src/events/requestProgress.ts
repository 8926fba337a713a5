import { Repeater } from 'graphql-yoga';
import type { RequestRow } from '../../drizzle/schema.ts';
import { getRequest } from '../db/requests.ts';
import { ServiceError } from '../errors.ts';
import { hasEnded, progressOf, type Progress, type RequestStatus } from '../statuses.ts';
import type { Services } from '../services.ts';
import type { ProgressEvent } from './progressBus.ts';

export interface ProgressUpdate {
  requestId: string;
  status: RequestStatus;
  progress: Progress;
  /** The image whose change caused this update; null on the first one. */
  imageId: string | null;
  version: number;
  /**
   * The NOTIFY this update came from: one object shared by every subscriber of the request, so
   * resolvers can read the image or request once per event instead of once per subscriber.
   */
  event?: ProgressEvent;
}

function updateOf(source: RequestRow | ProgressEvent, imageId: string | null): ProgressUpdate {
  const fromEvent = 'requestId' in source;
  return {
    requestId: fromEvent ? source.requestId : source.id,
    status: source.status as RequestStatus,
    progress: progressOf(source),
    imageId,
    version: source.version,
    ...(fromEvent ? { event: source } : {}),
  };
}

/**
 * The current state of a request, then one update per change, ending after the state whose status has
 * ended. Listening starts before the snapshot is read, so no change falls between the two; updates at
 * or below the version already sent are dropped. When the listen connection was lost and came back, the
 * state is read again, so a subscriber never waits for an end that already happened.
 * Unknown ids end the iterator with a NOT_FOUND ServiceError.
 */
export function requestProgress(
  services: Pick<Services, 'database' | 'bus'>,
  requestId: string,
  coalesceMs = 0,
): AsyncIterableIterator<ProgressUpdate> {
  return new Repeater<ProgressUpdate>(async (push, stop) => {
    let version = -1;
    let early: ProgressUpdate[] | undefined = [];
    // Coalescing under load: while a subscriber has not taken the previous update yet (a slow client,
    // a full socket), newer updates replace each other and the latest goes out once it has, at most one
    // per coalesceMs. A subscriber that keeps up gets every update at once. The final state is never
    // held back or replaced.
    let taking = false;
    let lastSentAt = 0;
    let held: ProgressUpdate | undefined;
    let timer: NodeJS.Timeout | undefined;
    const send = (update: ProgressUpdate) => {
      held = undefined;
      lastSentAt = Date.now();
      taking = true;
      push(update).then(
        () => {
          taking = false;
          if (held) flushHeld();
        },
        () => undefined,
      );
      if (hasEnded(update.status)) stop();
    };
    const flushHeld = () => {
      if (timer) return;
      const wait = lastSentAt + coalesceMs - Date.now();
      if (wait <= 0) return send(held!);
      timer = setTimeout(() => {
        timer = undefined;
        if (held && !taking) send(held);
      }, wait);
    };
    const deliver = (update: ProgressUpdate) => {
      if (update.version <= version) return;
      version = update.version;
      if (hasEnded(update.status)) {
        clearTimeout(timer);
        return send(update);
      }
      if (taking) held = update;
      else send(update);
    };
    const receive = (update: ProgressUpdate) => (early ? early.push(update) : deliver(update));
    const readState = async () => {
      const row = await getRequest(services.database.db, requestId);
      if (!row) throw new ServiceError('NOT_FOUND', `Request ${requestId} not found`);
      return updateOf(row, null);
    };
    const unsubscribe = services.bus.subscribe(
      requestId,
      (event) => receive(updateOf(event, event.imageId)),
      () => void readState().then(receive, () => undefined),
    );
    try {
      deliver(await readState());
      const buffered = early;
      early = undefined;
      buffered.forEach(deliver);
    } catch (error) {
      stop(error);
    }
    await stop;
    clearTimeout(timer);
    unsubscribe();
  });
}
