// Integration tests of switchboard.js against the real server binary
// (`switchboard serve`), with the `ws` package as the WebSocket.
//
// The binary comes from $SB_BIN_DIR (default `$CARGO_TARGET_DIR/release`,
// CARGO_TARGET_DIR defaulting to ~/.cache/switchboard-target). Every server
// started here is killed again, also when a test fails.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

import { admin, client, freePort, signJwt as sign, startServer, waitFor } from './support.js';

const JWT_SECRET = 'js-client-test-secret';
const signJwt = (payload, secret = JWT_SECRET) => sign(payload, secret);


/** Records events of a client. */
function record(sb, ...types) {
  const log = [];
  for (const type of types) sb.on(type, (e) => log.push({ type, ...e }));
  return log;
}

const opened = (sb, what = 'the connection') => waitFor(() => sb.readyState === 'open', what);

let seq = 0;
const uniqueRoom = (what) => `${what}-${process.pid}-${++seq}`;

// ------------------------------------------------------------------ tests

describe('against switchboard serve', () => {
  let server;
  const shared = () => server;

  it('starts', async () => {
    server = await startServer();
  });

  it('join, publish, message to every member (the sender too), once each', async () => {
    const room = uniqueRoom('chat');
    const a = client({ urls: shared().ws }).connect();
    const b = client({ urls: [shared().ws] }).connect();
    const got = { a: [], b: [] };
    a.on('message', (m) => got.a.push(m));
    b.on('message', (m) => got.b.push(m));
    const ja = await a.join(room);
    assert.deepEqual(Object.keys(ja).sort(), ['epoch', 'offset', 'recovered']);
    assert.equal(ja.offset, 0);
    assert.equal(ja.recovered, false);
    await b.join(room);
    assert.equal(a.readyState, 'open');
    assert.match(a.user, /^anon-/);
    assert.ok(a.socket);
    const p1 = await a.publish(room, 'chat', { text: 'hi' });
    const p2 = await b.publish(room, 'chat', { text: 'ho' });
    assert.deepEqual([p1.offset, p2.offset], [1, 2]);
    await waitFor(() => got.a.length === 2 && got.b.length === 2, 'both messages on both clients');
    assert.deepEqual(
      got.a.map((m) => [m.room, m.event, m.data.text, m.offset, m.epoch, m.from]),
      [
        [room, 'chat', 'hi', 1, ja.epoch, a.user],
        [room, 'chat', 'ho', 2, ja.epoch, b.user],
      ],
    );
    assert.deepEqual(
      got.b.map((m) => m.offset),
      [1, 2],
    );
    // The admin API's publishes: from null.
    await admin(shared(), 'POST', '/api/v1/publish', { room, event: 'news', data: 3 });
    await waitFor(() => got.b.length === 3, 'the admin publish');
    assert.equal(got.b[2].from, null);
    // Errors are SwitchboardErrors with the server's code.
    await assert.rejects(a.publish(room, 'presence', 1), { code: 'bad_request' });
    await assert.rejects(a.request({ op: 'nope' }), { code: 'unknown_op' });
    await assert.rejects(a.join(`user:someone-else`), { code: 'forbidden' });
  });

  it('presence events and members', async () => {
    const room = uniqueRoom('presence');
    const a = client({ urls: shared().ws }).connect();
    const b = client({ urls: shared().ws }).connect();
    const events = record(a, 'presence');
    await a.join(room, { presence: true });
    await b.join(room);
    await waitFor(() => events.length === 1, 'a presence join');
    assert.deepEqual(events[0], { type: 'presence', room, user: b.user, action: 'join' });
    const { members } = await a.presence(room);
    assert.deepEqual(members.map((m) => m.user).sort(), [a.user, b.user].sort());
    assert.equal(members[0].connections, 1);
    await b.leave(room);
    await waitFor(() => events.length === 2, 'a presence leave');
    assert.deepEqual(events[1], { type: 'presence', room, user: b.user, action: 'leave' });
    assert.deepEqual(
      (await a.presence(room)).members.map((m) => m.user),
      [a.user],
    );
  });

  it('history: oldest first, limit, since', async () => {
    const room = uniqueRoom('history');
    const a = client({ urls: shared().ws }).connect();
    for (let i = 1; i <= 5; i++) await a.publish(room, 'n', { i });
    const all = await a.history(room);
    assert.deepEqual(
      all.messages.map((m) => [m.offset, m.event, m.data.i]),
      [1, 2, 3, 4, 5].map((i) => [i, 'n', i]),
    );
    assert.ok(all.messages.every((m) => m.from === a.user && typeof m.at === 'string'));
    const last2 = await a.history(room, { limit: 2 });
    assert.deepEqual(
      last2.messages.map((m) => m.offset),
      [4, 5],
    );
    const since3 = await a.history(room, { since: { epoch: all.epoch, offset: 3 } });
    assert.deepEqual(
      since3.messages.map((m) => m.offset),
      [4, 5],
    );
    assert.equal(since3.epoch, all.epoch);
  });

  it('a kick with reconnect: true reconnects at once and rejoins; reconnect: false closes for good', async () => {
    const room = uniqueRoom('kick');
    const sb = client({ urls: shared().ws, backoff: { initial: 30_000, max: 30_000 } }).connect();
    const log = record(sb, 'state', 'kick', 'message', 'gap');
    await sb.join(room);
    // A room with nothing in its log is forgotten when its last member
    // leaves (a rejoin then gets a new epoch and a gap): give it a message.
    await sb.publish(room, 'e', 0);
    const first = sb.socket;
    const res = await admin(shared(), 'POST', '/api/v1/disconnect', {
      socket: first,
      reconnect: true,
      reason: 'move along',
    });
    assert.deepEqual(res, { disconnected: 1 });
    await waitFor(() => sb.readyState === 'open' && sb.socket !== first, 'the new connection');
    assert.deepEqual(log.find((e) => e.type === 'kick'), { type: 'kick', reason: 'move along', reconnect: true });
    assert.equal(log.find((e) => e.state === 'reconnecting').delay, 0, 'at once (despite a 30 s backoff)');
    // Rejoined: a publish reaches it (and nothing was missed: no gap).
    await admin(shared(), 'POST', '/api/v1/publish', { room, event: 'e', data: 1 });
    await waitFor(() => log.some((e) => e.type === 'message' && e.data === 1), 'the message after the rejoin');
    assert.deepEqual(
      log.filter((e) => e.type === 'message').map((e) => e.offset),
      [1, 2],
    );
    assert.equal(log.filter((e) => e.type === 'gap').length, 0);

    const second = sb.socket;
    await admin(shared(), 'POST', '/api/v1/disconnect', { socket: second, reconnect: false });
    await waitFor(() => sb.readyState === 'closed', 'closed');
    assert.deepEqual(log.filter((e) => e.type === 'kick').at(-1), { type: 'kick', reason: null, reconnect: false });
    assert.equal(log.at(-1).reason, 'kicked by the server');
    const sockets = await admin(shared(), 'GET', `/api/v1/sockets?room=${encodeURIComponent(room)}`);
    assert.deepEqual(sockets, [], 'not connected again');
    await assert.rejects(sb.publish(room, 'e', 2), { code: 'closed' });
  });

  it('stops', async () => {
    await shared().kill('SIGTERM');
  });
});

