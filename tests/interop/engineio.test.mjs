// engine.io-client 6.6.8 against examples/engineio-test-server: an Engine.IO
// v4 echo server at /engine.io/ (pingInterval 300 ms, pingTimeout 200 ms,
// maxPayload 1e6, CORS *).

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'engine.io-client';

import { startServer } from './lib/server.mjs';
import { Clients, T, collect, once, record, sleep } from './lib/util.mjs';

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const MAX_PAYLOAD = 1_000_000;

const MODES = {
  websocket: { transports: ['websocket'] },
  polling: { transports: ['polling'], upgrade: false },
};

const startEcho = () => startServer('examples/engineio-test-server', (port) => [String(port)]);

/** An engine.io-client socket, resolved once open, with its handshake data. */
async function open(clients, url, opts = {}) {
  const socket = clients.add(new Socket(url, { path: '/engine.io/', ...opts }));
  let handshake = null;
  socket.once('handshake', (data) => {
    handshake = data;
  });
  await once(socket, 'open', 3_000, 'error');
  return { socket, handshake };
}

/** Sends each message and resolves with the echoes once as many have arrived. */
async function echoAll(socket, messages, timeoutMs = 3_000) {
  const echoes = collect(socket, 'message', messages.length, timeoutMs);
  for (const m of messages) socket.send(m);
  return (await echoes).map(([data]) => data);
}

function assertSameMessages(got, sent) {
  assert.equal(got.length, sent.length, 'number of echoes');
  for (let i = 0; i < sent.length; i++) {
    if (Buffer.isBuffer(sent[i])) {
      assert.ok(Buffer.isBuffer(got[i]), `echo #${i} must be binary (Buffer), got ${typeof got[i]}`);
      assert.ok(got[i].equals(sent[i]), `echo #${i}: binary content differs`);
    } else {
      assert.equal(typeof got[i], 'string', `echo #${i} must be text`);
      assert.equal(got[i], sent[i], `echo #${i}`);
    }
  }
}

describe('engine.io-client ↔ engineio-test-server', () => {
  const clients = new Clients();
  let srv;

  before(async () => {
    srv = await startEcho();
  }, { timeout: 15_000 });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await srv?.stop();
  });

  for (const [mode, opts] of Object.entries(MODES)) {
    describe(`${mode} only`, () => {
      it('handshake carries the configured heartbeat and payload limits', T, async () => {
        const { socket, handshake } = await open(clients, srv.url, opts);
        assert.equal(socket.transport.name, mode);
        assert.equal(typeof handshake.sid, 'string');
        assert.ok(handshake.sid.length > 0, 'sid is not empty');
        assert.equal(handshake.pingInterval, PING_INTERVAL);
        assert.equal(handshake.pingTimeout, PING_TIMEOUT);
        assert.equal(handshake.maxPayload, MAX_PAYLOAD);
        assert.deepEqual(handshake.upgrades, mode === 'polling' ? ['websocket'] : []);
      });

      it('echoes text messages unchanged', T, async () => {
        const { socket } = await open(clients, srv.url, opts);
        const sent = ['hello', 'héllo ✓ 😀', 'line\nbreak and "quotes" and \\ backslash', '{"json":[1,2]}', '4'];
        assertSameMessages(await echoAll(socket, sent), sent);
      });

      it('echoes binary messages unchanged', T, async () => {
        const { socket } = await open(clients, srv.url, opts);
        const sent = [Buffer.from([1, 2, 3]), Buffer.from([0, 255, 0x1e, 0x34, 0x62]), Buffer.from('binary, not text')];
        assertSameMessages(await echoAll(socket, sent), sent);
      });

      it('echoes a burst of mixed text and binary messages in order', T, async () => {
        const { socket } = await open(clients, srv.url, opts);
        const sent = [];
        for (let i = 0; i < 40; i++) sent.push(i % 2 ? Buffer.from([i, i + 1, i + 2]) : `message ${i}`);
        assertSameMessages(await echoAll(socket, sent), sent);
      });

      it('echoes 200 kB text and binary messages', T, async () => {
        const { socket } = await open(clients, srv.url, opts);
        const bin = Buffer.alloc(200_000);
        for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) & 0xff;
        const sent = ['é'.repeat(100_000), bin];
        assertSameMessages(await echoAll(socket, sent), sent);
      });

      it('stays open across heartbeats, receiving a ping every pingInterval', T, async () => {
        const { socket } = await open(clients, srv.url, opts);
        const pings = record(socket, 'ping');
        const closes = record(socket, 'close');
        await sleep(4 * PING_INTERVAL);
        pings.stop();
        closes.stop();
        assert.deepEqual(closes.events, [], 'no close while the client answers pings');
        assert.ok(pings.events.length >= 3, `expected ≥ 3 pings in ${4 * PING_INTERVAL} ms, got ${pings.events.length}`);
        assertSameMessages(await echoAll(socket, ['still here']), ['still here']);
      });
    });
  }

  describe('polling → websocket upgrade', () => {
    it('upgrades, and loses or reorders no message sent around the upgrade', T, async () => {
      const socket = clients.add(new Socket(srv.url, { path: '/engine.io/' }));
      const messages = record(socket, 'message');
      const upgraded = once(socket, 'upgrade', 3_000, 'upgradeError');
      await once(socket, 'open', 3_000, 'error');
      assert.equal(socket.transport.name, 'polling', 'opens on polling first');

      const before = ['before 1', Buffer.from([1, 1]), 'before 2'];
      for (const m of before) socket.send(m);

      const [transport] = await upgraded;
      assert.equal(transport.name, 'websocket');
      assert.equal(socket.transport.name, 'websocket');

      const afterUpgrade = ['after 1', Buffer.from([2, 2]), 'é after 2'];
      for (const m of afterUpgrade) socket.send(m);

      const sent = [...before, ...afterUpgrade];
      await messages.waitFor(sent.length, 3_000);
      messages.stop();
      assertSameMessages(messages.events.map(([d]) => d), sent);

      // And it keeps working on the new transport.
      const more = ['on websocket', Buffer.from([3, 4, 5])];
      assertSameMessages(await echoAll(socket, more), more);
      assert.equal(socket.transport.name, 'websocket');
    });
  });

  describe('raw HTTP', () => {
    it('polling handshake over plain HTTP, with CORS *', T, async () => {
      const res = await fetch(`${srv.url}/engine.io/?EIO=4&transport=polling`, {
        headers: { Origin: 'http://example.com' },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      const body = await res.text();
      assert.equal(body[0], '0', `open packet expected, got ${JSON.stringify(body)}`);
      const open = JSON.parse(body.slice(1));
      assert.equal(typeof open.sid, 'string');
      assert.deepEqual(open.upgrades, ['websocket']);
      assert.equal(open.pingInterval, PING_INTERVAL);
      assert.equal(open.pingTimeout, PING_TIMEOUT);
      assert.equal(open.maxPayload, MAX_PAYLOAD);
    });

    it('CORS preflight allows any origin', T, async () => {
      const res = await fetch(`${srv.url}/engine.io/?EIO=4&transport=polling`, {
        method: 'OPTIONS',
        headers: {
          Origin: 'http://example.com',
          'Access-Control-Request-Method': 'POST',
        },
      });
      await res.arrayBuffer();
      assert.ok(res.status === 200 || res.status === 204, `preflight status ${res.status}`);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
    });

    it('unknown sid gets 400', T, async () => {
      const res = await fetch(`${srv.url}/engine.io/?EIO=4&transport=polling&sid=no-such-session`);
      await res.arrayBuffer();
      assert.equal(res.status, 400);
    });

    it('Engine.IO v3 (EIO=3) is refused with 400', T, async () => {
      const res = await fetch(`${srv.url}/engine.io/?EIO=3&transport=polling`);
      await res.arrayBuffer();
      assert.equal(res.status, 400);
    });
  });
});

