// Unit tests of switchboard.js with a fake WebSocket: the "server" side is
// driven by hand (welcome, replies, pushes, close codes).

import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import { Switchboard, SwitchboardError, backoffDelay, Rotation } from '../switchboard.js';
import { fakeWebSocket, socketN, waitFor } from './fake.js';

const requestN = (ws, n) => waitFor(() => ws.requests()[n - 1], `request #${n} on ${ws.url}`);

/** Records events of a client. */
function record(sb, ...types) {
  const log = [];
  for (const type of types) sb.on(type, (e) => log.push({ type, ...e }));
  return log;
}

const clients = [];
function client(options) {
  const sb = new Switchboard({ environment: null, ...options });
  clients.push(sb);
  return sb;
}
afterEach(() => {
  for (const sb of clients.splice(0)) sb.close();
});

const msg = (room, offset, epoch = 'e1', extra = {}) => ({
  op: 'message',
  room,
  epoch,
  offset,
  event: 'chat',
  data: { n: offset },
  from: 'u2',
  at: '2026-01-01T00:00:00Z',
  ...extra,
});

describe('backoff', () => {
  it('ceilings grow by the factor up to the max; full jitter spans [0, ceiling]', () => {
    const b = { initial: 500, max: 20000, factor: 2 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, b, 1)),
      [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000],
    );
    assert.equal(backoffDelay(10_000, b, 1), 20000, 'no overflow');
    assert.equal(backoffDelay(0, b, 0), 0);
    assert.equal(backoffDelay(1, b, 0.5), 500);
    assert.equal(backoffDelay(2, b, 0.999999), 1999);
    assert.equal(backoffDelay(3, b, 7), 4000, 'unit clamped');
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(i % 12, b);
      assert.ok(d >= 0 && d <= Math.min(20000, 500 * 2 ** (i % 12)), `${d} in bounds`);
    }
  });

  it('the client waits a jittered delay from the injected random, growing per failure', async () => {
    const WS = fakeWebSocket();
    const units = [1, 0.5, 0, 0.25, 1];
    const sb = client({
      urls: 'ws://a/ws',
      WebSocket: WS,
      backoff: { initial: 8, max: 32, factor: 2 },
      random: () => units.shift(),
    });
    const log = record(sb, 'state');
    sb.connect();
    for (let n = 1; n <= 5; n++) (await socketN(WS, n)).serverClose(1006);
    await socketN(WS, 6);
    const delays = log.filter((e) => e.state === 'reconnecting').map((e) => [e.attempt, e.delay]);
    // ceilings 8, 16, 32, 32, 32 times 1, 0.5, 0, 0.25, 1
    assert.deepEqual(delays, [
      [1, 8],
      [2, 8],
      [3, 0],
      [4, 8],
      [5, 32],
    ]);
  });

  it('a connection resets the backoff; maxAttempts gives up', async () => {
    const WS = fakeWebSocket();
    const sb = client({
      urls: 'ws://a/ws',
      WebSocket: WS,
      backoff: { initial: 4, max: 100, factor: 2 },
      random: () => 1,
      maxAttempts: 2,
    });
    const log = record(sb, 'state');
    sb.connect();
    (await socketN(WS, 1)).serverClose(1006);
    (await socketN(WS, 2)).welcome();
    WS.instances[1].serverClose(1006);
    (await socketN(WS, 3)).serverClose(1006);
    (await socketN(WS, 4)).serverClose(1006);
    await waitFor(() => sb.readyState === 'closed', 'closed');
    const delays = log.filter((e) => e.state === 'reconnecting').map((e) => e.delay);
    assert.deepEqual(delays, [4, 4, 8], 'reset after the connection, then 2 attempts');
    assert.equal(log.at(-1).reason, 'gave up reconnecting');
    assert.equal(WS.instances.length, 4);
  });
});

