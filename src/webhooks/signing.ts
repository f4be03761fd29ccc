// Standard Webhooks 1.0 ("Verifying webhook authenticity"): symmetric signatures, HMAC-SHA256 over
// `${webhook-id}.${webhook-timestamp}.${body}`, keyed with the base64-decoded part of a `whsec_` secret, sent
// as `v1,<base64>`; several space-separated signatures while a secret rotates.
import { createHmac, randomBytes } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';
// The spec asks for 24 to 64 random bytes; 32 is HMAC-SHA256's block-size sweet spot.
const SECRET_BYTES = 32;
const SECRET_SHAPE = /^whsec_([A-Za-z0-9+/]{32,88}={0,2})$/;

export function newSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(SECRET_BYTES).toString('base64')}`;
}

function keyOf(secret: string): Buffer {
  const base64 = SECRET_SHAPE.exec(secret)?.[1];
  const key = base64 === undefined ? undefined : Buffer.from(base64, 'base64');
  if (!key || key.length < 24 || key.length > 64) throw new Error('not a whsec_ secret of 24 to 64 bytes');
  return key;
}

/** One `v1,<base64>` signature. `messageId` and `timestampSeconds` never contain a full stop (spec). */
export function sign(secret: string, messageId: string, timestampSeconds: number, body: string): string {
  if (messageId.includes('.') || !Number.isSafeInteger(timestampSeconds))
    throw new Error('webhook id or timestamp would make the signed content ambiguous');
  const mac = createHmac('sha256', keyOf(secret))
    .update(`${messageId}.${timestampSeconds}.${body}`)
    .digest('base64');
  return `v1,${mac}`;
}

/** The three Standard Webhooks headers for one attempt, signed with every secret still in force. */
export function webhookHeaders(
  secrets: readonly string[],
  messageId: string,
  at: Date,
  body: string,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  if (secrets.length === 0) throw new Error('a webhook needs at least one signing secret');
  const timestampSeconds = Math.floor(at.getTime() / 1000);
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': secrets.map((secret) => sign(secret, messageId, timestampSeconds, body)).join(' '),
  };
}
