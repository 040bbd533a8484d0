// Integration tests of the file transfer of switchboard.js against the real
// server (`switchboard serve` from $SB_BIN_DIR, as in integration.test.js),
// with the `ws` package as the WebSocket.
//
// Counting what goes over the wire: `RecordingWebSocket` (below) wraps `ws`'s
// `send` to log the index of every chunk frame the client sends, and listens
// to every frame it receives (before the client does) to log the server's
// `file_ack`s, the chunk frames of downloads and the replies.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

import { decodeChunk } from '../switchboard.js';
import { admin, client, signJwt as sign, startServer as launch, waitFor as poll } from './support.js';

const JWT_SECRET = 'js-client-files-secret';
const MB = 1 << 20;
const signJwt = (payload, secret = JWT_SECRET) => sign(payload, secret);
/** The launcher of `support.js` with this file's argument order. */
const startServer = (args = [], port = undefined) => launch({ port, args });

function listen(srv) {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv.address().port));
  });
}

/**
 * A TCP proxy to `port`: `cut()` destroys every connection through it at
 * once (no close frame: the client sees a lost connection); it keeps
 * accepting new ones.
 */
async function tcpProxy(port) {
  const sockets = new Set();
  const srv = net.createServer((down) => {
    const up = net.connect({ host: '127.0.0.1', port });
    sockets.add(down);
    sockets.add(up);
    down.pipe(up);
    up.pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
      sockets.delete(down);
      sockets.delete(up);
    };
    for (const s of [down, up]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  const proxyPort = await listen(srv);
  return {
    ws: `ws://127.0.0.1:${proxyPort}/ws`,
    cuts: 0,
    cut() {
      this.cuts += 1;
      for (const s of [...sockets]) s.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of [...sockets]) s.destroy();
        srv.close(resolve);
      }),
  };
}

const waitFor = (pred, what, ms = 20_000) => poll(pred, what, ms);

const sha = (b) => createHash('sha256').update(b).digest('hex');

/**
 * A `ws` WebSocket class that logs into `wire`: `sent` (the index of each
 * chunk frame the client sends, and whether the server had acknowledged that
 * chunk before: `resent`), `acks` (file_ack pushes), `received` (indexes of
 * chunk frames received), `requests` (JSON requests sent), `replies`.
 */
function recorder() {
  const wire = { sent: [], acked: new Map(), resent: [], received: [], requests: [], replies: [], sockets: 0 };
  class RecordingWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      wire.sockets += 1;
      this.addEventListener('message', ({ data }) => {
        if (typeof data !== 'string') {
          const c = decodeChunk(data);
          if (c) wire.received.push({ transfer: c.transfer, index: c.index });
          return;
        }
        if (data === 'pong') return;
        const msg = JSON.parse(data);
        if (msg.op === 'file_ack') {
          if (!wire.acked.has(msg.transfer)) wire.acked.set(msg.transfer, new Set());
          wire.acked.get(msg.transfer).add(msg.chunk);
        } else if (msg.op === undefined) {
          wire.replies.push(msg);
        }
      });
    }
    send(data, ...rest) {
      if (typeof data === 'string') {
        if (data !== 'ping') wire.requests.push(JSON.parse(data));
      } else {
        const c = decodeChunk(data);
        wire.sent.push({ transfer: c.transfer, index: c.index });
        if (wire.acked.get(c.transfer)?.has(c.index)) wire.resent.push(c.index);
      }
      return super.send(data, ...rest);
    }
  }
  return { wire, RecordingWebSocket };
}


const user = (server, sub, options = {}) =>
  client({ urls: server.ws, token: signJwt({ sub }), ...options }).connect();

/** Progress events: `acked` and `bytes` never go back; the last one is the whole file. */
function checkProgress(events, { size, field }) {
  assert.ok(events.length > 2, `${events.length} progress events`);
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i][field] >= events[i - 1][field], `${field} never goes back (${i})`);
    assert.ok(events[i].bytes >= events[i - 1].bytes, `bytes never go back (${i})`);
    assert.equal(events[i].transfer, events[0].transfer);
  }
  const last = events.at(-1);
  assert.equal(last[field], last.chunks);
  assert.equal(last.acked, last.chunks);
  assert.equal(last.bytes, size);
  assert.equal(last.size, size);
}