describe('URL rotation', () => {
  it('moves to the next URL after failuresPerUrl failures in a row, wraps around, stays on one that works', async () => {
    const r = new Rotation(['a', 'b'], 2);
    r.failed();
    assert.equal(r.current(), 'a');
    r.failed();
    assert.equal(r.current(), 'b');

    const WS = fakeWebSocket();
    const sb = client({
      urls: ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'],
      WebSocket: WS,
      failuresPerUrl: 2,
      backoff: { initial: 1, max: 2 },
      random: () => 0,
    });
    sb.connect();
    for (let n = 1; n <= 6; n++) (await socketN(WS, n)).serverClose(1006);
    const seventh = await socketN(WS, 7);
    seventh.welcome();
    seventh.serverClose(1006); // it had worked: stay on it
    (await socketN(WS, 8)).serverClose(1006);
    (await socketN(WS, 9)).serverClose(1006);
    await socketN(WS, 10);
    assert.deepEqual(
      WS.instances.map((w) => new URL(w.url).host),
      ['a', 'a', 'b', 'b', 'c', 'c', 'a', 'a', 'a', 'b'],
    );
  });

  it('a drain (close 1001) moves to the next URL at once', async () => {
    const WS = fakeWebSocket();
    const sb = client({
      urls: ['ws://a/ws', 'ws://b/ws'],
      WebSocket: WS,
      backoff: { initial: 60_000 },
      random: () => 1,
    });
    const log = record(sb, 'state', 'kick');
    sb.connect();
    const a = await socketN(WS, 1);
    a.welcome();
    a.push({ op: 'kick', reason: 'going_away', reconnect: true });
    a.serverClose(1001, 'going away');
    const b = await socketN(WS, 2);
    assert.equal(new URL(b.url).host, 'b');
    assert.deepEqual(
      log.find((e) => e.state === 'reconnecting'),
      { type: 'state', state: 'reconnecting', url: 'ws://b/ws', attempt: 1, delay: 0, reason: 'server going away' },
    );
    assert.deepEqual(log.find((e) => e.type === 'kick'), { type: 'kick', reason: 'going_away', reconnect: true });
  });
});

describe('readyState', () => {
  it('idle → connecting → open → reconnecting → connecting → open → closed, mirrored in state events', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, random: () => 0 });
    const log = record(sb, 'state');
    assert.equal(sb.readyState, 'idle');
    assert.equal(sb.user, null);
    sb.connect();
    sb.connect(); // idempotent
    const w1 = await socketN(WS, 1);
    assert.equal(sb.readyState, 'connecting');
    w1.welcome('sock-1', 'alice');
    assert.equal(sb.readyState, 'open');
    assert.equal(sb.user, 'alice');
    assert.equal(sb.socket, 'sock-1');
    w1.serverClose(1006);
    assert.equal(sb.readyState, 'reconnecting');
    const w2 = await socketN(WS, 2);
    w2.welcome('sock-2', 'alice');
    assert.equal(sb.socket, 'sock-2');
    sb.close();
    assert.equal(sb.readyState, 'closed');
    assert.deepEqual(w2.closedByClient, { code: 1000, reason: 'client closed' });
    assert.deepEqual(
      log.map((e) => e.state),
      ['connecting', 'open', 'reconnecting', 'connecting', 'open', 'closed'],
    );
    assert.equal(WS.instances.length, 2);
    sb.connect();
    assert.equal(sb.readyState, 'closed', 'closed for good');
    await assert.rejects(sb.publish('r', 'e', 1), { code: 'closed' });
  });

  it('shared() gives one instance per URL list; on() returns an unsubscribe function', () => {
    const WS = fakeWebSocket();
    const a = Switchboard.shared({ urls: ['ws://a/ws', 'ws://b/ws'], WebSocket: WS, environment: null });
    const b = Switchboard.shared({ urls: ['ws://a/ws', 'ws://b/ws'], WebSocket: WS, environment: null });
    const c = Switchboard.shared({ urls: ['ws://b/ws', 'ws://a/ws'], WebSocket: WS, environment: null });
    assert.equal(a, b);
    assert.notEqual(a, c);
    a.close();
    c.close();
    const d = Switchboard.shared({ urls: ['ws://a/ws', 'ws://b/ws'], WebSocket: WS, environment: null });
    assert.notEqual(d, a, 'a closed instance is replaced');
    d.close();

    const seen = [];
    const off = d.on('state', (e) => seen.push(e.state));
    off();
    assert.deepEqual(seen, []);
    assert.throws(() => new Switchboard({ urls: [], WebSocket: WS }), TypeError);
    assert.throws(() => new Switchboard({ urls: 'http://a/ws', WebSocket: WS }), TypeError);
    assert.throws(() => new Switchboard({ urls: 'ws://a/ws', WebSocket: undefined }), /WebSocket/);
  });
});

