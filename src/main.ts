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
let url: string;
try {
  url = await app.start();
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw error;
  const where = `${config.host}:${config.port}`;
  console.error(
    code === 'EADDRINUSE'
      ? `Squeeze cannot start: ${where} is already in use by another program; set PORT to a free port (PORT=4001 npm start)`
      : code === 'EACCES'
        ? `Squeeze cannot start: this user may not listen on ${where}; set PORT to one above 1023`
        : `Squeeze cannot start: HOST ${config.host} is not an address of this machine`,
  );
  await app.stop().catch(() => {});
  process.exit(1);
}
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
