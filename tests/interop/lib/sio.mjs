// socket.io-client helpers shared by the Socket.IO test files.

import assert from 'node:assert/strict';

import { once } from './util.mjs';

/** The transport set-ups every transport-dependent test runs under. */
export const MODES = {
  websocket: { transports: ['websocket'] },
  polling: { transports: ['polling'], upgrade: false },
  upgrade: {}, // client default: polling first, then upgrade to websocket
};

/**
 * Emits `event` with `args` and an ack callback; resolves with the array of
 * every argument the server acked with, rejects if no ack within `timeoutMs`.
 */
export function emitAck(socket, event, ...args) {
  return emitAckWithin(2_000, socket, event, ...args);
}

export function emitAckWithin(timeoutMs, socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(timeoutMs).emit(event, ...args, (err, ...res) => {
      if (err) reject(new Error(`no ack for "${event}" within ${timeoutMs} ms (${err.message})`));
      else resolve(res);
    });
  });
}

/** Like emitAck, for an ack with exactly one argument: resolves with it. */
export async function ack1(socket, event, ...args) {
  const res = await emitAck(socket, event, ...args);
  assert.equal(res.length, 1, `ack of "${event}" should have 1 argument: ${JSON.stringify(res)}`);
  return res[0];
}

/** Waits until the socket's Engine.IO connection is on the transport `mode` expects. */
export async function settleTransport(socket, mode) {
  const engine = socket.io.engine;
  if (mode === 'upgrade' && engine.transport.name !== 'websocket') {
    await once(engine, 'upgrade', 3_000, 'upgradeError');
  }
  const want = mode === 'polling' ? 'polling' : 'websocket';
  assert.equal(engine.transport.name, want, `transport in ${mode} mode`);
}