describe('requests', () => {
  it('queue while offline, in order, up to queueLimit (beyond: queue_full, nothing queued dropped)', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, queueLimit: 3 });
    const p1 = sb.publish('r', 'e', 1);
    const p2 = sb.request({ op: 'presence', room: 'r' });
    const p3 = sb.publish('r', 'e', 3, { volatile: true });
    const p4 = sb.publish('r', 'e', 4);
    await assert.rejects(p4, (e) => e instanceof SwitchboardError && e.code === 'queue_full');
    sb.on('state', (e) => {
      if (e.state === 'open') sb.publish('r', 'e', 'from the open listener').catch(() => {});
    });
    sb.connect();
    const ws = await socketN(WS, 1);
    assert.deepEqual(ws.sent, [], 'nothing before the welcome');
    ws.welcome();
    const reqs = ws.requests().slice(0, 3);
    assert.deepEqual(
      reqs.map(({ id: _id, ...r }) => r),
      [
        { op: 'publish', room: 'r', event: 'e', data: 1 },
        { op: 'presence', room: 'r' },
        { op: 'publish', room: 'r', event: 'e', data: 3, volatile: true },
      ],
    );
    assert.equal(new Set(reqs.map((r) => r.id)).size, 3, 'distinct ids');
    assert.deepEqual(
      ws.requests().slice(3).map((r) => r.data),
      ['from the open listener'],
      'after the queued ones',
    );
    ws.reply(reqs[2], { offset: 3 });
    ws.reply(reqs[0], { offset: 1 });
    ws.push({ id: reqs[1].id, ok: false, error: { code: 'forbidden', message: 'no' } });
    assert.deepEqual(await p1, { offset: 1 });
    assert.deepEqual(await p3, { offset: 3 });
    await assert.rejects(p2, (e) => e.code === 'forbidden' && e.message === 'no' && e.details.code === 'forbidden');
    // Online: sent at once, the raw reply without id and ok.
    const p5 = sb.request({ op: 'history', room: 'r', limit: 2 });
    const req5 = await requestN(ws, 5);
    ws.reply(req5, { epoch: 'e1', messages: [] });
    assert.deepEqual(await p5, { epoch: 'e1', messages: [] });
  });

  it('a request without an answer rejects with timeout; in-flight ones reject with disconnected when the connection drops', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, requestTimeout: 40, random: () => 0 });
    sb.connect();
    const ws = await socketN(WS, 1);
    ws.welcome();
    await assert.rejects(sb.publish('r', 'e', 1), { code: 'timeout' });
    const pending = sb.publish('r', 'e', 2);
    ws.serverClose(1006);
    await assert.rejects(pending, { code: 'disconnected' });
    // Queued while reconnecting: no timeout runs before it is sent.
    const queued = sb.publish('r', 'e', 3);
    await sleep(100);
    const ws2 = await socketN(WS, 2);
    ws2.welcome();
    ws2.reply(await requestN(ws2, 1), { offset: 3 });
    assert.deepEqual(await queued, { offset: 3 });
    // close(): pending requests reject with closed.
    const last = sb.publish('r', 'e', 4);
    sb.close();
    await assert.rejects(last, { code: 'closed' });
    await assert.rejects(sb.request({ nope: 1 }), { code: 'bad_request' });
  });
});

