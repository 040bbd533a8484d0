// socket.io-client 4.8.4 against the relay, `switchboard serve`: join /
// leave / publish / presence / history over Socket.IO, recovery by
// {epoch, offset}, JWT auth, and the admin HTTP API.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { signJwt, tokenFor, unsignedToken } from './lib/jwt.mjs';
import { startServer } from './lib/server.mjs';
import { MODES, ack1 } from './lib/sio.mjs';
import { Clients, T, expectNone, once, payload, record, sioConnect, sioConnectError, sleep } from './lib/util.mjs';

const API_KEY = 'interop-api-key';
const JWT_SECRET = 'interop-jwt-secret';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

let roomSeq = 0;
/** A room name no other test uses (the relay keeps room logs across tests). */
const uniqueRoom = (what) => `${what}-${process.pid}-${++roomSeq}`;

function assertRecentTimestamp(at, what) {
  assert.match(at, RFC3339, `${what}: RFC 3339 timestamp`);
  const skew = Math.abs(Date.now() - Date.parse(at));
  assert.ok(skew < 60_000, `${what}: ${at} is ${skew} ms away from now`);
}

/** meta = {room, offset, epoch, from, at}: exactly these keys. */
function assertMeta(meta, expected) {
  assert.deepEqual(Object.keys(meta).sort(), ['at', 'epoch', 'from', 'offset', 'room'], `meta keys: ${JSON.stringify(meta)}`);
  const { at, ...rest } = meta;
  assert.deepEqual(rest, expected);
  assertRecentTimestamp(at, 'meta.at');
}

/** A log message = {offset, event, data, from, at}. */
function assertMessage(msg, expected) {
  assert.deepEqual(Object.keys(msg).sort(), ['at', 'data', 'event', 'from', 'offset'], `message keys: ${JSON.stringify(msg)}`);
  const { at, ...rest } = msg;
  assert.deepEqual(rest, expected);
  assertRecentTimestamp(at, 'message.at');
}

/** A published event arrives as (data, meta), maybe followed by the Socket.IO recovery offset. */
function delivery(args) {
  assert.ok(args.length === 2 || args.length === 3, `expected (data, meta[, offset]), got ${JSON.stringify(args)}`);
  if (args.length === 3) assert.equal(typeof args[2], 'string', 'a third argument can only be the recovery offset');
  return { data: args[0], meta: args[1] };
}

/** One presence entry = {user, info, connections, since}; compares user and connections. */
function summarizePresence(list) {
  assert.ok(Array.isArray(list), `presence is an array: ${JSON.stringify(list)}`);
  for (const entry of list) {
    assert.deepEqual(Object.keys(entry).sort(), ['connections', 'info', 'since', 'user'], `presence entry: ${JSON.stringify(entry)}`);
  }
  return list.map(({ user, connections }) => ({ user, connections })).sort((x, y) => (x.user < y.user ? -1 : 1));
}

/** Admin API call: resolves with {status, body (parsed JSON, or null when empty)}. */
async function api(srv, method, path, body, key = API_KEY) {
  const headers = {};
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${srv.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(3_000),
  });
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      assert.fail(`${method} ${path}: status ${res.status}, body is not JSON: ${text}`);
    }
  }
  return { status: res.status, body: json };
}