describe('recovery across a server crash', () => {
  it('SIGKILL + restart with --data-dir while the admin API publishes: every acknowledged message once, in order', async (t) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-js-'));
    const port = await freePort();
    const args = ['--data-dir', dataDir];
    let server = await startServer({ port, args });
    try {
      const room = uniqueRoom('crash');
      const joinReplies = []; // what the server answered to the (re)joins
      class RecordingWebSocket extends WebSocket {
        constructor(url) {
          super(url);
          this.addEventListener('message', ({ data }) => {
            if (typeof data === 'string' && data.includes('"recovered"')) joinReplies.push(JSON.parse(data));
          });
        }
      }
      const sb = client({
        urls: server.ws,
        backoff: { initial: 20, max: 200 },
        WebSocket: RecordingWebSocket,
      }).connect();
      const log = record(sb, 'gap', 'state');
      const offsets = [];
      const epochs = new Set();
      sb.on('message', (m) => {
        if (m.room !== room) return;
        offsets.push(m.offset);
        epochs.add(m.epoch);
      });
      await sb.join(room);

      const acked = [];
      let stop = false;
      let target = server;
      const publisher = (async () => {
        for (let i = 0; !stop; i++) {
          try {
            const r = await admin(target, 'POST', '/api/v1/publish', { room, event: 'n', data: { i } });
            acked.push(r.offset);
          } catch {
            await sleep(10); // down: this one was not acknowledged
          }
        }
      })();
      try {
        await waitFor(() => acked.length >= 30, '30 acknowledged publishes');
        await server.kill('SIGKILL');
        const before = acked.length;
        server = await startServer({ port, args });
        target = server;
        await waitFor(() => acked.length >= before + 30, '30 more after the restart');
      } finally {
        stop = true;
        await publisher;
      }
      await waitFor(() => {
        const seen = new Set(offsets);
        return acked.every((o) => seen.has(o));
      }, 'every acknowledged message');
      assert.ok(
        log.some((e) => e.state === 'reconnecting'),
        'the client did notice the crash',
      );
      for (let i = 1; i < offsets.length; i++) {
        assert.ok(offsets[i] > offsets[i - 1], `in order, once: ${offsets[i - 1]} then ${offsets[i]}`);
      }
      assert.equal(offsets[0], 1);
      assert.equal(offsets.length, offsets.at(-1), 'no offset skipped');
      assert.equal(epochs.size, 1, 'the same epoch after the restart');
      assert.ok(joinReplies.length >= 2, 'joined again');
      assert.equal(joinReplies.at(-1).recovered, true, 'the rejoin was recovered');
      t.diagnostic(
        `${acked.length} acknowledged, ${offsets.length} delivered, ` +
          `${joinReplies.at(-1).missed.length} of them in the rejoin's missed`,
      );
      assert.deepEqual(
        log.filter((e) => e.type === 'gap'),
        [],
      );
    } finally {
      await server.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('primary and backup', () => {
  it('a drain (SIGTERM) moves to the backup at once; a dead backup goes back to the primary after failuresPerUrl', async () => {
    const primary = await startServer();
    const backup = await startServer();
    let restarted = null;
    try {
      const room = uniqueRoom('failover');
      const sb = client({
        urls: [primary.ws, backup.ws],
        failuresPerUrl: 2,
        backoff: { initial: 20, max: 100 },
      }).connect();
      const log = record(sb, 'state', 'kick', 'gap', 'message');
      await sb.join(room);
      assert.equal(log.find((e) => e.state === 'open').url, primary.ws);

      primary.proc.kill('SIGTERM');
      await waitFor(() => log.filter((e) => e.state === 'open').length === 2, 'open on the backup');
      const toBackup = log.filter((e) => e.type === 'state');
      const i = toBackup.findIndex((e) => e.state === 'reconnecting');
      assert.deepEqual(
        toBackup.slice(i, i + 3).map((e) => [e.state, e.url, e.delay]),
        [
          ['reconnecting', backup.ws, 0],
          ['connecting', backup.ws, undefined],
          ['open', backup.ws, undefined],
        ],
      );
      assert.deepEqual(log.find((e) => e.type === 'kick'), { type: 'kick', reason: 'going_away', reconnect: true });
      // Another server, another log: the rejoin is not recovered.
      await waitFor(() => log.some((e) => e.type === 'gap' && e.room === room), 'a gap');
      await admin(backup, 'POST', '/api/v1/publish', { room, event: 'e', data: 'from backup' });
      await waitFor(() => log.some((e) => e.type === 'message' && e.data === 'from backup'), 'a message via the backup');

      await Promise.race([primary.exit, sleep(8000)]);
      await primary.kill('SIGKILL'); // drained by now (no client left); bounded either way
      const mark = log.length;
      await backup.kill('SIGKILL');
      restarted = await startServer({ port: primary.port });
      await waitFor(() => log.slice(mark).some((e) => e.state === 'open'), 'open on the primary again', 15_000);
      const after = log.slice(mark).filter((e) => e.type === 'state');
      assert.equal(after.find((e) => e.state === 'open').url, primary.ws);
      const tried = after.filter((e) => e.state === 'connecting').map((e) => (e.url === primary.ws ? 'P' : 'B'));
      // The backup, failuresPerUrl = 2 times, then the primary (maybe more rounds while it restarts).
      assert.deepEqual(tried.slice(0, 3), ['B', 'B', 'P'], tried.join(''));
      for (let k = 0; k + 1 < tried.length; k += 2) assert.equal(tried[k], tried[k + 1] ?? tried[k], tried.join(''));
      await admin(restarted, 'POST', '/api/v1/publish', { room, event: 'e', data: 'from primary' });
      await waitFor(() => log.some((e) => e.type === 'message' && e.data === 'from primary'), 'rejoined on the primary');
    } finally {
      await Promise.all([primary.kill(), backup.kill(), restarted?.kill()]);
    }
  });
});

describe('tokens (--jwt-secret)', () => {
  it('refreshes the token when the server asks; an expired one (4003) reconnects at once with a new token', async () => {
    const server = await startServer({ args: ['--jwt-secret', JWT_SECRET] });
    try {
      const mint = (sub) => {
        const exp = Math.floor(Date.now() / 1000) + 3;
        return { token: signJwt({ sub, exp }), exp };
      };
      // alice answers refresh pushes; bob's provider has nothing while connected.
      const aliceTokens = [];
      const alice = client({
        urls: server.ws,
        token: async () => {
          const t = mint('alice');
          aliceTokens.push(t);
          return t.token;
        },
      });
      const bobTokens = [];
      const bob = client({
        urls: server.ws,
        token: () => {
          if (bob.readyState === 'open') return null;
          const t = mint('bob');
          bobTokens.push(t);
          return t.token;
        },
        backoff: { initial: 30_000, max: 30_000 },
      });
      const aliceLog = record(alice, 'state', 'kick', 'error');
      const bobLog = record(bob, 'state', 'kick', 'error');
      alice.connect();
      bob.connect();
      await opened(alice);
      await opened(bob);
      assert.equal(alice.user, 'alice');
      assert.equal(bob.user, 'bob');
      const aliceSocket = alice.socket;
      const bobSocket = bob.socket;
      const firstExpiry = aliceTokens[0].exp * 1000;

      // alice: past her first token's expiry, on the same connection, refreshed at least twice.
      await waitFor(() => Date.now() > firstExpiry + 1500 && aliceTokens.length >= 3, "alice's refreshes", 15_000);
      assert.equal(alice.readyState, 'open');
      assert.equal(alice.socket, aliceSocket);
      assert.deepEqual(
        aliceLog.filter((e) => e.type !== 'state' || e.state !== 'open'),
        [{ type: 'state', state: 'connecting', url: server.ws }],
        'no kick, no error, no reconnect',
      );
      await alice.publish('tokens', 'e', 1); // still authorized

      // bob: kicked at expiry (token_expired, 4003), back at once with a fresh token.
      await waitFor(() => bob.readyState === 'open' && bob.socket !== bobSocket, "bob's new connection", 15_000);
      assert.deepEqual(bobLog.find((e) => e.type === 'kick'), { type: 'kick', reason: 'token_expired', reconnect: false });
      const r = bobLog.find((e) => e.state === 'reconnecting');
      assert.equal(r.delay, 0);
      assert.equal(r.reason, 'token expired');
      assert.equal(bobTokens.length, 2);
      assert.equal(bob.user, 'bob');
    } finally {
      await server.kill();
    }
  });

  it('an invalid token (401 on the upgrade) is a failed attempt; without a provider after 4401 nothing is retried', async () => {
    const server = await startServer({ args: ['--jwt-secret', JWT_SECRET, '--auth-timeout', '300ms'] });
    try {
      const bad = client({ urls: server.ws, token: 'not-a-jwt', maxAttempts: 1, backoff: { initial: 10, max: 10 } });
      const log = record(bad, 'state');
      bad.connect();
      await waitFor(() => bad.readyState === 'closed', 'closed after its attempts');
      assert.equal(log.filter((e) => e.state === 'connecting').length, 2);
      assert.equal(log.at(-1).reason, 'gave up reconnecting');
      // No token at all: the upgrade works, no welcome, the auth timeout closes with 4401.
      const none = client({ urls: server.ws });
      const noneLog = record(none, 'state');
      none.connect();
      await waitFor(() => none.readyState === 'closed', 'closed');
      assert.match(noneLog.at(-1).reason, /unauthorized/);
    } finally {
      await server.kill();
    }
  });
});