describe('rooms: exactly once and in order', () => {
  it('a rejoin carries since, holds live messages, delivers missed then held without duplicates; gap when not recovered', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, random: () => 0 });
    const log = record(sb, 'message', 'gap');
    const offsets = () => log.filter((e) => e.type === 'message').map((e) => e.offset);
    sb.connect();
    const ws = await socketN(WS, 1);
    ws.welcome();
    const joined = sb.join('room', { presence: true });
    const j1 = await requestN(ws, 1);
    assert.deepEqual(j1, { op: 'join', room: 'room', presence: true, id: j1.id });
    ws.push(msg('room', 3)); // overtakes the answer: held
    ws.reply(j1, { epoch: 'e1', offset: 2, recovered: false });
    assert.deepEqual(await joined, { epoch: 'e1', offset: 2, recovered: false });
    ws.push(msg('room', 4));
    ws.push(msg('room', 4)); // duplicate
    ws.push(msg('room', 2)); // older
    assert.deepEqual(offsets(), [3, 4]);
    assert.deepEqual(log[0], {
      type: 'message',
      room: 'room',
      event: 'chat',
      data: { n: 3 },
      offset: 3,
      epoch: 'e1',
      from: 'u2',
      at: '2026-01-01T00:00:00Z',
    });

    ws.serverClose(1006);
    const ws2 = await socketN(WS, 2);
    ws2.welcome();
    const j2 = await requestN(ws2, 1);
    assert.deepEqual(j2.since, { epoch: 'e1', offset: 4 });
    assert.equal(j2.presence, true, 'joined again as before');
    ws2.push(msg('room', 6)); // live, before the answer: held
    ws2.push(msg('room', 7));
    assert.deepEqual(offsets(), [3, 4], 'held while the rejoin is in flight');
    ws2.reply(j2, {
      epoch: 'e1',
      offset: 6,
      recovered: true,
      missed: [5, 6].map((o) => ({ offset: o, event: 'chat', data: { n: o }, from: null, at: 'x' })),
    });
    assert.deepEqual(offsets(), [3, 4, 5, 6, 7], 'missed then held, each once');
    ws2.push(msg('room', 7));
    ws2.push(msg('room', 8));
    assert.deepEqual(offsets(), [3, 4, 5, 6, 7, 8]);
    assert.equal(log.filter((e) => e.type === 'gap').length, 0);

    // The server lost the log (new epoch): a gap, then the new log's messages.
    ws2.serverClose(1006);
    const ws3 = await socketN(WS, 3);
    ws3.welcome();
    const j3 = await requestN(ws3, 1);
    assert.deepEqual(j3.since, { epoch: 'e1', offset: 8 });
    ws3.push(msg('room', 2, 'e2'));
    ws3.reply(j3, { epoch: 'e2', offset: 1, recovered: false });
    ws3.push(msg('room', 3, 'e2'));
    assert.deepEqual(
      log.slice(-3).map((e) => [e.type, e.epoch ?? null, e.offset ?? null]),
      [
        ['gap', null, null],
        ['message', 'e2', 2],
        ['message', 'e2', 3],
      ],
    );
  });

  it('rejoins rooms before queued requests; a refused first join forgets the room; leave forgets it', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, random: () => 0 });
    const messages = record(sb, 'message', 'presence');
    sb.connect();
    const ws = await socketN(WS, 1);
    ws.welcome();
    const a = sb.join('a');
    const b = sb.join('b');
    const c = sb.join('c');
    ws.reply(await requestN(ws, 1), { epoch: 'e', offset: 0, recovered: false });
    ws.push({ id: (await requestN(ws, 2)).id, ok: false, error: { code: 'forbidden', message: 'no' } });
    ws.reply(await requestN(ws, 3), { epoch: 'e', offset: 0, recovered: false });
    await a;
    await assert.rejects(b, { code: 'forbidden' });
    await c;
    const left = sb.leave('c');
    ws.reply(await requestN(ws, 4));
    await left;
    // Pushes for rooms not joined through the client (its personal room) come as they are.
    ws.push(msg('user:u1', 1));
    ws.push({ op: 'presence', room: 'a', user: 'u2', action: 'join' });
    assert.deepEqual(
      messages.map((e) => [e.type, e.room]),
      [
        ['message', 'user:u1'],
        ['presence', 'a'],
      ],
    );
    ws.serverClose(1006);
    const queued = sb.publish('a', 'e', 1);
    const ws2 = await socketN(WS, 2);
    ws2.welcome();
    assert.deepEqual(
      ws2.requests().map((r) => [r.op, r.room, r.since ?? null]),
      [
        ['join', 'a', { epoch: 'e', offset: 0 }],
        ['publish', 'a', null],
      ],
    );
    ws2.reply(ws2.requests()[1], { offset: 1 });
    await queued;
  });
});

