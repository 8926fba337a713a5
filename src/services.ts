import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { Database } from './db/client.ts';
import type { ProgressBus } from './events/progressBus.ts';
import type { AddressGuard } from './net/addressGuard.ts';
import type { RequestCache } from './requests/requestCache.ts';
import type { Storage } from './storage/localStorage.ts';

/** What resolvers and routes reach the system through; built once by buildApp and passed in. */
export interface Services {
  config: Config;
  database: Database;
  storage: Storage;
  bus: ProgressBus;
  guard: AddressGuard;
  logger: Logger;
  /** Request rows for the request(id) query, dropped on every change (see RequestCache). */
  requestCache: RequestCache;
  /** Called after new claimable images were committed: the local runner claims them at once. */
  workQueued(): void;
  /** Called after a webhook delivery was queued: the local sender sends it at once. */
  webhooksQueued(): void;
}

export interface GraphQLContext {
  services: Services;
}