describe('engine.io heartbeat', () => {
  const clients = new Clients();
  let srv;

  before(async () => {
    srv = await startEcho();
  }, { timeout: 15_000 });
  afterEach(() => {
    srv?.resume();
    clients.closeAll();
  });
  after(async () => {
    clients.closeAll();
    await srv?.stop();
  });

  for (const [mode, opts] of Object.entries(MODES)) {
    it(`${mode}: a client that stops answering pings is dropped by the server`, T, async () => {
      const socket = clients.add(new Socket(srv.url, { path: '/engine.io/', ...opts }));
      // engine.io-client answers a ping with this._sendPacket("pong") in
      // Socket#_onPacket; an own property on the instance shadows the method.
      let pongsSwallowed = 0;
      const sendPacket = socket._sendPacket.bind(socket);
      socket._sendPacket = (type, ...rest) => {
        if (type === 'pong') {
          pongsSwallowed++;
          return undefined;
        }
        return sendPacket(type, ...rest);
      };
      await once(socket, 'open', 3_000, 'error');
      const sid = socket.id;
      const t0 = Date.now();
      const [reason] = await once(socket, 'close', 2_000);
      const elapsed = Date.now() - t0;

      assert.ok(pongsSwallowed >= 1, 'the server pinged and the pong was swallowed');
      assert.equal(reason, 'transport close', 'the server closes the transport (not a client-side ping timeout)');
      assert.ok(elapsed >= PING_INTERVAL - 50, `dropped after ${elapsed} ms, before the first ping could go unanswered`);
      assert.ok(elapsed < 2_000, `dropped after ${elapsed} ms`);

      if (mode === 'polling') {
        const res = await fetch(`${srv.url}/engine.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
        await res.arrayBuffer();
        assert.equal(res.status, 400, 'the dropped session is gone');
      }
    });

    it(`${mode}: the client notices a server that stops pinging (ping timeout)`, T, async () => {
      const { socket } = await open(clients, srv.url, opts);
      await once(socket, 'ping', 2_000); // the client's ping timer is running
      srv.pause();
      try {
        const t0 = Date.now();
        const [reason] = await once(socket, 'close', 2_500);
        const elapsed = Date.now() - t0;
        assert.equal(reason, 'ping timeout');
        assert.ok(elapsed < 2_000, `noticed after ${elapsed} ms`);
      } finally {
        srv.resume();
      }
    });
  }

  it('the server keeps serving after being paused and resumed', T, async () => {
    const { socket } = await open(clients, srv.url, MODES.websocket);
    assertSameMessages(await echoAll(socket, ['alive']), ['alive']);
  });
});