let seq = 0;
const uniqueRoom = (what) => `${what}-${process.pid}-${++seq}`;

// ------------------------------------------------------------------ tests

describe('file transfer against switchboard serve', () => {
  let server;

  it('starts', async () => {
    server = await startServer(['--jwt-secret', JWT_SECRET]);
  });

  it('a 12 MB file to a room: progress to the end, a `file` event for the members, downloaded intact', async (t) => {
    const room = uniqueRoom('files');
    const alice = user(server, 'alice');
    const bob = user(server, 'bob');
    await alice.join(room);
    await bob.join(room);
    const announced = [];
    bob.on('file', (f) => announced.push(f));
    const aliceFiles = [];
    alice.on('file', (f) => aliceFiles.push(f));
    const clientEvents = [];
    alice.on('fileprogress', (e) => clientEvents.push(e));

    const data = randomBytes(12 * MB + 12345);
    const up = [];
    const t0 = Date.now();
    const sent = await alice.sendFile({ room }, data, { name: 'big.bin', onProgress: (e) => up.push(e) });
    const upMs = Date.now() - t0;
    assert.deepEqual(sent, { transfer: sent.transfer, name: 'big.bin', size: data.length, sha256: sha(data) });
    assert.match(sent.transfer, /^[0-9a-f]{32}$/);
    checkProgress(up, { size: data.length, field: 'acked' });
    assert.ok(up.every((e) => e.direction === 'upload' && e.name === 'big.bin'));
    assert.deepEqual(clientEvents, up, 'the fileprogress event carries the same');

    const f = await waitFor(() => announced[0], 'the file event');
    assert.deepEqual(
      { ...f, at: undefined, offset: undefined, epoch: undefined },
      {
        transfer: sent.transfer,
        name: 'big.bin',
        size: data.length,
        sha256: sha(data),
        room,
        from: 'alice',
        at: undefined,
        offset: undefined,
        epoch: undefined,
      },
    );
    await waitFor(() => aliceFiles.length === 1, 'the sender, a member, hears of it too');

    const down = [];
    const t1 = Date.now();
    const got = await bob.receiveFile(f, { onProgress: (e) => down.push(e) });
    const downMs = Date.now() - t1;
    assert.equal(got.transfer, sent.transfer);
    assert.equal(got.name, 'big.bin');
    assert.equal(got.size, data.length);
    assert.equal(got.sha256, sha(data));
    assert.ok(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.length).equals(data));
    checkProgress(down, { size: data.length, field: 'received' });

    const { files } = await bob.files();
    const listed = files.find((x) => x.transfer === sent.transfer);
    assert.ok(listed, 'files() lists it');
    assert.deepEqual(listed.to, { room });
    assert.equal(listed.from, 'alice');
    // In history like any room message.
    const { messages } = await bob.history(room);
    assert.equal(messages.filter((m) => m.event === 'file').length, 1);
    t.diagnostic(`12 MB: upload ${upMs} ms, download ${downMs} ms`);
  });

  it('a 6 MB Blob to a user: announced in their personal room; the recipient and the sender may download, others not', async () => {
    const alice = user(server, 'alice');
    const bob = user(server, 'bob');
    const carol = user(server, 'carol');
    await Promise.all([alice, bob, carol].map((sb) => waitFor(() => sb.readyState === 'open', 'open')));
    const announced = [];
    bob.on('file', (f) => announced.push(f));

    const data = randomBytes(6 * MB);
    const up = [];
    const sent = await alice.sendFile({ user: 'bob' }, new Blob([data]), {
      name: 'for-bob.bin',
      chunkSize: 16 * 1024,
      onProgress: (e) => up.push(e),
    });
    assert.equal(sent.sha256, sha(data));
    checkProgress(up, { size: data.length, field: 'acked' });
    assert.equal(up[0].chunks, Math.ceil(data.length / (16 * 1024)), 'the chunk size asked for');

    const f = await waitFor(() => announced[0], 'the file event in user:bob');
    assert.equal(f.room, 'user:bob');
    assert.equal(f.transfer, sent.transfer);
    assert.equal(f.from, 'alice');

    const got = await bob.receiveFile(sent.transfer);
    assert.equal(got.sha256, sha(data));
    assert.ok(Buffer.from(got.data).equals(data));
    const own = await alice.receiveFile(sent.transfer);
    assert.ok(Buffer.from(own.data).equals(data), 'the sender downloads too');
    await assert.rejects(carol.receiveFile(sent.transfer), { code: 'forbidden' });
    assert.ok((await bob.files()).files.some((x) => x.transfer === sent.transfer && x.to.user === 'bob'));
    assert.ok(!(await carol.files()).files.some((x) => x.transfer === sent.transfer));

    // The sender cancels: gone.
    await alice.cancelFile(sent.transfer);
    await assert.rejects(bob.receiveFile(sent.transfer), { code: 'not_found' });
  });

  it('the connection is cut mid-upload and mid-download (TCP proxy): both resume, no acknowledged chunk resent, SHA-256 right', async (t) => {
    const proxy = await tcpProxy(server.port);
    try {
      const room = uniqueRoom('cut');
      const A = recorder();
      const B = recorder();
      const alice = client({ urls: proxy.ws, token: signJwt({ sub: 'alice' }), WebSocket: A.RecordingWebSocket }).connect();
      const bob = client({ urls: proxy.ws, token: signJwt({ sub: 'bob' }), WebSocket: B.RecordingWebSocket }).connect();
      await alice.join(room);
      await bob.join(room);
      const aliceStates = [];
      alice.on('state', (e) => aliceStates.push(e.state));

      const data = randomBytes(10 * MB + 777);
      const up = [];
      let ackedAtCut = null;
      const sent = await alice.sendFile({ room }, data, {
        name: 'cut.bin',
        onProgress: (e) => {
          up.push(e);
          if (ackedAtCut === null && e.acked >= e.chunks / 3) {
            ackedAtCut = e.acked;
            proxy.cut();
          }
        },
      });
      assert.ok(ackedAtCut > 0, 'cut mid-way');
      assert.ok(aliceStates.includes('reconnecting'), 'the client noticed');
      assert.equal(sent.sha256, sha(data));
      checkProgress(up, { size: data.length, field: 'acked' });
      const offers = A.wire.requests.filter((r) => r.op === 'file_offer');
      assert.equal(offers.length, 2, 'offered, then offered again once');
      assert.equal(offers[1].transfer, sent.transfer, 'the resume names the transfer');
      const resume = A.wire.replies.find((r) => r.id === offers[1].id);
      assert.ok(resume.ok && resume.next >= ackedAtCut, `resumed from next ${resume.next} ≥ ${ackedAtCut} acknowledged`);
      const chunks = up[0].chunks;
      assert.deepEqual(A.wire.resent, [], 'no acknowledged chunk sent again');
      const counts = new Map();
      for (const s of A.wire.sent) counts.set(s.index, (counts.get(s.index) ?? 0) + 1);
      assert.equal(counts.size, chunks, 'every chunk sent');
      const twice = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
      assert.ok(twice.length <= resume.window, `at most a window sent twice (${twice.length})`);
      assert.ok(twice.every((i) => i >= resume.next), 'only chunks the server did not hold');
      t.diagnostic(
        `upload: ${chunks} chunks, cut at ${ackedAtCut} acknowledged, resumed from ${resume.next}, ` +
          `${A.wire.sent.length} chunk frames sent (${twice.length} twice)`,
      );

      const down = [];
      let heldAtCut = null;
      const got = await bob.receiveFile(sent.transfer, {
        onProgress: (e) => {
          down.push(e);
          if (heldAtCut === null && e.received >= e.chunks / 2) {
            heldAtCut = e.received;
            proxy.cut();
          }
        },
      });
      assert.ok(heldAtCut > 0);
      assert.equal(got.sha256, sha(data));
      assert.ok(Buffer.from(got.data).equals(data));
      checkProgress(down, { size: data.length, field: 'received' });
      const gets = B.wire.requests.filter((r) => r.op === 'file_get');
      assert.equal(gets.length, 2);
      assert.equal(gets[0].from, 0);
      assert.ok(gets[1].from >= heldAtCut && gets[1].from < chunks, `asked again from ${gets[1].from}`);
      const received = B.wire.received.filter((r) => r.transfer === sent.transfer).map((r) => r.index);
      assert.equal(new Set(received).size, received.length, 'no chunk received twice');
      assert.equal(received.length, chunks);
      const acks = B.wire.requests.filter((r) => r.op === 'file_ack');
      assert.equal(acks.length, chunks, 'each chunk acknowledged once');
      t.diagnostic(`download: cut at ${heldAtCut} held, asked again from ${gets[1].from}`);
      assert.equal(proxy.cuts, 2);
    } finally {
      await proxy.close();
    }
  });

  it('an admin disconnect (reconnect: true) mid-download of 20 MB: resumes from the chunks held', async (t) => {
    const alice = user(server, 'alice');
    const B = recorder();
    const bob = client({ urls: server.ws, token: signJwt({ sub: 'bob' }), WebSocket: B.RecordingWebSocket }).connect();
    const data = randomBytes(20 * MB);
    const sent = await alice.sendFile({ user: 'bob' }, data);
    await waitFor(() => bob.readyState === 'open', 'bob');
    const first = bob.socket;
    let kick = null;
    const down = [];
    const got = await bob.receiveFile(sent.transfer, {
      onProgress: (e) => {
        down.push(e);
        if (kick === null && e.received >= e.chunks / 10) {
          kick = admin(server, 'POST', '/api/v1/disconnect', { socket: first, reconnect: true });
        }
      },
    });
    assert.deepEqual(await kick, { disconnected: 1 });
    assert.notEqual(bob.socket, first, 'on a new connection');
    assert.ok(Buffer.from(got.data).equals(data));
    assert.equal(got.sha256, sha(data));
    checkProgress(down, { size: data.length, field: 'received' });
    const gets = B.wire.requests.filter((r) => r.op === 'file_get');
    assert.equal(gets.length, 2, 'asked again once');
    assert.ok(gets[1].from > 0 && gets[1].from < down[0].chunks);
    const received = B.wire.received.map((r) => r.index);
    assert.equal(new Set(received).size, received.length, 'no chunk received twice');
    t.diagnostic(`kicked at ${gets[1].from} of ${down[0].chunks} chunks`);
  });

  it('an empty file: complete at once, downloaded as 0 bytes', async () => {
    const alice = user(server, 'alice');
    const room = uniqueRoom('empty');
    await alice.join(room);
    const announced = [];
    alice.on('file', (f) => announced.push(f));
    const sent = await alice.sendFile({ room }, new Uint8Array(0), { name: 'empty' });
    assert.equal(sent.sha256, sha(Buffer.alloc(0)));
    const f = await waitFor(() => announced[0], 'the file event');
    assert.equal(f.size, 0);
    const got = await alice.receiveFile(f);
    assert.equal(got.data.length, 0);
    assert.equal(got.sha256, sent.sha256);
  });

  it('offers the server refuses: a room one may not publish to, a file over --max-file-size', async () => {
    const restricted = await startServer([
      '--jwt-secret',
      JWT_SECRET,
      '--max-file-size',
      String(MB),
      '--config',
      writeConfig('[[rooms]]\npattern = "ro:*"\njoin = "anyone"\npublish = "none"\n[[rooms]]\npattern = "*"\njoin = "anyone"\npublish = "users"\n'),
    ]);
    try {
      const alice = user(restricted, 'alice');
      await assert.rejects(alice.sendFile({ room: 'ro:x' }, new Uint8Array(10)), { code: 'forbidden' });
      await assert.rejects(alice.sendFile({ room: 'ok' }, new Uint8Array(MB + 1)), { code: 'too_large' });
      const ok = await alice.sendFile({ room: 'ok' }, new Uint8Array(MB).fill(3));
      assert.equal(ok.size, MB);
    } finally {
      await restricted.kill();
    }
  });

  it('stops', async () => {
    await server.kill('SIGTERM');
  });
});

