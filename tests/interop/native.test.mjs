// The native protocol of `switchboard serve` at /ws, driven by a plain
// WebSocket client (the `ws` package, as a browser's bare WebSocket would):
// welcome, join/leave/publish/presence/history with request ids, text ping,
// server pings and dead-peer detection, the hub shared with Socket.IO, and
// the admin API's kick.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { signJwt, tokenFor } from './lib/jwt.mjs';
import { startServer } from './lib/server.mjs';
import { ack1 } from './lib/sio.mjs';
import { Clients, T, once, payload, sioConnect, sleep } from './lib/util.mjs';

const API_KEY = 'native-api-key';
const SECRET = 'native-jwt-secret';
const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;

let seq = 0;
const uniqueRoom = (what) => `${what}-${process.pid}-${++seq}`;

/** A native client: JSON requests with ids, pushed messages recorded. */
class Native {
  static async open(url, user, opts = {}, jwt = user === null ? null : tokenFor(user, SECRET)) {
    const token = jwt === null ? '' : `?token=${jwt}`;
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws${token}`, opts);
    const client = new Native(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    client.welcome = await client.next((m) => m.op === 'welcome');
    return client;
  }

  constructor(ws) {
    this.ws = ws;
    this.received = [];
    this.waiters = [];
    this.nextId = 1;
    ws.on('message', (data, binary) => {
      const text = data.toString();
      const msg = binary ? { binary: true } : text === 'pong' ? { pong: true } : JSON.parse(text);
      this.received.push(msg);
      this.waiters = this.waiters.filter((w) => !w(msg));
    });
  }

  /** The first message (already received or coming) that `pred` accepts. */
  next(pred, timeoutMs = 2_000) {
    const found = this.received.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for a message')), timeoutMs);
      this.waiters.push((m) => {
        if (!pred(m)) return false;
        clearTimeout(timer);
        resolve(m);
        return true;
      });
    });
  }

  request(op, fields = {}) {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ op, id, ...fields }));
    return this.next((m) => m.op === undefined && m.id === id);
  }

  messages(room) {
    return this.received.filter((m) => m.op === 'message' && m.room === room);
  }

  close() {
    this.ws.terminate();
  }
}

describe('native protocol (switchboard serve /ws)', () => {
  const clients = new Clients();
  const natives = [];
  let srv;

  const open = async (user, opts) => {
    const c = await Native.open(srv.url, user, opts);
    natives.push(c);
    return c;
  };

  before(async () => {
    srv = await startServer('switchboard', (port) => [
      'serve', '--listen', `127.0.0.1:${port}`, '--api-key', API_KEY, '--jwt-secret', SECRET,
      '--ping-interval', String(PING_INTERVAL), '--ping-timeout', String(PING_TIMEOUT),
    ]);
  }, { timeout: 15_000 });
  afterEach(() => {
    clients.closeAll();
    natives.splice(0).forEach((c) => c.close());
  });
  after(async () => srv?.stop());

  it('welcome names the socket, the user and the ping interval; a bad ?token= is 401', T, async () => {
    const c = await open('n-alice');
    assert.deepEqual(Object.keys(c.welcome).sort(), ['op', 'ping_interval', 'socket', 'user']);
    assert.equal(c.welcome.user, 'n-alice');
    assert.equal(c.welcome.ping_interval, PING_INTERVAL);
    assert.equal(typeof c.welcome.socket, 'string');
    const refused = new WebSocket(`${srv.url.replace('http', 'ws')}/ws?token=not-a-jwt`);
    const status = await new Promise((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode)));
    assert.equal(status, 401);
  });

  it('without ?token= the first op must be auth: other ops are refused, a good token welcomes', T, async () => {
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/ws`);
    const c = new Native(ws);
    natives.push(c);
    await once(ws, 'open');
    const early = await c.request('join', { room: uniqueRoom('early') });
    assert.equal(early.ok, false);
    assert.equal(early.error.code, 'unauthorized');
    const authed = await c.request('auth', { token: tokenFor('n-late', SECRET) });
    assert.deepEqual(authed, { id: authed.id, ok: true, user: 'n-late', socket: authed.socket });
    assert.equal(typeof authed.socket, 'string');
    const welcome = await c.next((m) => m.op === 'welcome');
    assert.equal(welcome.user, 'n-late');
    assert.equal((await c.request('join', { room: uniqueRoom('late') })).ok, true);
  });

  it('a bad token in the auth op closes with 4401', T, async () => {
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/ws`);
    const c = new Native(ws);
    natives.push(c);
    await once(ws, 'open');
    const closed = once(ws, 'close');
    const refused = await c.request('auth', { token: 'garbage' });
    assert.equal(refused.error.code, 'unauthorized');
    const [code] = await closed;
    assert.equal(code, 4401);
  });

  it('join, publish, history and leave, with acks carrying the request id', T, async () => {
    const room = uniqueRoom('n-room');
    const a = await open('n-pub');
    const b = await open('n-sub');
    const joined = await b.request('join', { room });
    assert.deepEqual({ ...joined, epoch: typeof joined.epoch }, { id: joined.id, ok: true, epoch: 'string', offset: 0, recovered: false });
    const pub = await a.request('publish', { room, event: 'chat', data: { text: 'hi' } });
    assert.deepEqual(pub, { id: pub.id, ok: true, offset: 1 });
    const msg = await b.next((m) => m.op === 'message' && m.room === room);
    assert.deepEqual(
      { ...msg, at: typeof msg.at },
      { op: 'message', room, epoch: joined.epoch, offset: 1, event: 'chat', data: { text: 'hi' }, from: 'n-pub', at: 'string' },
    );
    const hist = await a.request('history', { room, limit: 10 });
    assert.equal(hist.epoch, joined.epoch);
    assert.deepEqual(hist.messages.map((m) => m.data), [{ text: 'hi' }]);
    const since = await a.request('history', { room, since: { epoch: joined.epoch, offset: 1 } });
    assert.deepEqual(since.messages, [], 'nothing after offset 1 of this epoch');
    const other = await a.request('history', { room, since: { epoch: 'another', offset: 1 } });
    assert.deepEqual(other.messages.map((m) => m.offset), [1], 'another epoch: everything held');
    assert.equal((await b.request('leave', { room })).ok, true);
    await a.request('publish', { room, event: 'chat', data: 2 });
    await sleep(150);
    assert.equal(b.messages(room).length, 1, 'nothing after leave');
  });

  it('a publish reaches both protocols: native and Socket.IO members of one room', T, async () => {
    const room = uniqueRoom('n-both');
    const n = await open('n-both-native');
    const s = await sioConnect(clients, srv.url, { auth: { token: tokenFor('n-both-sio', SECRET) } });
    await n.request('join', { room });
    await ack1(s, 'join', room);
    const got = once(s, 'chat');
    await n.request('publish', { room, event: 'chat', data: 'from native' });
    const [data, meta] = payload(await got, 2);
    assert.equal(data, 'from native');
    assert.equal(meta.from, 'n-both-native');
    await ack1(s, 'publish', room, 'chat', 'from socket.io');
    const m = await n.next((x) => x.op === 'message' && x.data === 'from socket.io');
    assert.equal(m.from, 'n-both-sio');
    assert.equal(m.offset, 2);
  });

  it('join with since replays what was missed; a wrong epoch does not', T, async () => {
    const room = uniqueRoom('n-since');
    const a = await open('n-since-a');
    const { epoch } = await a.request('join', { room });
    for (let i = 1; i <= 3; i++) await a.request('publish', { room, event: 'm', data: i });
    const b = await open('n-since-b');
    const r = await b.request('join', { room, since: { epoch, offset: 1 } });
    assert.equal(r.recovered, true);
    assert.deepEqual(r.missed.map((m) => [m.offset, m.data]), [[2, 2], [3, 3]]);
    const wrong = await b.request('join', { room, since: { epoch: `${epoch}x`, offset: 1 } });
    assert.equal(wrong.recovered, false);
    assert.equal('missed' in wrong, false);
    assert.equal(wrong.offset, 3);
  });

  it('presence events for members who asked, across protocols', T, async () => {
    const room = uniqueRoom('n-presence');
    const watcher = await open('n-watcher');
    await watcher.request('join', { room, presence: true });
    const s = await sioConnect(clients, srv.url, { auth: { token: tokenFor('n-visitor', SECRET) } });
    await ack1(s, 'join', room);
    const ev = await watcher.next((m) => m.op === 'presence');
    assert.deepEqual(ev, { op: 'presence', room, user: 'n-visitor', action: 'join' });
    const list = await watcher.request('presence', { room });
    assert.deepEqual(list.members.map((p) => p.user).sort(), ['n-visitor', 'n-watcher']);
    s.disconnect();
    const left = await watcher.next((m) => m.op === 'presence' && m.action === 'leave');
    assert.equal(left.user, 'n-visitor');
  });

  it('text ping gets pong; bad requests get bad_request and the connection stays', T, async () => {
    const c = await open('n-bad');
    c.ws.send('ping');
    await c.next((m) => m.pong);
    c.ws.send('{not json');
    const e1 = await c.next((m) => m.op === undefined && m.ok === false);
    assert.equal(e1.error.code, 'bad_request');
    c.ws.send(JSON.stringify({ op: 'join', id: 'x1' }));
    const e2 = await c.next((m) => m.id === 'x1');
    assert.equal(e2.error.code, 'bad_request');
    const e3 = await c.request('frobnicate');
    assert.equal(e3.error.code, 'unknown_op');
    const e4 = await c.request('publish', { room: 'r', event: 'disconnect', data: 1 });
    assert.equal(e4.error.code, 'bad_request', 'reserved event names are refused');
    const e5 = await c.request('history', { room: 'user:somebody-else' });
    assert.equal(e5.error.code, 'forbidden');
    assert.equal(c.ws.readyState, WebSocket.OPEN);
  });

  it('server pings keep a live client; a silent one is dropped within interval + timeout', T, async () => {
    const live = await open('n-live');
    let pings = 0;
    live.ws.on('ping', () => pings++);
    const silent = await open('n-silent', { autoPong: false });
    const closed = new Promise((resolve) => silent.ws.once('close', resolve));
    const started = Date.now();
    await closed;
    const took = Date.now() - started;
    assert.ok(took < 3_000, `dropped after ${took} ms`);
    await sleep(PING_INTERVAL);
    assert.ok(pings >= 2, `the live client got ${pings} pings`);
    assert.equal(live.ws.readyState, WebSocket.OPEN);
  });

  it('token expiry: refresh pushed, a fresh token keeps the connection, none closes it with 4003', { timeout: 10_000 }, async () => {
    const now = Math.floor(Date.now() / 1000);
    const short = (sub) => signJwt({ sub, iat: now, exp: now + 2 }, SECRET);
    const fresh = await Native.open(srv.url, 'n-exp-fresh', {}, short('n-exp-fresh'));
    const stale = await Native.open(srv.url, 'n-exp-stale', {}, short('n-exp-stale'));
    natives.push(fresh, stale);
    await fresh.next((m) => m.op === 'refresh', 3_000);
    const ok = await fresh.request('refresh', { token: tokenFor('n-exp-fresh', SECRET) });
    assert.equal(ok.ok, true);
    const wrong = await fresh.request('refresh', { token: tokenFor('n-someone-else', SECRET) });
    assert.equal(wrong.error.code, 'unauthorized');
    const closed = new Promise((resolve) => stale.ws.once('close', resolve));
    assert.equal(await closed, 4003);
    assert.deepEqual(await stale.next((m) => m.op === 'kick'), { op: 'kick', reason: 'token_expired', reconnect: false });
    await sleep(1_000);
    assert.equal(fresh.ws.readyState, WebSocket.OPEN);
  });

  it('admin disconnect: kick message, then close 4001 (stay away) or 4000 (reconnect now)', T, async () => {
    for (const [reconnect, code] of [[false, 4001], [true, 4000]]) {
      const c = await open('n-kicked');
      const closed = new Promise((resolve) => c.ws.once('close', (c2) => resolve(c2)));
      const res = await fetch(`${srv.url}/api/v1/disconnect`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ user: 'n-kicked', reason: 'bye', reconnect }),
      });
      assert.deepEqual(await res.json(), { disconnected: 1 });
      const kick = await c.next((m) => m.op === 'kick');
      assert.deepEqual(kick, { op: 'kick', reason: 'bye', reconnect });
      assert.equal(await closed, code);
    }
  });
});

describe('graceful drain (SIGTERM)', () => {
  const clients = new Clients();
  after(() => clients.closeAll());

  it('every client is told to reconnect elsewhere, then the process exits', { timeout: 15_000 }, async () => {
    const srv = await startServer('switchboard', (port) => [
      'serve', '--listen', `127.0.0.1:${port}`, '--api-key', API_KEY, '--jwt-secret', SECRET,
      '--drain-timeout', '5s',
    ]);
    const exited = new Promise((resolve) => srv.proc.once('exit', (code, signal) => resolve({ code, signal })));
    const s = await sioConnect(clients, srv.url, { auth: { token: tokenFor('drain-sio', SECRET) }, reconnection: false, transports: ['websocket'] });
    const n = await Native.open(srv.url, 'drain-native');
    const sioKick = once(s, 'kick', 5_000);
    const sioGone = once(s, 'disconnect', 5_000);
    const nativeClosed = new Promise((resolve) => n.ws.once('close', resolve));
    srv.proc.kill('SIGTERM');
    assert.deepEqual(payload(await sioKick, 1), [{ reason: 'going_away', reconnect: true }]);
    assert.equal((await sioGone)[0], 'transport close', 'a reason the client reconnects after');
    assert.equal(await nativeClosed, 1001);
    assert.deepEqual(await n.next((m) => m.op === 'kick'), { op: 'kick', reason: 'going_away', reconnect: true });
    assert.deepEqual(await exited, { code: 0, signal: null });
    n.close();
  });
});

describe('limits and origins (both protocols)', () => {
  const clients = new Clients();
  const natives = [];
  let srv;

  before(async () => {
    srv = await startServer('switchboard', (port) => [
      'serve', '--listen', `127.0.0.1:${port}`, '--api-key', API_KEY, '--jwt-secret', SECRET,
      '--max-rooms', '2', '--rate', '0.5', '--rate-burst', '6',
      '--allowed-origins', 'http://good.example',
    ]);
  }, { timeout: 15_000 });
  after(async () => {
    clients.closeAll();
    natives.forEach((c) => c.close());
    await srv?.stop();
  });

  it('an Origin outside --allowed-origins (or null) gets 403 on /ws; a listed one or none passes', T, async () => {
    const url = `${srv.url.replace('http', 'ws')}/ws?token=${tokenFor('o-user', SECRET)}`;
    for (const origin of ['http://evil.example', 'null']) {
      const ws = new WebSocket(url, { origin });
      const status = await new Promise((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode)));
      assert.equal(status, 403, origin);
    }
    for (const opts of [{ origin: 'http://good.example' }, {}]) {
      const ws = new WebSocket(url, opts);
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      ws.terminate();
    }
  });

  it('rooms per connection and the request rate, on the native protocol', T, async () => {
    const c = await Native.open(srv.url, 'l-native');
    natives.push(c);
    assert.equal((await c.request('join', { room: 'l1' })).ok, true);
    assert.equal((await c.request('join', { room: 'l2' })).ok, true);
    assert.equal((await c.request('join', { room: 'l3' })).error.code, 'too_many_rooms');
    assert.equal((await c.request('join', { room: 'l1' })).ok, true, 'rejoining is not a new room');
    // 4 of the burst of 6 are spent; the next ones run dry.
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await c.request('presence', { room: 'l1' })).error?.code ?? 'ok');
    assert.deepEqual(codes, ['ok', 'ok', 'rate_limited', 'rate_limited']);
    assert.equal(c.ws.readyState, WebSocket.OPEN, 'limited, not disconnected');
  });

  it('rooms per connection and the request rate, on Socket.IO', T, async () => {
    const s = await sioConnect(clients, srv.url, {
      auth: { token: tokenFor('l-sio', SECRET) },
      extraHeaders: { Origin: 'http://good.example' },
    });
    assert.equal((await ack1(s, 'join', 's1')).ok, true);
    assert.equal((await ack1(s, 'join', 's2')).ok, true);
    assert.equal((await ack1(s, 'join', 's3')).error.code, 'too_many_rooms');
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await ack1(s, 'presence', 's1')).error?.code ?? 'ok');
    assert.deepEqual(codes.slice(0, 3), ['ok', 'ok', 'ok']);
    assert.equal(codes[4], 'rate_limited');
  });
});
