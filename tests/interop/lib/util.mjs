// Small helpers shared by the interop tests. They work with both Node's
// EventEmitter and the component-emitter used by engine.io-client and
// socket.io-client (both have on/off).

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';

export { sleep };

/** Per-test timeout for node:test (the brief: at most 5 s each). */
export const T = { timeout: 5_000 };

function off(emitter, event, fn) {
  if (typeof emitter.off === 'function') emitter.off(event, fn);
  else emitter.removeListener(event, fn);
}

/**
 * Resolves with the argument array of the next `event`, rejects after
 * `timeoutMs`. With `rejectOn` (an event name), that event rejects instead.
 */
export function once(emitter, event, timeoutMs = 2_000, rejectOn = null) {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      off(emitter, event, onEvent);
      if (rejectOn) off(emitter, rejectOn, onReject);
    };
    const onEvent = (...args) => {
      cleanup();
      resolve(args);
    };
    const onReject = (err) => {
      cleanup();
      reject(new Error(`got "${rejectOn}" while waiting for "${event}": ${err?.message ?? err}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    emitter.on(event, onEvent);
    if (rejectOn) emitter.on(rejectOn, onReject);
  });
}

/**
 * Records every `event` from now on. `rec.events` is the list of argument
 * arrays; `rec.waitFor(n, ms)` resolves with it once it holds `n` entries;
 * `rec.stop()` removes the listener.
 */
export function record(emitter, event) {
  const events = [];
  let waiter = null;
  const onEvent = (...args) => {
    events.push(args);
    if (waiter && events.length >= waiter.n) waiter.done();
  };
  emitter.on(event, onEvent);
  return {
    events,
    waitFor(n, timeoutMs = 2_000) {
      if (events.length >= n) return Promise.resolve(events);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiter = null;
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${n} "${event}" events; ` +
                `got ${events.length}: ${JSON.stringify(events)}`,
            ),
          );
        }, timeoutMs);
        waiter = {
          n,
          done() {
            clearTimeout(timer);
            waiter = null;
            resolve(events);
          },
        };
      });
    },
    stop() {
      off(emitter, event, onEvent);
    },
  };
}

/** Resolves with the argument arrays of the next `n` `event`s. */
export async function collect(emitter, event, n, timeoutMs = 2_000) {
  const rec = record(emitter, event);
  try {
    return (await rec.waitFor(n, timeoutMs)).slice(0, n);
  } finally {
    rec.stop();
  }
}

/** Waits `ms` and asserts that `rec` (from record()) saw nothing. */
export async function expectNone(rec, ms, what) {
  await sleep(ms);
  assert.deepEqual(rec.events, [], `${what ?? 'no event expected'}: got ${JSON.stringify(rec.events)}`);
}

/**
 * Arguments of a server-initiated event without ack: with connection state
 * recovery on, the server may append its offset (a string) as an extra last
 * argument. Returns the first `n` arguments after checking that anything
 * beyond them is exactly one string.
 */
export function payload(args, n = 1) {
  assert.ok(args.length === n || args.length === n + 1, `expected ${n} or ${n + 1} args, got ${JSON.stringify(args)}`);
  if (args.length === n + 1) {
    assert.equal(typeof args[n], 'string', `extra last argument must be the recovery offset (a string): ${JSON.stringify(args)}`);
  }
  return args.slice(0, n);
}

/** Tracks clients so that `closeAll()` (in afterEach/after) closes every one. */
export class Clients {
  constructor() {
    this.list = [];
  }

  add(client) {
    this.list.push(client);
    return client;
  }

  closeAll() {
    for (const c of this.list.splice(0)) {
      try {
        if (typeof c.disconnect === 'function') c.disconnect(); // socket.io-client Socket
        else c.close(); // engine.io-client Socket, Manager-less things
      } catch {
        // already closed
      }
    }
  }
}

/**
 * A socket.io-client socket on its own connection (forceNew), resolved once
 * connected; rejects with the connect_error. Reconnection delays are short so
 * that tests which drop the transport stay fast.
 */
export async function sioConnect(clients, url, opts = {}, timeoutMs = 3_000) {
  const socket = clients.add(
    io(url, {
      forceNew: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      timeout: 3_000,
      ...opts,
    }),
  );
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms connecting to ${url}`));
    }, timeoutMs);
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
  return socket;
}

/** Resolves with the connect_error (an Error with .data) of a refused socket.io connection. */
export async function sioConnectError(clients, url, opts = {}, timeoutMs = 3_000) {
  const socket = clients.add(io(url, { forceNew: true, reconnection: false, ...opts }));
  const [err] = await once(socket, 'connect_error', timeoutMs, 'connect');
  return err;
}