function assertApiError(res, status) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(typeof res.body?.error?.code, 'string', `error body: ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body.error.message, 'string', `error body: ${JSON.stringify(res.body)}`);
}

/** Asserts a join ack without `since`: fresh position, not recovered, no `missed`. */
function assertJoined(ack, offset) {
  assert.deepEqual(Object.keys(ack).sort(), ['epoch', 'offset', 'ok', 'recovered'], `join ack: ${JSON.stringify(ack)}`);
  assert.equal(ack.ok, true);
  assert.equal(typeof ack.epoch, 'string');
  assert.ok(ack.epoch.length > 0, 'epoch is not empty');
  assert.equal(ack.offset, offset);
  assert.equal(ack.recovered, false);
}

describe('relay (switchboard serve --jwt-secret)', () => {
  const clients = new Clients();
  let srv;

  before(async () => {
    srv = await startServer('switchboard', (port) => [
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--api-key',
      API_KEY,
      '--jwt-secret',
      JWT_SECRET,
    ]);
  }, { timeout: 15_000 });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await srv?.stop();
  });

  /** A connection as user `sub` (websocket only unless opts say otherwise). */
  const connectAs = (sub, opts = {}) =>
    sioConnect(clients, srv.url, { ...MODES.websocket, auth: { token: tokenFor(sub, JWT_SECRET) }, ...opts });

  describe('auth', () => {
    const refused = [
      ['no token', undefined],
      ['a token that is not a JWT', { token: 'not-a-jwt' }],
      ['a token signed with another secret', { token: tokenFor('mallory', 'other-secret') }],
      ['an unsigned (alg none) token', { token: unsignedToken('mallory') }],
      ['an expired token', { token: signJwt({ sub: 'mallory', iat: 1_000_000_000, exp: 1_000_003_600 }, JWT_SECRET) }],
    ];
    for (const [what, auth] of refused) {
      it(`${what} is refused with "unauthorized"`, T, async () => {
        const err = await sioConnectError(clients, srv.url, { ...MODES.websocket, ...(auth ? { auth } : {}) });
        assert.equal(err.message, 'unauthorized');
      });
    }

    it('a valid token connects as its sub', T, async () => {
      const s = await connectAs('auth-ok');
      const room = uniqueRoom('auth');
      assertJoined(await ack1(s, 'join', room), 0);
      const got = once(s, 'whoami');
      await ack1(s, 'publish', room, 'whoami', null);
      const { meta } = delivery(await got);
      assert.equal(meta.from, 'auth-ok');
    });
  });

  describe('join, publish, leave', () => {
    it('join of an empty room: ok, epoch, offset 0, not recovered, no missed', T, async () => {
      const s = await connectAs('join-empty');
      assertJoined(await ack1(s, 'join', uniqueRoom('empty')), 0);
      assertJoined(await ack1(s, 'join', uniqueRoom('empty'), {}), 0);
      assertJoined(await ack1(s, 'join', uniqueRoom('empty'), { presence: false }), 0);
    });

    it('publish reaches every member, sender included, with meta; ack {ok, offset}', T, async () => {
      const room = uniqueRoom('pub');
      const alice = await connectAs('pub-alice');
      const bob = await connectAs('pub-bob');
      const carol = await connectAs('pub-carol'); // not a member
      const joined = await ack1(alice, 'join', room);
      assertJoined(joined, 0);
      assert.equal((await ack1(bob, 'join', room)).epoch, joined.epoch, 'one epoch per room');

      const [ra, rb, rc] = [alice, bob, carol].map((s) => record(s, 'chat'));
      const data = { text: 'hi ✓', n: [1, 2, { deep: null }] };
      assert.deepEqual(await ack1(alice, 'publish', room, 'chat', data), { ok: true, offset: 1 });

      for (const [who, rec] of [['sender', ra], ['member', rb]]) {
        await rec.waitFor(1);
        const got = delivery(rec.events[0]);
        assert.deepEqual(got.data, data, `${who}: data`);
        assertMeta(got.meta, { room, offset: 1, epoch: joined.epoch, from: 'pub-alice' });
      }

      assert.deepEqual(await ack1(bob, 'publish', room, 'chat', 'second'), { ok: true, offset: 2 });
      await ra.waitFor(2);
      await rb.waitFor(2);
      const second = delivery(ra.events[1]);
      assert.equal(second.data, 'second');
      assertMeta(second.meta, { room, offset: 2, epoch: joined.epoch, from: 'pub-bob' });

      await sleep(150);
      assert.equal(ra.events.length, 2, 'no duplicates');
      assert.equal(rb.events.length, 2, 'no duplicates');
      assert.deepEqual(rc.events, [], 'a non-member gets nothing');
    });

    it('join of a room with history reports its last offset', T, async () => {
      const room = uniqueRoom('offset');
      const a = await connectAs('off-a');
      const j = await ack1(a, 'join', room);
      for (let i = 1; i <= 3; i++) assert.deepEqual(await ack1(a, 'publish', room, 'e', i), { ok: true, offset: i });
      const b = await connectAs('off-b');
      const jb = await ack1(b, 'join', room);
      assertJoined(jb, 3);
      assert.equal(jb.epoch, j.epoch);
    });

    it('leave acks {ok:true} and stops delivery', T, async () => {
      const room = uniqueRoom('leave');
      const a = await connectAs('leave-a');
      const b = await connectAs('leave-b');
      await ack1(a, 'join', room);
      await ack1(b, 'join', room);
      assert.deepEqual(await ack1(b, 'leave', room), { ok: true });
      const ra = record(a, 'after');
      const rb = record(b, 'after');
      await ack1(a, 'publish', room, 'after', 1);
      await ra.waitFor(1);
      await expectNone(rb, 200, 'b left');
    });

    it('an unknown event is answered with an unknown_event error', T, async () => {
      const s = await connectAs('unknown-ev');
      const res = await ack1(s, 'frobnicate', 'x', 1);
      assert.deepEqual(Object.keys(res).sort(), ['error', 'ok']);
      assert.equal(res.ok, false);
      assert.equal(res.error.code, 'unknown_event');
      assert.equal(typeof res.error.message, 'string');
      assert.equal(s.connected, true);
    });
  });

  describe('token expiry', () => {
    const shortToken = (sub, seconds) => {
      const now = Math.floor(Date.now() / 1000);
      return signJwt({ sub, iat: now, exp: now + seconds }, JWT_SECRET);
    };

    it('a client asked to refresh stays connected past the first expiry with a new token', { timeout: 10_000 }, async () => {
      const s = await sioConnect(clients, srv.url, { auth: { token: shortToken('exp-fresh', 2) } });
      await once(s, 'refresh', 3_000);
      const ok = await ack1(s, 'refresh', tokenFor('exp-fresh', JWT_SECRET));
      assert.equal(ok.ok, true);
      assert.equal(typeof ok.expires_at, 'number');
      const other = await ack1(s, 'refresh', tokenFor('someone-else', JWT_SECRET));
      assert.equal(other.error.code, 'unauthorized', 'a token for another user is refused');
      await sleep(3_500);
      assert.equal(s.connected, true);
    });

    it('without a refresh the connection ends at expiry: kick token_expired, no reconnection', { timeout: 10_000 }, async () => {
      const s = await sioConnect(clients, srv.url, { auth: { token: shortToken('exp-stale', 2) } });
      const kick = once(s, 'kick', 5_000);
      const gone = once(s, 'disconnect', 5_000);
      assert.deepEqual(payload(await kick, 1), [{ reason: 'token_expired', reconnect: false }]);
      assert.equal((await gone)[0], 'io server disconnect');
    });
  });

  describe('what a client may not do', () => {
    it('publishing a reserved event name is refused (it would make every member drop its connection)', T, async () => {
      const room = uniqueRoom('reserved');
      const s = await connectAs('reserved-pub');
      const other = await connectAs('reserved-member');
      await ack1(other, 'join', room);
      let dropped = false;
      other.on('disconnect', () => { dropped = true; });
      for (const event of ['disconnect', 'connect', 'connect_error', 'presence', 'kick', 'refresh']) {
        const res = await ack1(s, 'publish', room, event, {});
        assert.equal(res.ok, false, event);
        assert.equal(res.error.code, 'bad_request', event);
      }
      assert.equal((await api(srv, 'POST', '/api/v1/publish', { room, event: 'disconnect', data: 1 })).status, 400);
      await sleep(200);
      assert.equal(dropped, false, 'the member stayed connected');
      assert.deepEqual((await ack1(s, 'history', room, {})).messages, []);
    });

    it("another user's personal room is off limits: join, publish, history, presence", T, async () => {
      const mallory = await connectAs('pr-mallory');
      const bob = await connectAs('pr-bob');
      const secret = await api(srv, 'POST', '/api/v1/publish', { room: 'user:pr-bob', event: 'note', data: 'for bob' });
      assert.equal(secret.status, 200);
      for (const [event, args] of [
        ['join', ['user:pr-bob']],
        ['publish', ['user:pr-bob', 'note', 'spoofed']],
        ['history', ['user:pr-bob', {}]],
        ['presence', ['user:pr-bob']],
      ]) {
        const res = await ack1(mallory, event, ...args);
        assert.equal(res.ok, false, event);
        assert.equal(res.error.code, 'forbidden', event);
      }
      // Bob reads his own.
      const own = await ack1(bob, 'history', 'user:pr-bob', {});
      assert.deepEqual(own.messages.map((m) => m.data), ['for bob']);
    });
  });

  describe('presence', () => {
    it('presence list and join/leave events, per user, never about oneself', T, async () => {
      const room = uniqueRoom('presence');
      const alice1 = await connectAs('p-alice');
      const aliceEvents = record(alice1, 'presence');
      assertJoined(await ack1(alice1, 'join', room, { presence: true }), 0);

      const bob1 = await connectAs('p-bob');
      const bobEvents = record(bob1, 'presence'); // bob did not ask for presence events
      await ack1(bob1, 'join', room);
      await aliceEvents.waitFor(1);
      assert.deepEqual(payload(aliceEvents.events[0], 1), [{ room, user: 'p-bob', action: 'join' }]);

      // A second connection of a present user is no news; nor is one's own arrival.
      const bob2 = await connectAs('p-bob');
      await ack1(bob2, 'join', room);
      const alice2 = await connectAs('p-alice');
      const alice2Events = record(alice2, 'presence');
      await ack1(alice2, 'join', room, { presence: true });
      await sleep(200);
      assert.equal(aliceEvents.events.length, 1, `alice1 events: ${JSON.stringify(aliceEvents.events)}`);
      assert.deepEqual(alice2Events.events, [], 'alice2: nothing about herself, nothing for bob who was already in');

      assert.deepEqual(summarizePresence(await ack1(bob1, 'presence', room)), [
        { user: 'p-alice', connections: 2 },
        { user: 'p-bob', connections: 2 },
      ]);
      const viaApi = await api(srv, 'GET', `/api/v1/presence/${encodeURIComponent(room)}`);
      assert.equal(viaApi.status, 200);
      assert.deepEqual(summarizePresence(viaApi.body), [
        { user: 'p-alice', connections: 2 },
        { user: 'p-bob', connections: 2 },
      ]);

      // carol arrives: both alice connections are told, bob (no presence opt-in) is not.
      const carol = await connectAs('p-carol');
      await ack1(carol, 'join', room);
      await aliceEvents.waitFor(2);
      await alice2Events.waitFor(1);
      assert.deepEqual(payload(aliceEvents.events[1], 1), [{ room, user: 'p-carol', action: 'join' }]);
      assert.deepEqual(payload(alice2Events.events[0], 1), [{ room, user: 'p-carol', action: 'join' }]);

      // bob's second connection leaving is no news; his last one going away is a leave.
      assert.deepEqual(await ack1(bob2, 'leave', room), { ok: true });
      await sleep(200);
      assert.equal(aliceEvents.events.length, 2, `alice1 events: ${JSON.stringify(aliceEvents.events)}`);
      bob1.disconnect();
      await aliceEvents.waitFor(3);
      assert.deepEqual(payload(aliceEvents.events[2], 1), [{ room, user: 'p-bob', action: 'leave' }]);
      assert.deepEqual(bobEvents.events, [], 'bob never asked for presence events');

      assert.deepEqual(summarizePresence(await ack1(alice1, 'presence', room)), [
        { user: 'p-alice', connections: 2 },
        { user: 'p-carol', connections: 1 },
      ]);
    });

    it('presence of an empty room is []', T, async () => {
      const s = await connectAs('p-empty');
      assert.deepEqual(await ack1(s, 'presence', uniqueRoom('nobody')), []);
      const viaApi = await api(srv, 'GET', `/api/v1/presence/${encodeURIComponent(uniqueRoom('nobody'))}`);
      assert.equal(viaApi.status, 200);
      assert.deepEqual(viaApi.body, []);
    });
  });

  describe('history and recovery by {epoch, offset}', () => {
    it('history: oldest first; limit without since gives the newest', T, async () => {
      const room = uniqueRoom('history');
      const s = await connectAs('h-pub');
      const { epoch } = await ack1(s, 'join', room);
      assert.deepEqual(await ack1(s, 'history', room, {}), { epoch, messages: [] });
      for (let i = 1; i <= 5; i++) await ack1(s, 'publish', room, 'h', { i });

      const last2 = await ack1(s, 'history', room, { limit: 2 });
      assert.deepEqual(Object.keys(last2).sort(), ['epoch', 'messages']);
      assert.equal(last2.epoch, epoch);
      assert.equal(last2.messages.length, 2, JSON.stringify(last2.messages));
      last2.messages.forEach((m, k) => assertMessage(m, { offset: 4 + k, event: 'h', data: { i: 4 + k }, from: 'h-pub' }));

      const all = await ack1(s, 'history', room, {});
      assert.equal(all.epoch, epoch);
      assert.equal(all.messages.length, 5, JSON.stringify(all.messages));
      all.messages.forEach((m, k) => assertMessage(m, { offset: 1 + k, event: 'h', data: { i: 1 + k }, from: 'h-pub' }));
    });

    it('join with since {epoch, offset} recovers what came after; a wrong epoch does not', T, async () => {
      const room = uniqueRoom('since');
      const pub = await connectAs('s-pub');
      const { epoch } = await ack1(pub, 'join', room);
      for (let i = 1; i <= 3; i++) assert.deepEqual(await ack1(pub, 'publish', room, 'm', { i }), { ok: true, offset: i });

      const late = await connectAs('s-late');
      const r = await ack1(late, 'join', room, { since: { epoch, offset: 1 } });
      assert.deepEqual(Object.keys(r).sort(), ['epoch', 'missed', 'offset', 'ok', 'recovered'], JSON.stringify(r));
      assert.equal(r.ok, true);
      assert.equal(r.epoch, epoch);
      assert.equal(r.offset, 3);
      assert.equal(r.recovered, true);
      assert.deepEqual(r.missed.map((m) => m.offset), [2, 3]);
      r.missed.forEach((m, k) => assertMessage(m, { offset: 2 + k, event: 'm', data: { i: 2 + k }, from: 's-pub' }));

      // Up to date: recovered with nothing missed.
      const upToDate = await ack1(await connectAs('s-late2'), 'join', room, { since: { epoch, offset: 3 } });
      assert.deepEqual(upToDate, { ok: true, epoch, offset: 3, recovered: true, missed: [] });

      // Another epoch: not recovered, no `missed`, the current position instead.
      const other = await ack1(await connectAs('s-late3'), 'join', room, { since: { epoch: `not-${epoch}`, offset: 1 } });
      assert.deepEqual(other, { ok: true, epoch, offset: 3, recovered: false });

      // Recovered or not, the joiner is a member now.
      const live = once(late, 'm');
      await ack1(pub, 'publish', room, 'm', { i: 4 });
      const { data, meta } = delivery(await live);
      assert.deepEqual(data, { i: 4 });
      assert.equal(meta.offset, 4);
    });

    it('Socket.IO connection state recovery: publishes missed during a transport drop arrive once, in order', T, async () => {
      const room = uniqueRoom('sio-recover');
      const a = await connectAs('r-a', { reconnectionDelay: 400, reconnectionDelayMax: 400, randomizationFactor: 0 });
      const b = await connectAs('r-b');
      await ack1(a, 'join', room);
      const got = record(a, 'tick');

      await ack1(b, 'publish', room, 'tick', 0);
      await got.waitFor(1);
      assert.equal(got.events[0].length, 3, `(data, meta, recovery offset) expected: ${JSON.stringify(got.events[0])}`);
      assert.equal(typeof got.events[0][2], 'string');

      const idBefore = a.id;
      const down = once(a, 'disconnect', 2_000);
      a.io.engine.close();
      await down;
      for (let i = 1; i <= 3; i++) await ack1(b, 'publish', room, 'tick', i);
      assert.equal(a.connected, false, 'test timing: the publishes must happen while a is down');

      await once(a, 'connect', 3_000);
      assert.equal(a.recovered, true);
      assert.equal(a.id, idBefore);
      await got.waitFor(4, 2_000);
      await sleep(200);
      got.stop();
      const deliveries = got.events.map(delivery);
      assert.deepEqual(deliveries.map((d) => d.data), [0, 1, 2, 3], 'each publish exactly once, in order');
      assert.deepEqual(deliveries.map((d) => d.meta.offset), [1, 2, 3, 4]);

      // Still a member afterwards.
      const live = once(a, 'tick');
      await ack1(b, 'publish', room, 'tick', 4);
      assert.equal(delivery(await live).data, 4);
    });
  });

  describe('admin API', () => {
    for (const [what, key] of [
      ['no Authorization header', null],
      ['a wrong key', 'wrong-key'],
    ]) {
      it(`${what} gets 401 with a JSON error`, T, async () => {
        assertApiError(await api(srv, 'POST', '/api/v1/publish', { room: 'x', event: 'e', data: 1 }, key), 401);
        assertApiError(await api(srv, 'GET', '/api/v1/presence/x', undefined, key), 401);
        assertApiError(await api(srv, 'POST', '/api/v1/disconnect', { user: 'x', reconnect: false }, key), 401);
      });
    }

    it('users, rooms, sockets, history and stats', T, async () => {
      const room = uniqueRoom('admin-read');
      const s = await connectAs('ar-user');
      const joined = await ack1(s, 'join', room);
      for (let i = 1; i <= 3; i++) await ack1(s, 'publish', room, 'n', { i });

      const user = await api(srv, 'GET', '/api/v1/users/ar-user');
      assert.equal(user.status, 200);
      assert.deepEqual({ ...user.body, last_seen: typeof user.body.last_seen }, { user: 'ar-user', online: true, connections: 1, last_seen: 'string' });
      assertRecentTimestamp(user.body.last_seen, 'last_seen');
      assertApiError(await api(srv, 'GET', '/api/v1/users/nobody-at-all'), 404);

      const rooms = await api(srv, 'GET', '/api/v1/rooms');
      assert.equal(rooms.status, 200);
      const mine = rooms.body.find((r) => r.room === room);
      assert.deepEqual(mine, { room, epoch: joined.epoch, offset: 3, users: 1, connections: 1 });

      const sockets = await api(srv, 'GET', `/api/v1/sockets?room=${encodeURIComponent(room)}`);
      assert.equal(sockets.status, 200);
      assert.deepEqual(sockets.body, [{ socket: s.id, user: 'ar-user', protocol: 'socketio', transport: 'websocket' }]);

      const hist = await api(srv, 'GET', `/api/v1/history/${encodeURIComponent(room)}?since=1&limit=1`);
      assert.equal(hist.status, 200);
      assert.equal(hist.body.epoch, joined.epoch);
      assert.deepEqual(hist.body.messages.map((m) => m.offset), [2]);
      const newest = await api(srv, 'GET', `/api/v1/history/${encodeURIComponent(room)}?limit=2`);
      assert.deepEqual(newest.body.messages.map((m) => m.data.i), [2, 3]);
      assertApiError(await api(srv, 'GET', `/api/v1/history/${encodeURIComponent(room)}?since=-1`), 400);

      const stats = await api(srv, 'GET', '/api/v1/stats');
      assert.equal(stats.status, 200);
      assert.ok(stats.body.connections.total >= 1, JSON.stringify(stats.body));
      assert.ok(stats.body.rooms >= 1);
      assert.ok(stats.body.users_online >= 1);

      assertApiError(await api(srv, 'DELETE', '/api/v1/rooms'), 405);
      assertApiError(await api(srv, 'GET', '/api/v1/nothing-here'), 404);
    });

    it('the OpenAPI document is served without a key and lists every endpoint', T, async () => {
      const doc = await api(srv, 'GET', '/api/v1/openapi.json', undefined, null);
      assert.equal(doc.status, 200);
      assert.equal(doc.body.openapi, '3.0.3');
      assert.deepEqual(Object.keys(doc.body.paths).sort(), [
        '/disconnect', '/history/{room}', '/presence/{room}', '/publish', '/record', '/record/{id}', '/rooms', '/sockets',
        '/stats', '/users/{user}',
      ]);
    });

    it('publish: 200 {offset}; members get (data, meta) with from null', T, async () => {
      const room = uniqueRoom('admin-pub');
      const s = await connectAs('ap-member');
      const { epoch } = await ack1(s, 'join', room);
      const rec = record(s, 'announce');
      const res = await api(srv, 'POST', '/api/v1/publish', { room, event: 'announce', data: { text: 'from the backend' } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, { offset: 1 });
      await rec.waitFor(1);
      const { data, meta } = delivery(rec.events[0]);
      assert.deepEqual(data, { text: 'from the backend' });
      assertMeta(meta, { room, offset: 1, epoch, from: null });

      const again = await api(srv, 'POST', '/api/v1/publish', { room, event: 'announce', data: 2 });
      assert.deepEqual(again, { status: 200, body: { offset: 2 } });
    });

    it('publish to user:<id> reaches every connection of that user, and only those', T, async () => {
      const a1 = await connectAs('u-alice');
      const a2 = await connectAs('u-alice');
      const bob = await connectAs('u-bob');
      const [r1, r2, rb] = [a1, a2, bob].map((s) => record(s, 'note'));
      const res = await api(srv, 'POST', '/api/v1/publish', { room: 'user:u-alice', event: 'note', data: { x: 1 } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(typeof res.body.offset, 'number');
      for (const rec of [r1, r2]) {
        await rec.waitFor(1);
        const { data, meta } = delivery(rec.events[0]);
        assert.deepEqual(data, { x: 1 });
        assert.equal(meta.room, 'user:u-alice');
        assert.equal(meta.from, null);
        assert.equal(meta.offset, res.body.offset);
      }
      await expectNone(rb, 200, 'bob is another user');
    });

    /** Records kick / disconnect / connect on a socket, in order. */
    function lifecycle(s) {
      const log = [];
      s.on('kick', (...args) => log.push(['kick', ...payload(args, 1)]));
      s.on('disconnect', (reason) => log.push(['disconnect', reason]));
      s.on('connect', () => log.push(['connect']));
      return log;
    }

    it('disconnect {user, reconnect:false}: kick, then "io server disconnect", and no reconnection', T, async () => {
      const s = await connectAs('kick-no');
      const log = lifecycle(s);
      const down = once(s, 'disconnect', 3_000);
      const res = await api(srv, 'POST', '/api/v1/disconnect', { user: 'kick-no', reason: 'bye', reconnect: false });
      assert.deepEqual(res, { status: 200, body: { disconnected: 1 } });
      await down;
      await sleep(600); // well past the client's reconnection delay (100 ms)
      assert.deepEqual(log, [
        ['kick', { reason: 'bye', reconnect: false }],
        ['disconnect', 'io server disconnect'],
      ]);
      assert.equal(s.connected, false);
      assert.equal(s.active, false, 'the client does not try to reconnect');
    });

    it('disconnect {user, reconnect:true}: kick, then "transport close", then the client reconnects', T, async () => {
      const s = await connectAs('kick-yes', { randomizationFactor: 0 });
      const log = lifecycle(s);
      const back = once(s, 'connect', 3_000);
      const res = await api(srv, 'POST', '/api/v1/disconnect', { user: 'kick-yes', reason: 'maintenance', reconnect: true });
      assert.deepEqual(res, { status: 200, body: { disconnected: 1 } });
      await back;
      assert.deepEqual(log, [
        ['kick', { reason: 'maintenance', reconnect: true }],
        ['disconnect', 'transport close'],
        ['connect'],
      ]);
      const room = uniqueRoom('after-kick');
      assertJoined(await ack1(s, 'join', room), 0);
    });

    it('disconnect {socket}: only that connection of the user goes', T, async () => {
      const s1 = await connectAs('kick-one');
      const s2 = await connectAs('kick-one');
      const log1 = lifecycle(s1);
      const log2 = lifecycle(s2);
      const down = once(s1, 'disconnect', 3_000);
      const res = await api(srv, 'POST', '/api/v1/disconnect', { socket: s1.id, reason: 'just you', reconnect: false });
      assert.deepEqual(res, { status: 200, body: { disconnected: 1 } });
      await down;
      await sleep(200);
      assert.deepEqual(log1, [
        ['kick', { reason: 'just you', reconnect: false }],
        ['disconnect', 'io server disconnect'],
      ]);
      assert.deepEqual(log2, []);
      assert.equal(s2.connected, true);
    });

    it('disconnect {user} counts every connection of the user', T, async () => {
      const s1 = await connectAs('kick-all');
      const s2 = await connectAs('kick-all');
      const downs = [once(s1, 'disconnect', 3_000), once(s2, 'disconnect', 3_000)];
      const res = await api(srv, 'POST', '/api/v1/disconnect', { user: 'kick-all', reason: 'all', reconnect: false });
      assert.deepEqual(res, { status: 200, body: { disconnected: 2 } });
      const reasons = (await Promise.all(downs)).map(([reason]) => reason);
      assert.deepEqual(reasons, ['io server disconnect', 'io server disconnect']);
    });
  });
});

describe('relay without --jwt-secret (anonymous users)', () => {
  const clients = new Clients();
  let srv;

  before(async () => {
    srv = await startServer('switchboard', (port) => ['serve', '--listen', `127.0.0.1:${port}`, '--api-key', API_KEY]);
  }, { timeout: 15_000 });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await srv?.stop();
  });

  it('each connection is its own user with a generated id', T, async () => {
    const room = uniqueRoom('anon');
    const a = await sioConnect(clients, srv.url, MODES.websocket);
    const b = await sioConnect(clients, srv.url, MODES.websocket);
    for (const s of [a, b]) assertJoined(await ack1(s, 'join', room), 0);

    const fromOf = async (s, n) => {
      const got = once(b, 'hello');
      await ack1(s, 'publish', room, 'hello', n);
      const { data, meta } = delivery(await got);
      assert.equal(data, n);
      return meta.from;
    };
    const userA = await fromOf(a, 1);
    const userB = await fromOf(b, 2);
    for (const u of [userA, userB]) {
      assert.equal(typeof u, 'string');
      assert.ok(u.length > 0, 'a generated user id is not empty');
    }
    assert.notEqual(userA, userB);

    assert.deepEqual(summarizePresence(await ack1(a, 'presence', room)), [
      { user: userA, connections: 1 },
      { user: userB, connections: 1 },
    ].sort((x, y) => (x.user < y.user ? -1 : 1)));
  });

  it('a token is not required (nor refused) without --jwt-secret', T, async () => {
    const s = await sioConnect(clients, srv.url, { ...MODES.websocket, auth: { token: 'anything' } });
    assert.equal(s.connected, true);
  });
});
