import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per app (tests run several apps in one process); served at /metrics. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'squeeze_process_' });
  return {
    registry,
    imagesFinished: new Counter({
      name: 'squeeze_images_finished_total',
      help: 'Images that ended, by status and error code',
      labelNames: ['status', 'code'] as const,
      registers: [registry],
    }),
    imageRetries: new Counter({
      name: 'squeeze_image_retries_total',
      help: 'Transient image failures put back in line, by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    downloadSeconds: new Histogram({
      name: 'squeeze_download_seconds',
      help: 'Image download time',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    compressSeconds: new Histogram({
      name: 'squeeze_compress_seconds',
      help: 'Compression time in the pool, queue wait and writing the output included',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    requestSeconds: new Histogram({
      name: 'squeeze_request_seconds',
      help: 'From upload (or start) to end of a request, by final status',
      labelNames: ['status'] as const,
      buckets: [1, 5, 15, 60, 300, 900, 3600, 14400],
      registers: [registry],
    }),
    gauge(name: string, help: string, collect: () => Promise<number> | number) {
      return new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          this.set(await collect());
        },
      });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
