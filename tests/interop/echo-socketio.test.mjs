// socket.io-client 4.8.4 against `switchboard echo --socketio`: a WebSocket
// opened directly is served by the echo reactor itself; long-polling and the
// upgrade from it are handed to the Engine.IO server on tokio. Both must look
// the same to the official client. Heartbeat: pingInterval 1 s.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { startServer } from './lib/server.mjs';
import { MODES, emitAck, settleTransport } from './lib/sio.mjs';
import { Clients, T, once, sioConnect, sioConnectError, sleep } from './lib/util.mjs';

const SLOW = { timeout: 10_000 };

/** A raw WebSocket to the Engine.IO endpoint; resolves with it and its messages. */
async function rawEngine(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
  const messages = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    messages.push(isBinary ? data : data.toString());
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  await once(ws, 'open');
  const next = async (timeoutMs = 2_000) => {
    const deadline = Date.now() + timeoutMs;
    while (messages.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no message in time');
      await Promise.race([new Promise((r) => waiters.push(r)), sleep(left)]);
    }
    return messages.shift();
  };
  return { ws, next, closed };
}

describe('socket.io-client ↔ switchboard echo --socketio', () => {
  const clients = new Clients();
  let srv;

  before(async () => {
    srv = await startServer('switchboard', (port) => [
      'echo', '--socketio', '--listen', `127.0.0.1:${port}`, '--workers', '1', '--ping-interval', '1',
    ]);
  }, { timeout: 15_000 });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await srv?.stop();
  });

  for (const [mode, opts] of Object.entries(MODES)) {
    describe(`transport: ${mode}`, () => {
      it('acks echo with its arguments, binary included', T, async () => {
        const s = await sioConnect(clients, srv.url, opts);
        await settleTransport(s, mode);
        assert.equal(s.io.engine._pingInterval, 1000);
        const args = [1, 'two', { three: [3, { four: null }] }, true, 'héllo ✓ 😀', [], {}];
        assert.deepEqual(await emitAck(s, 'echo', ...args), args);
        assert.deepEqual(await emitAck(s, 'echo'), []);
        const bin = { a: Buffer.from([1, 2, 3]), list: [Buffer.from([4]), 'x'] };
        const [back] = await emitAck(s, 'echo', bin);
        assert.deepEqual(Buffer.from(back.a), Buffer.from([1, 2, 3]));
        assert.deepEqual(Buffer.from(back.list[0]), Buffer.from([4]));
        assert.equal(back.list[1], 'x');
      });

      it('emits an echo without an ack back as echo', T, async () => {
        const s = await sioConnect(clients, srv.url, opts);
        await settleTransport(s, mode);
        const got = once(s, 'echo');
        s.emit('echo', 'x', { y: 2 });
        assert.deepEqual(await got, ['x', { y: 2 }]);
      });

      it('stays connected across heartbeats', SLOW, async () => {
        const s = await sioConnect(clients, srv.url, opts);
        await settleTransport(s, mode);
        const id = s.id;
        let pings = 0;
        s.io.engine.on('ping', () => pings++);
        await sleep(3_500);
        assert.ok(pings >= 2, `pinged ${pings} times in 3.5 s at a 1 s interval`);
        assert.equal(s.connected, true);
        assert.equal(s.id, id, 'the same session');
        assert.deepEqual(await emitAck(s, 'echo', 'still'), ['still']);
      });
    });
  }

  it('refuses an unknown namespace', T, async () => {
    const err = await sioConnectError(clients, `${srv.url}/nope`, MODES.websocket);
    assert.equal(err.message, 'Invalid namespace');
  });

  it('many clients on the reactor each get their own answers', T, async () => {
    const sockets = await Promise.all(
      Array.from({ length: 20 }, () => sioConnect(clients, srv.url, MODES.websocket)),
    );
    const answers = await Promise.all(sockets.map((s, i) => emitAck(s, 'echo', i, `c${i}`)));
    answers.forEach((a, i) => assert.deepEqual(a, [i, `c${i}`]));
  });

  it('opens with the Engine.IO handshake and closes a session that never pongs', SLOW, async () => {
    const { ws, next, closed } = await rawEngine(srv.port);
    const open = await next();
    assert.match(open, /^0\{/);
    const hs = JSON.parse(open.slice(1));
    assert.match(hs.sid, /^[A-Za-z0-9_-]{20}$/);
    assert.deepEqual(hs.upgrades, []);
    assert.equal(hs.pingInterval, 1000);
    ws.send('40');
    assert.match(await next(), /^40\{"sid":"[A-Za-z0-9_-]{20}"\}$/);
    assert.equal(await next(2_500), '2', 'a ping within one interval');
    // No pong: the session is dropped by the next sweep.
    const code = await Promise.race([closed, sleep(4_000).then(() => 'open')]);
    assert.notEqual(code, 'open', 'still open 4 s after an unanswered ping');
  });

  it('drops a session that breaks the protocol', T, async () => {
    const { ws, next, closed } = await rawEngine(srv.port);
    await next();
    ws.send('4not a packet');
    const code = await Promise.race([closed, sleep(2_000).then(() => 'open')]);
    assert.notEqual(code, 'open');
  });

  it('answers a bad Engine.IO request as the Engine.IO server does', T, async () => {
    const res = await fetch(`${srv.url}/socket.io/?EIO=3&transport=polling`);
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(typeof body.code, 'number');
    const other = await fetch(`${srv.url}/elsewhere`);
    assert.equal(other.status, 404);
  });
});
