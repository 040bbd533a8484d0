// socket.io-client 4.8.4 against examples/interop-server: Socket.IO v5 at
// /socket.io/ with pingInterval 300, pingTimeout 200, maxHttpBufferSize
// 10000, connectTimeout 1000 and connection state recovery.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Socket as EngineSocket } from 'engine.io-client';
import { Manager } from 'socket.io-client';

import { startServer } from './lib/server.mjs';
import { MODES, ack1, emitAck, emitAckWithin, settleTransport } from './lib/sio.mjs';
import { Clients, T, expectNone, once, payload, record, sioConnect, sioConnectError, sleep } from './lib/util.mjs';

const NESTED_BINARY = () => ({
  x: { y: Buffer.from([9, 8]) },
  arr: [Buffer.from([7])],
});

const SERVER_BINARY = () => ({
  a: { b: Buffer.from([1, 2, 3]) },
  list: [Buffer.from([4]), 'x', Buffer.from([5, 6])],
});

describe('socket.io-client ↔ interop-server', () => {
  const clients = new Clients();
  let srv;
  let url;

  before(async () => {
    srv = await startServer('examples/interop-server', (port) => [String(port)]);
    url = srv.url;
  }, { timeout: 15_000 });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await srv?.stop();
  });

  for (const [mode, opts] of Object.entries(MODES)) {
    describe(`transport: ${mode}`, () => {
      it('connects with the configured heartbeat and payload limits', T, async () => {
        const s = await sioConnect(clients, url, opts);
        assert.equal(typeof s.id, 'string');
        assert.equal(s.recovered, false, 'a first connection is not a recovery');
        const engine = s.io.engine;
        // Handshake values as engine.io-client 6.6.8 stores them.
        assert.equal(engine._pingInterval, 300);
        assert.equal(engine._pingTimeout, 200);
        assert.equal(engine._maxPayload, 10_000);
        await settleTransport(s, mode);
      });

      it('echo with ack returns every argument unchanged', T, async () => {
        const s = await sioConnect(clients, url, opts);
        await settleTransport(s, mode);
        const args = [1, 'two', { three: [3, { four: null }] }, true, 'héllo ✓ 😀', [], {}];
        assert.deepEqual(await emitAck(s, 'echo', ...args), args);
        assert.deepEqual(await emitAck(s, 'echo'), [], 'no arguments in, none out');
      });

      it('echo without ack answers with an echo-back event', T, async () => {
        const s = await sioConnect(clients, url, opts);
        await settleTransport(s, mode);
        const back = once(s, 'echo-back');
        s.emit('echo', 'a', 2, { b: [3] });
        assert.deepEqual(payload(await back, 3), ['a', 2, { b: [3] }]);
      });

      it('binary nested in objects survives a round trip both ways', T, async () => {
        const s = await sioConnect(clients, url, opts);
        await settleTransport(s, mode);
        assert.deepEqual(await emitAck(s, 'echo', NESTED_BINARY()), [NESTED_BINARY()]);

        const several = [Buffer.from([1]), { deep: { er: [Buffer.from([2, 3]), Buffer.alloc(0)] } }, 'text', Buffer.alloc(5_000, 0xab)];
        assert.deepEqual(await emitAck(s, 'echo', ...several), several);

        const back = once(s, 'echo-back');
        s.emit('echo', NESTED_BINARY(), Buffer.from([0xff]));
        assert.deepEqual(payload(await back, 2), [NESTED_BINARY(), Buffer.from([0xff])]);
      });

      it('binary event: the server acks and pushes an object with nested Buffers', T, async () => {
        const s = await sioConnect(clients, url, opts);
        await settleTransport(s, mode);
        const push = once(s, 'binary-push');
        assert.deepEqual(await emitAck(s, 'binary'), [SERVER_BINARY()]);
        assert.deepEqual(payload(await push, 1), [SERVER_BINARY()]);
      });
    });
  }

  describe('namespaces', () => {
    it('a dynamic namespace /dyn-abc says hello with its name and echoes', T, async () => {
      const s = clients.add(new Manager(url, { reconnection: false }).socket('/dyn-abc'));
      const hello = once(s, 'hello', 3_000, 'connect_error');
      await once(s, 'connect', 3_000, 'connect_error');
      assert.deepEqual(payload(await hello, 1), ['/dyn-abc']);
      assert.deepEqual(await emitAck(s, 'echo', 'in dyn', Buffer.from([1])), ['in dyn', Buffer.from([1])]);
    });

    it('namespaces are multiplexed over one connection', T, async () => {
      const manager = new Manager(url, { reconnection: false });
      const root = clients.add(manager.socket('/'));
      const dyn = clients.add(manager.socket('/dyn-x1'));
      const hello = once(dyn, 'hello', 3_000);
      await Promise.all([once(root, 'connect', 3_000, 'connect_error'), once(dyn, 'connect', 3_000, 'connect_error')]);
      assert.equal(root.io, dyn.io, 'one manager');
      assert.deepEqual(payload(await hello, 1), ['/dyn-x1']);
      assert.notEqual(root.id, dyn.id, 'one socket id per namespace');
      assert.deepEqual(await emitAck(root, 'echo', 'root'), ['root']);
      assert.deepEqual(await emitAck(dyn, 'echo', 'dyn'), ['dyn']);
    });

    for (const nsp of ['/nope', '/dyn-ABC', '/dyn-', '/dyn-abc/extra']) {
      it(`unknown namespace ${nsp} is refused with "Invalid namespace"`, T, async () => {
        const err = await sioConnectError(clients, url + nsp);
        assert.equal(err.message, 'Invalid namespace');
      });
    }

    it('a refused namespace leaves the other namespaces on the connection working', T, async () => {
      const manager = new Manager(url, { reconnection: false });
      const root = clients.add(manager.socket('/'));
      await once(root, 'connect', 3_000, 'connect_error');
      const bad = clients.add(manager.socket('/nope'));
      const [err] = await once(bad, 'connect_error', 3_000, 'connect');
      assert.equal(err.message, 'Invalid namespace');
      const priv = clients.add(manager.socket('/private', { auth: { token: 'wrong' } }));
      const [err2] = await once(priv, 'connect_error', 3_000, 'connect');
      assert.equal(err2.message, 'unauthorized');
      assert.equal(root.connected, true);
      assert.deepEqual(await emitAck(root, 'echo', 'still fine'), ['still fine']);
    });
  });

  describe('middleware (/private)', () => {
    for (const [what, auth] of [
      ['no auth', undefined],
      ['a wrong token', { token: 'guess' }],
    ]) {
      it(`${what} is refused with "unauthorized" and data {code:401, reason:"bad token"}`, T, async () => {
        const err = await sioConnectError(clients, `${url}/private`, auth ? { auth } : {});
        assert.equal(err.message, 'unauthorized');
        assert.deepEqual(err.data, { code: 401, reason: 'bad token' });
      });
    }

    it('the right token connects and gets welcome("private")', T, async () => {
      const s = clients.add(new Manager(url, { reconnection: false }).socket('/private', { auth: { token: 'secret' } }));
      const welcome = once(s, 'welcome', 3_000, 'connect_error');
      await once(s, 'connect', 3_000, 'connect_error');
      assert.deepEqual(payload(await welcome, 1), ['private']);
    });
  });

  describe('acknowledgements', () => {
    it('client → server: the client times out an event the server never acks', T, async () => {
      const s = await sioConnect(clients, url);
      const t0 = Date.now();
      await assert.rejects(s.timeout(300).emitWithAck('no-such-event', 1), { message: 'operation has timed out' });
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= 250 && elapsed < 1_500, `timed out after ${elapsed} ms`);
      assert.equal(s.connected, true, 'an unknown event does not disconnect');
      assert.deepEqual(await emitAck(s, 'echo', 'after'), ['after']);
    });

    it('server → client: the client answers and the server gets every argument', T, async () => {
      const s = await sioConnect(clients, url);
      const asked = [];
      s.on('q-answer', (...args) => {
        asked.push(args);
        args.at(-1)('answer', 42, { n: [1] });
      });
      const res = await ack1(s, 'ask', 'q-answer', 1_000);
      assert.deepEqual(res, { ok: true, reply: ['answer', 42, { n: [1] }] });
      assert.equal(asked.length, 1);
      assert.equal(asked[0].length, 2, 'args: "question" and the ack callback');
      assert.equal(asked[0][0], 'question');
      assert.equal(typeof asked[0][1], 'function');
    });

    it('server → client: a client that never answers makes the server time out', T, async () => {
      const s = await sioConnect(clients, url);
      let asked = 0;
      s.on('q-silent', (...args) => {
        asked++;
        setTimeout(() => args.at(-1)('too late'), 400); // after the server gave up
      });
      const t0 = Date.now();
      const res = await ack1(s, 'ask', 'q-silent', 200);
      const elapsed = Date.now() - t0;
      assert.deepEqual(res, { ok: false, error: 'timeout' });
      assert.equal(asked, 1);
      assert.ok(elapsed >= 150 && elapsed < 1_500, `server timed out after ${elapsed} ms`);
      await sleep(400); // the late answer reaches the server and must be ignored
      assert.equal(s.connected, true);
      assert.deepEqual(await emitAck(s, 'echo', 'after'), ['after']);
    });

    it('ask-room collects the answer of every member', T, async () => {
      const room = 'ask-all';
      const a = await sioConnect(clients, url);
      const b = await sioConnect(clients, url);
      const c = await sioConnect(clients, url); // not in the room
      for (const s of [a, b]) assert.equal(await ack1(s, 'join', room), 'joined');
      // Each member answers "from <name>" and notes how many arguments it got.
      const argCounts = { a: [], b: [], c: [] };
      for (const [name, s] of Object.entries({ a, b, c })) {
        s.on('question', (...args) => {
          argCounts[name].push(args.length);
          args.at(-1)(`from ${name}`);
        });
      }
      const res = await ack1(a, 'ask-room', room, 1_000);
      assert.equal(res.ok, true, JSON.stringify(res));
      assert.deepEqual({ ...res, replies: [...res.replies].sort() }, { ok: true, replies: ['from a', 'from b'] });
      assert.deepEqual(argCounts, { a: [1], b: [1], c: [] }, '"question" carries only the ack callback, and goes to members only');
    });

    it('ask-room times out with the answers it did get', T, async () => {
      const room = 'ask-some';
      const a = await sioConnect(clients, url);
      const b = await sioConnect(clients, url);
      for (const s of [a, b]) assert.equal(await ack1(s, 'join', room), 'joined');
      a.on('question', (...args) => args.at(-1)('from a'));
      b.on('question', () => {}); // never answers
      const t0 = Date.now();
      const res = await ack1(a, 'ask-room', room, 200);
      const elapsed = Date.now() - t0;
      assert.deepEqual(res, { ok: false, error: 'timeout', replies: ['from a'] });
      assert.ok(elapsed >= 150 && elapsed < 1_500, `server timed out after ${elapsed} ms`);
    });
  });

  describe('rooms', () => {
    it('broadcast reaches every member, sender included, with a recovery offset; not others', T, async () => {
      const room = 'bc-all';
      const [a, b, c] = [await sioConnect(clients, url), await sioConnect(clients, url), await sioConnect(clients, url)];
      for (const s of [a, b]) assert.equal(await ack1(s, 'join', room), 'joined');
      const [ra, rb, rc] = [a, b, c].map((s) => record(s, 'news'));
      assert.equal(await ack1(a, 'broadcast', room, 'news', { n: 1, list: ['x', null] }), true);
      await ra.waitFor(1);
      await rb.waitFor(1);
      await sleep(150); // room for duplicates or strays
      for (const [name, rec] of [['sender', ra], ['other member', rb]]) {
        assert.equal(rec.events.length, 1, `${name} gets it exactly once`);
        const args = rec.events[0];
        assert.equal(args.length, 2, `${name}: data plus the recovery offset: ${JSON.stringify(args)}`);
        assert.deepEqual(args[0], { n: 1, list: ['x', null] });
        assert.equal(typeof args[1], 'string', 'the offset is a string');
      }
      assert.equal(ra.events[0][1], rb.events[0][1], 'one broadcast, one offset');
      assert.deepEqual(rc.events, [], 'a non-member gets nothing');
    });

    it('a broadcast to several rooms reaches each socket once, except the excluded rooms', T, async () => {
      const [r1, r2, r3] = ['multi-1', 'multi-2', 'multi-3'];
      const [a, b, c, d] = [
        await sioConnect(clients, url), await sioConnect(clients, url),
        await sioConnect(clients, url), await sioConnect(clients, url),
      ];
      const joins = [[a, r1], [b, r1], [b, r2], [c, r2], [c, r3], [d, r3]];
      for (const [s, room] of joins) assert.equal(await ack1(s, 'join', room), 'joined');
      const recs = [a, b, c, d].map((s) => record(s, 'multi'));
      // b is in two of the rooms, d only in its own id's room.
      assert.equal(await ack1(a, 'broadcast-rooms', [r1, r2, d.id], [], 'multi', 1), 4);
      for (const rec of recs) await rec.waitFor(1);
      // c is in r2 but also in the excluded r3; d is addressed by its id but in r3.
      assert.equal(await ack1(a, 'broadcast-rooms', [r1, r2, d.id], [r3], 'multi', 2), 2);
      await recs[0].waitFor(2);
      await recs[1].waitFor(2);
      await sleep(150); // room for duplicates or strays
      const got = recs.map((rec) => rec.events.map((args) => args[0]));
      assert.deepEqual(got, [[1, 2], [1, 2], [1], [1]]);
    });

    it('broadcast keeps Buffers nested in the data', T, async () => {
      const room = 'bc-binary';
      const a = await sioConnect(clients, url);
      const b = await sioConnect(clients, url);
      for (const s of [a, b]) assert.equal(await ack1(s, 'join', room), 'joined');
      const got = once(b, 'blob');
      assert.equal(await ack1(a, 'broadcast', room, 'blob', NESTED_BINARY()), true);
      assert.deepEqual(payload(await got, 1), [NESTED_BINARY()]);
    });

    it('broadcast-others reaches the other members but not the sender', T, async () => {
      const room = 'bc-others';
      const a = await sioConnect(clients, url);
      const b = await sioConnect(clients, url);
      for (const s of [a, b]) assert.equal(await ack1(s, 'join', room), 'joined');
      const ra = record(a, 'gossip');
      const rb = record(b, 'gossip');
      assert.equal(await ack1(a, 'broadcast-others', room, 'gossip', 'psst'), true);
      await rb.waitFor(1);
      assert.deepEqual(payload(rb.events[0], 1), ['psst']);
      await expectNone(ra, 200, 'the sender is excluded');
      assert.equal(rb.events.length, 1);
    });

    it('leave stops delivery', T, async () => {
      const room = 'bc-leave';
      const a = await sioConnect(clients, url);
      const b = await sioConnect(clients, url);
      for (const s of [a, b]) assert.equal(await ack1(s, 'join', room), 'joined');
      assert.equal(await ack1(b, 'leave', room), 'left');
      const ra = record(a, 'news');
      const rb = record(b, 'news');
      assert.equal(await ack1(a, 'broadcast', room, 'news', 'only a'), true);
      await ra.waitFor(1);
      assert.deepEqual(payload(ra.events[0], 1), ['only a']);
      await expectNone(rb, 200, 'b left the room');
    });

    it('rooms lists the socket id and the joined rooms, sorted', T, async () => {
      const s = await sioConnect(clients, url);
      assert.deepEqual(await ack1(s, 'rooms'), [s.id]);
      assert.equal(await ack1(s, 'join', 'r-b'), 'joined');
      assert.equal(await ack1(s, 'join', 'r-a'), 'joined');
      assert.deepEqual(await ack1(s, 'rooms'), [s.id, 'r-a', 'r-b'].sort());
      assert.equal(await ack1(s, 'leave', 'r-b'), 'left');
      assert.deepEqual(await ack1(s, 'rooms'), [s.id, 'r-a'].sort());
    });
  });

  describe('heartbeat and timeouts', () => {
    it('a socket stays connected across several heartbeats', T, async () => {
      const s = await sioConnect(clients, url, MODES.websocket);
      const pings = record(s.io.engine, 'ping');
      const disconnects = record(s, 'disconnect');
      await sleep(1_000);
      pings.stop();
      assert.deepEqual(disconnects.events, []);
      assert.ok(pings.events.length >= 2, `pings in 1 s: ${pings.events.length}`);
      assert.deepEqual(await emitAck(s, 'echo', 1), [1]);
    });

    it('an Engine.IO connection that never connects a namespace is closed after connectTimeout (1 s)', T, async () => {
      const e = clients.add(new EngineSocket(url, { path: '/socket.io/', transports: ['websocket'] }));
      await once(e, 'open', 3_000, 'error');
      const t0 = Date.now();
      const [reason] = await once(e, 'close', 3_000);
      const elapsed = Date.now() - t0;
      assert.equal(reason, 'transport close');
      assert.ok(elapsed >= 800 && elapsed < 2_500, `closed after ${elapsed} ms`);
    });
  });

  for (const mode of ['websocket', 'polling']) {
    describe(`connection state recovery (${mode})`, () => {
      it('after a transport drop the socket is recovered with every missed broadcast, once, in order', T, async () => {
        const room = `recover-${mode}`;
        const a = await sioConnect(clients, url, {
          ...MODES[mode],
          reconnectionDelay: 400,
          reconnectionDelayMax: 400,
          randomizationFactor: 0,
        });
        const b = await sioConnect(clients, url, MODES.websocket);
        assert.equal(a.recovered, false);
        assert.equal(await ack1(a, 'join', room), 'joined');
        const got = record(a, 'numbered');

        // One broadcast before the drop gives the client an offset to resume from.
        assert.equal(await ack1(b, 'broadcast', room, 'numbered', 0), true);
        await got.waitFor(1);

        const idBefore = a.id;
        const down = once(a, 'disconnect', 2_000);
        a.io.engine.close();
        await down;

        for (let i = 1; i <= 5; i++) {
          assert.equal(await ack1(b, 'broadcast', room, 'numbered', i), true);
        }
        assert.equal(a.connected, false, 'test timing: the 5 broadcasts must happen while a is down');

        await once(a, 'connect', 3_000);
        assert.equal(a.recovered, true, 'socket.recovered');
        assert.equal(a.id, idBefore, 'a recovered socket keeps its id');

        await got.waitFor(6, 2_000);
        await sleep(200); // duplicates would show up here
        got.stop();
        assert.deepEqual(
          got.events.map((args) => args[0]),
          [0, 1, 2, 3, 4, 5],
          'each broadcast exactly once, in order',
        );
        for (const args of got.events) {
          assert.equal(args.length, 2, `data + offset: ${JSON.stringify(args)}`);
          assert.equal(typeof args[1], 'string');
        }
        assert.equal(new Set(got.events.map((args) => args[1])).size, 6, 'distinct offsets');

        const rooms = await ack1(a, 'rooms');
        assert.ok(rooms.includes(room), `rooms after recovery: ${JSON.stringify(rooms)}`);
        assert.ok(rooms.includes(a.id), `rooms after recovery: ${JSON.stringify(rooms)}`);

        // Live delivery goes on after the recovery.
        const live = once(a, 'numbered');
        assert.equal(await ack1(b, 'broadcast', room, 'numbered', 6), true);
        assert.equal((await live)[0], 6);
      });
    });
  }

  it('a socket that disconnected on purpose is not recovered', T, async () => {
    const room = 'no-recover';
    const a = await sioConnect(clients, url, MODES.websocket);
    const b = await sioConnect(clients, url, MODES.websocket);
    assert.equal(await ack1(a, 'join', room), 'joined');
    const first = once(a, 'numbered');
    assert.equal(await ack1(b, 'broadcast', room, 'numbered', 0), true);
    await first;
    const idBefore = a.id;
    a.disconnect();
    a.connect();
    await once(a, 'connect', 3_000);
    assert.equal(a.recovered, false);
    assert.notEqual(a.id, idBefore);
    assert.deepEqual(await ack1(a, 'rooms'), [a.id]);
  });

  for (const mode of ['websocket', 'polling']) {
    it(`${mode}: a message over maxHttpBufferSize (10000 bytes) closes the connection`, T, async () => {
      const s = await sioConnect(clients, url, { ...MODES[mode], reconnection: false });
      const justUnder = 'u'.repeat(9_000);
      assert.deepEqual(await emitAck(s, 'echo', justUnder), [justUnder], 'a 9000-byte message is fine');

      const down = once(s, 'disconnect', 3_000);
      let acked = false;
      s.emit('echo', 'o'.repeat(12_000), () => {
        acked = true;
      });
      const [reason] = await down;
      assert.ok(['transport close', 'transport error'].includes(reason), `disconnect reason: ${reason}`);
      assert.equal(acked, false, 'the oversized message is not processed');
    });
  }

  it('the server is still healthy', T, async () => {
    const s = await sioConnect(clients, url);
    assert.deepEqual(await emitAckWithin(1_000, s, 'echo', 'ok'), ['ok']);
  });
});
