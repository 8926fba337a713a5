import pino, { type Logger } from 'pino';

/**
 * Structured JSON logs (one object a line, with requestId / imageId fields where they apply). In a
 * terminal, unless NODE_ENV is production, the same records are printed readably by pino-pretty.
 */
export function createLogger(level: string): Logger {
  const pretty = process.env.NODE_ENV !== 'production' && process.stdout.isTTY;
  return pino({
    level,
    base: { service: 'squeeze' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } } : {}),
  });
}