describe('file transfer across server restarts', () => {
  /**
   * Uploads `data` and SIGKILLs the server once a third is acknowledged,
   * then starts it again on the same port with the same arguments.
   */
  async function uploadAcrossRestart(args) {
    let server = await startServer(args);
    const A = recorder();
    const alice = client({
      urls: server.ws,
      token: signJwt({ sub: 'alice' }),
      WebSocket: A.RecordingWebSocket,
      backoff: { initial: 50, max: 200 },
    }).connect();
    const data = randomBytes(8 * MB + 3);
    let restarted = null;
    let ackedAtKill = null;
    const up = [];
    try {
      const sent = await alice.sendFile({ user: 'bob' }, data, {
        name: 'restart.bin',
        onProgress: (e) => {
          up.push(e);
          if (ackedAtKill === null && e.acked >= e.chunks / 3) {
            ackedAtKill = e.acked;
            server.proc.kill('SIGKILL');
            restarted = server.exit.then(() => startServer(args, server.port));
          }
        },
      });
      server = await restarted;
      return { server, sent, data, up, ackedAtKill, wire: A.wire };
    } catch (error) {
      (await restarted)?.kill();
      throw error;
    } finally {
      alice.close();
    }
  }

  it('with --data-dir: the upload resumes from what the server held; bob downloads it intact', async (t) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-js-files-'));
    tmpDirs.push(dataDir);
    const { server, sent, data, up, ackedAtKill, wire } = await uploadAcrossRestart([
      '--jwt-secret',
      JWT_SECRET,
      '--data-dir',
      dataDir,
    ]);
    try {
      assert.equal(sent.sha256, sha(data));
      checkProgress(up, { size: data.length, field: 'acked' });
      const offers = wire.requests.filter((r) => r.op === 'file_offer');
      assert.equal(offers.length, 2);
      assert.equal(offers[1].transfer, sent.transfer, 'the same transfer');
      const resume = wire.replies.find((r) => r.id === offers[1].id);
      assert.ok(resume.next >= ackedAtKill, `next ${resume.next} ≥ ${ackedAtKill} acknowledged before the kill`);
      assert.deepEqual(wire.resent, [], 'no acknowledged chunk sent again');
      const bob = user(server, 'bob');
      const got = await bob.receiveFile(sent.transfer);
      assert.ok(Buffer.from(got.data).equals(data));
      t.diagnostic(`killed at ${ackedAtKill} acknowledged, resumed from ${resume.next} of ${up[0].chunks}`);
    } finally {
      await server.kill();
    }
  });

  it('without --data-dir: the resume is not_found, the file is offered anew and completes', async () => {
    const { server, sent, data, up, wire } = await uploadAcrossRestart(['--jwt-secret', JWT_SECRET]);
    try {
      assert.equal(sent.sha256, sha(data));
      const offers = wire.requests.filter((r) => r.op === 'file_offer');
      assert.equal(offers.length, 3, 'offer, resume, offer anew');
      assert.ok(offers[1].transfer);
      assert.equal(wire.replies.find((r) => r.id === offers[1].id).error.code, 'not_found');
      assert.equal(offers[2].transfer, undefined);
      assert.notEqual(sent.transfer, offers[1].transfer, 'a new transfer');
      const last = up.filter((e) => e.transfer === sent.transfer);
      checkProgress(last, { size: data.length, field: 'acked' });
      const bob = user(server, 'bob');
      const got = await bob.receiveFile(sent.transfer);
      assert.ok(Buffer.from(got.data).equals(data));
    } finally {
      await server.kill();
    }
  });
});

const tmpDirs = [];
function writeConfig(text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-js-files-'));
  tmpDirs.push(dir);
  const file = path.join(dir, 'config.toml');
  fs.writeFileSync(file, text);
  return file;
}
after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});
