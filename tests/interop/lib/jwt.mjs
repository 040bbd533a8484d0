// HS256 JSON Web Tokens with node:crypto (no JWT library needed for tests).

import { createHmac } from 'node:crypto';

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A compact JWS: base64url(header).base64url(payload).base64url(HMAC-SHA256). */
export function signJwt(payload, secret, header = { alg: 'HS256', typ: 'JWT' }) {
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  const signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

/** A token for user `sub`, valid for an hour. */
export function tokenFor(sub, secret) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ sub, iat: now, exp: now + 3600 }, secret);
}

/** An unsigned token (alg "none"): a server must refuse it. */
export function unsignedToken(sub) {
  const now = Math.floor(Date.now() / 1000);
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub, iat: now, exp: now + 3600 })}.`;
}
