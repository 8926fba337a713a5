import { createHmac } from 'node:crypto';
import { parseWebhookSecret } from '../config.ts';

/** Standard Webhooks headers for one attempt: `v1,` + base64 HMAC-SHA256 of "id.timestamp.body". */
export function webhookHeaders(
  id: string,
  timestampSeconds: number,
  body: string,
  secret: string | undefined,
): Record<string, string> {
  const headers: Record<string, string> = { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds) };
  if (secret) {
    const signature = createHmac('sha256', parseWebhookSecret(secret)).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
    headers['webhook-signature'] = `v1,${signature}`;
  }
  return headers;
}
