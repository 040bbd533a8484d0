// socket.io-client 4.8.4 against examples/chat.rs: the embedding example
// (Socket.IO mounted in an application's own hyper router) works as its
// documentation says.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { startServer } from './lib/server.mjs';
import { ack1 } from './lib/sio.mjs';
import { Clients, T, expectNone, once, payload, record, sioConnect, sioConnectError } from './lib/util.mjs';

describe('examples/chat', () => {
  const clients = new Clients();
  let srv;

  before(async () => {
    srv = await startServer('examples/chat', (port) => [`127.0.0.1:${port}`]);
  }, { timeout: 15_000 });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await srv?.stop();
  });

  it('the application keeps its own routes next to /socket.io/', T, async () => {
    const health = await fetch(`${srv.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok\n');
    assert.equal((await fetch(`${srv.url}/elsewhere`)).status, 404);
  });

  it('a connection without a name is refused with data', T, async () => {
    const err = await sioConnectError(clients, srv.url);
    assert.equal(err.message, 'a name is required');
    assert.deepEqual(err.data, { hint: 'connect with auth: {name}' });
  });

  it('two users chat in a room; typing reaches only the other', T, async () => {
    const ada = await sioConnect(clients, srv.url, { auth: { name: 'ada' } });
    const bob = await sioConnect(clients, srv.url, { auth: { name: 'bob' } });
    assert.deepEqual(await ack1(ada, 'join', 'lobby'), { room: 'lobby', members: ['ada'] });
    const joined = once(ada, 'joined');
    const bobJoin = await ack1(bob, 'join', 'lobby');
    assert.deepEqual(bobJoin.members.sort(), ['ada', 'bob']);
    assert.deepEqual(payload(await joined, 1), [{ name: 'bob' }]);

    const adaSaid = record(ada, 'said');
    const bobSaid = record(bob, 'said');
    assert.deepEqual(await ack1(bob, 'say', { room: 'lobby', text: 'hello' }), { ok: true });
    await adaSaid.waitFor(1);
    await bobSaid.waitFor(1);
    for (const rec of [adaSaid, bobSaid]) {
      const [msg] = payload(rec.events[0], 1);
      assert.equal(msg.name, 'bob');
      assert.equal(msg.text, 'hello');
      assert.equal(typeof msg.at, 'number');
    }

    const adaTyping = record(ada, 'typing');
    const bobTyping = record(bob, 'typing');
    bob.emit('typing', 'lobby');
    await adaTyping.waitFor(1);
    assert.deepEqual(payload(adaTyping.events[0], 1), [{ name: 'bob' }]);
    await expectNone(bobTyping, 200, 'the typist is not told about itself');
  });
});
