import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './logger.ts';

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`Squeeze cannot start: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

const logger = createLogger(config.logLevel);
const app = await buildApp({ config, logger });
const url = await app.start();
logger.info(
  { url, publicUrl: config.publicUrl, database: config.databaseUrl ? 'postgres' : `pglite (${config.dataDir})`, role: config.role, threads: config.workerThreads },
  `Squeeze is listening: GraphiQL at ${config.publicUrl}/graphql`,
);

let stopping = false;
function stop(reason: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ reason }, 'stopping: finishing in-flight images, then closing');
  app.stop().then(
    () => process.exit(0),
    (error) => {
      logger.error({ err: error }, 'stopping failed');
      process.exit(1);
    },
  );
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => stop(signal));
// Started by src/start.mjs as its child (see there): the channel closes when that process is gone.
if (process.send) process.on('disconnect', () => stop('the process that started this one is gone'));
