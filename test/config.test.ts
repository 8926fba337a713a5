import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

/** The message a bad setting stops the service with (src/main.ts prints it). */
function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('settings', () => {
  it('starts with the documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 4000,
      host: '127.0.0.1',
      databaseUrl: undefined,
      maxImageBytes: 26_214_400,
      maxImagePixels: 100_000_000,
      connectTimeoutMs: 5_000,
      downloadTimeoutMs: 30_000,
      leaseMs: 60_000,
      maxAttempts: 4,
      imageThreadNice: 10,
      jpegOptimizeCoding: true,
      progressCoalesceMs: 100,
    });
    expect(config.webhookRetryDelays[0]).toBe(0);
  });

  it('reads JPEG_OPTIMIZE_CODING as a switch and refuses anything else', () => {
    expect(loadConfig({ JPEG_OPTIMIZE_CODING: 'false' }).jpegOptimizeCoding).toBe(false);
    expect(loadConfig({ JPEG_OPTIMIZE_CODING: ' 0 ' }).jpegOptimizeCoding).toBe(false);
    expect(loadConfig({ JPEG_OPTIMIZE_CODING: 'TRUE' }).jpegOptimizeCoding).toBe(true);
    expect(refusal({ JPEG_OPTIMIZE_CODING: 'fast' })).toBe('JPEG_OPTIMIZE_CODING must be true or false, got "fast"');
  });

  it('names the setting and the accepted range when a number is not one', () => {
    expect(refusal({ PORT: 'http' })).toBe('PORT must be an integer from 0 to 65535, got "http"');
    expect(refusal({ MAX_ATTEMPTS: '2.5' })).toMatch(/^MAX_ATTEMPTS must be an integer from 1 to 100/);
    expect(refusal({ WORKER_THREADS: '0' })).toMatch(/^WORKER_THREADS must be an integer from 1 /);
  });

  it('refuses durations a Node timer cannot wait for, instead of timing out after 1 ms', () => {
    // setTimeout(fn, 3e9) fires after 1 ms: every download would have failed with DOWNLOAD_TIMEOUT.
    const least = { CONNECT_TIMEOUT_MS: 1, DOWNLOAD_TIMEOUT_MS: 1, LEASE_MS: 1000, SHUTDOWN_GRACE_MS: 0, WEBHOOK_TIMEOUT_MS: 1, UPLOAD_TIMEOUT_MS: 1000 };
    for (const [name, min] of Object.entries(least)) {
      expect(refusal({ [name]: '3000000000' })).toBe(
        `${name} must be an integer from ${min} to 2147483647 (Node's longest timer, about 24.8 days), got "3000000000"`,
      );
    }
    expect(loadConfig({ DOWNLOAD_TIMEOUT_MS: '2147483647' }).downloadTimeoutMs).toBe(2_147_483_647);
  });

  it('refuses an image size limit no buffer can hold', () => {
    expect(refusal({ MAX_IMAGE_BYTES: '5000000000' })).toBe(
      'MAX_IMAGE_BYTES must be an integer from 1 to 1073741824 (1 GiB: each image in flight is held whole in memory), got "5000000000"',
    );
    expect(loadConfig({ MAX_IMAGE_BYTES: '1073741824' }).maxImageBytes).toBe(1024 ** 3);
  });

  it('names the other settings it refuses', () => {
    expect(refusal({ ROLE: 'both' })).toBe('ROLE must be api, worker or all, got "both"');
    expect(refusal({ DATABASE_URL: 'mysql://localhost/db' })).toBe('DATABASE_URL must be a postgres:// or postgresql:// URL');
    expect(refusal({ ALLOW_PRIVATE_NETWORKS: 'maybe' })).toBe('ALLOW_PRIVATE_NETWORKS must be true or false, got "maybe"');
    expect(refusal({ PUBLIC_URL: 'ftp://example.com' })).toBe('PUBLIC_URL must be an absolute http(s) URL, got "ftp://example.com"');
    expect(refusal({ WEBHOOK_RETRY_DELAYS: '0,5,soon' })).toBe('WEBHOOK_RETRY_DELAYS must be comma-separated whole seconds, got "0,5,soon"');
    expect(refusal({ WEBHOOK_SECRET: 'secret' })).toMatch(/^WEBHOOK_SECRET must be "whsec_"/);
  });
});