describe('kicks and close codes', () => {
  async function scenario(options, server) {
    const WS = fakeWebSocket();
    const sb = client({
      urls: ['ws://a/ws', 'ws://b/ws'],
      WebSocket: WS,
      backoff: { initial: 60_000, max: 60_000 },
      random: () => 1,
      ...options,
    });
    const log = record(sb, 'state', 'kick');
    sb.connect();
    const ws = await socketN(WS, 1);
    ws.welcome();
    server(ws);
    return { WS, sb, log };
  }
  const reconnecting = (log) => log.find((e) => e.state === 'reconnecting');

  it('kick reconnect:false then 4001: closed for good', async () => {
    const { WS, sb, log } = await scenario({}, (ws) => {
      ws.push({ op: 'kick', reason: 'banned', reconnect: false });
      ws.serverClose(4001, 'kicked');
    });
    assert.equal(sb.readyState, 'closed');
    assert.equal(log.at(-1).reason, 'kicked by the server');
    assert.deepEqual(log.find((e) => e.type === 'kick'), { type: 'kick', reason: 'banned', reconnect: false });
    await sleep(20);
    assert.equal(WS.instances.length, 1);
  });

  it('kick reconnect:true then 4000: reconnects at once to the same URL', async () => {
    const { WS, log } = await scenario({}, (ws) => {
      ws.push({ op: 'kick', reconnect: true });
      ws.serverClose(4000);
    });
    assert.equal(new URL((await socketN(WS, 2)).url).host, 'a');
    assert.equal(reconnecting(log).delay, 0);
  });

  it('a kick without a close code (connection lost after it) follows the kick', async () => {
    const { WS, log } = await scenario({}, (ws) => {
      ws.push({ op: 'kick', reconnect: true });
      ws.serverClose(1006);
    });
    await socketN(WS, 2);
    assert.equal(reconnecting(log).delay, 0);
    const second = await scenario({}, (ws) => {
      ws.push({ op: 'kick', reconnect: false });
      ws.serverClose(1006);
    });
    assert.equal(second.sb.readyState, 'closed');
  });

  it('4003 (token expired): asks the token provider again and reconnects at once; with a fixed token: closed', async () => {
    let n = 0;
    const { WS, log } = await scenario({ token: async () => `tok${++n}` }, (ws) => {
      ws.push({ op: 'kick', reason: 'token_expired', reconnect: false });
      ws.serverClose(4003, 'token expired');
    });
    const ws2 = await socketN(WS, 2);
    assert.equal(new URL(WS.instances[0].url).searchParams.get('token'), 'tok1');
    assert.equal(new URL(ws2.url).searchParams.get('token'), 'tok2');
    assert.equal(reconnecting(log).delay, 0);

    const fixed = await scenario({ token: 'fixed' }, (ws) => ws.serverClose(4003));
    assert.equal(fixed.sb.readyState, 'closed');
    assert.equal(new URL(fixed.WS.instances[0].url).searchParams.get('token'), 'fixed');
  });

  it('4401: closed without a token provider, backoff with one', async () => {
    const none = await scenario({}, (ws) => ws.serverClose(4401, 'unauthorized'));
    assert.equal(none.sb.readyState, 'closed');
    assert.match(none.log.at(-1).reason, /unauthorized/);
    const provider = await scenario({ token: () => 't' }, (ws) => ws.serverClose(4401, 'unauthorized'));
    assert.equal(provider.sb.readyState, 'reconnecting');
    assert.equal(reconnecting(provider.log).delay, 60_000);
  });

  it('other codes (4008, 1006): backoff', async () => {
    const { sb, log } = await scenario({}, (ws) => ws.serverClose(4008, 'slow consumer'));
    assert.equal(sb.readyState, 'reconnecting');
    assert.equal(reconnecting(log).delay, 60_000);
    assert.equal(reconnecting(log).url, 'ws://a/ws');
  });
});

describe('tokens', () => {
  it('asks the provider before each connection and on a refresh push (sends op refresh)', async () => {
    const WS = fakeWebSocket();
    let n = 0;
    const sb = client({
      urls: 'ws://a/ws?x=1',
      WebSocket: WS,
      token: () => Promise.resolve(`t ${++n}&`),
    });
    const errors = record(sb, 'error');
    sb.connect();
    const ws = await socketN(WS, 1);
    assert.equal(ws.url, 'ws://a/ws?x=1&token=t%201%26');
    ws.welcome();
    ws.push({ op: 'refresh' });
    const r = await requestN(ws, 1);
    assert.deepEqual(r, { op: 'refresh', token: 't 2&', id: r.id });
    ws.push({ id: r.id, ok: false, error: { code: 'unauthorized', message: 'invalid token' } });
    await waitFor(() => errors.length === 1, 'an error event');
    assert.equal(errors[0].error.code, 'unauthorized');
  });

  it('a throwing provider is an error event and a failed attempt', async () => {
    const WS = fakeWebSocket();
    let n = 0;
    const sb = client({
      urls: 'ws://a/ws',
      WebSocket: WS,
      random: () => 0,
      token: () => {
        if (++n === 1) throw new Error('no token today');
        return 'ok';
      },
    });
    const log = record(sb, 'error', 'state');
    sb.connect();
    const ws = await socketN(WS, 1);
    assert.equal(new URL(ws.url).searchParams.get('token'), 'ok');
    assert.equal(log.find((e) => e.type === 'error').error.message, 'no token today');
  });
});

describe('heartbeat', () => {
  it('pings every pingInterval; silence for pingInterval + pingTimeout drops the connection', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, pingInterval: 20, pingTimeout: 20, random: () => 0 });
    const log = record(sb, 'state');
    sb.connect();
    const ws = await socketN(WS, 1);
    ws.welcome();
    await waitFor(() => ws.sent.includes('ping'), 'a ping');
    await waitFor(() => sb.readyState !== 'open', 'the dead connection dropped');
    assert.equal(log.find((e) => e.state === 'reconnecting').reason, 'heartbeat timeout');
    await socketN(WS, 2);
  });

  it('a connection that answers stays open', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, pingInterval: 10, pingTimeout: 10 });
    sb.connect();
    const ws = await socketN(WS, 1);
    ws.welcome();
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      send(data);
      if (data === 'ping') setImmediate(() => ws.push('pong'));
    };
    await waitFor(() => ws.sent.filter((s) => s === 'ping').length >= 10, '10 pings');
    assert.equal(sb.readyState, 'open');
    assert.equal(WS.instances.length, 1);
  });

  it('no welcome within connectTimeout is a failed attempt', async () => {
    const WS = fakeWebSocket();
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, connectTimeout: 20, random: () => 0 });
    const log = record(sb, 'state');
    sb.connect();
    await socketN(WS, 2);
    assert.equal(log.find((e) => e.state === 'reconnecting').reason, 'connect timeout');
  });
});

describe('browser environment', () => {
  function environment(onLine) {
    const env = new EventTarget();
    env.navigator = { onLine };
    env.document = new EventTarget();
    env.document.visibilityState = 'visible';
    return env;
  }

  it('no attempts while offline; reconnects as soon as online', async () => {
    const WS = fakeWebSocket();
    const env = environment(false);
    const sb = client({ urls: 'ws://a/ws', WebSocket: WS, environment: env, random: () => 0 });
    const log = record(sb, 'state');
    sb.connect();
    assert.equal(sb.readyState, 'reconnecting');
    assert.equal(log[0].reason, 'offline');
    await sleep(20);
    assert.equal(WS.instances.length, 0);
    env.navigator.onLine = true;
    env.dispatchEvent(new Event('online'));
    const ws = await socketN(WS, 1);
    ws.welcome();
    // Offline while waiting for the next attempt: the timer stops.
    env.navigator.onLine = false;
    ws.serverClose(1006);
    assert.equal(sb.readyState, 'reconnecting');
    await sleep(20);
    assert.equal(WS.instances.length, 1);
    env.navigator.onLine = true;
    env.dispatchEvent(new Event('online'));
    await socketN(WS, 2);
  });

  it('the offline event stops a pending retry; visible again tries at once', async () => {
    const WS = fakeWebSocket();
    const env = environment(true);
    const sb = client({
      urls: 'ws://a/ws',
      WebSocket: WS,
      environment: env,
      backoff: { initial: 60_000, max: 60_000 },
      random: () => 1,
    });
    const log = record(sb, 'state');
    sb.connect();
    (await socketN(WS, 1)).serverClose(1006);
    assert.equal(log.at(-1).delay, 60_000);
    env.navigator.onLine = false;
    env.dispatchEvent(new Event('offline'));
    assert.deepEqual(log.at(-1), { type: 'state', state: 'reconnecting', url: 'ws://a/ws', reason: 'offline' });
    env.document.dispatchEvent(new Event('visibilitychange'));
    await sleep(20);
    assert.equal(WS.instances.length, 1, 'still offline');
    env.navigator.onLine = true;
    (await (async () => {
      env.dispatchEvent(new Event('online'));
      return socketN(WS, 2);
    })()).serverClose(1006);
    assert.equal(log.at(-1).state, 'reconnecting');
    env.document.visibilityState = 'hidden';
    env.document.dispatchEvent(new Event('visibilitychange'));
    await sleep(20);
    assert.equal(WS.instances.length, 2, 'hidden: nothing');
    env.document.visibilityState = 'visible';
    env.document.dispatchEvent(new Event('visibilitychange'));
    await socketN(WS, 3);
  });
});
