// Unit tests of the file transfer of switchboard.js: chunk frames, SHA-256,
// and uploads/downloads against a fake WebSocket driven by hand.

import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { Switchboard, Sha256, sha256Hex, encodeChunk, decodeChunk } from '../switchboard.js';
import { fakeWebSocket, socketN, waitFor } from './fake.js';

const T1 = '0123456789abcdef0123456789abcdef';
const T2 = 'fedcba9876543210fedcba9876543210';
const nodeSha = (b) => createHash('sha256').update(b).digest('hex');

const findRequest = (ws, op, nth = 1) =>
  waitFor(() => ws.requests().filter((r) => r.op === op)[nth - 1], `${op} #${nth} on ${ws.url}`);

const clients = [];
function client(options) {
  const sb = new Switchboard({ environment: null, urls: 'ws://a/ws', random: () => 0, ...options });
  clients.push(sb);
  return sb;
}
afterEach(() => {
  for (const sb of clients.splice(0)) sb.close();
});

describe('chunk frames', () => {
  it('encode: 0x01, the 16 bytes of the id, the index big-endian, the data', () => {
    const frame = encodeChunk(T1, 0x01020304, new Uint8Array([9, 8, 7]));
    assert.equal(frame.length, 24);
    assert.equal(frame[0], 0x01);
    assert.deepEqual([...frame.subarray(1, 17)], [...Buffer.from(T1, 'hex')]);
    assert.deepEqual([...frame.subarray(17, 21)], [1, 2, 3, 4]);
    assert.deepEqual([...frame.subarray(21)], [9, 8, 7]);
    // The largest index; an id given as bytes; data as an ArrayBuffer or a Buffer with an offset.
    const big = encodeChunk(Buffer.from(T2, 'hex'), 0xffffffff, new Uint8Array([1, 2]).buffer);
    assert.deepEqual([...big.subarray(17, 21)], [255, 255, 255, 255]);
    const pooled = Buffer.from('xxhello').subarray(2);
    assert.deepEqual(Buffer.from(encodeChunk(T1, 5, pooled).subarray(21)).toString(), 'hello');
    assert.throws(() => encodeChunk('nothex', 0, new Uint8Array(1)), TypeError);
    assert.throws(() => encodeChunk(T1, -1, new Uint8Array(1)), RangeError);
    assert.throws(() => encodeChunk(T1, 2 ** 32, new Uint8Array(1)), RangeError);
  });

  it('decode: the fields, from an ArrayBuffer, a Buffer (with an offset) or fragments; null when not a chunk', () => {
    const data = randomBytes(1000);
    const frame = encodeChunk(T2.toUpperCase(), 77, data);
    for (const input of [
      frame,
      frame.buffer,
      Buffer.concat([Buffer.from('pad'), frame]).subarray(3),
      [Buffer.from(frame.subarray(0, 10)), Buffer.from(frame.subarray(10))],
    ]) {
      const c = decodeChunk(input);
      assert.equal(c.transfer, T2);
      assert.equal(c.index, 77);
      assert.deepEqual(Buffer.from(c.data), data);
    }
    assert.equal(decodeChunk(new Uint8Array(20).fill(1)), null, 'shorter than 21 bytes');
    const other = encodeChunk(T1, 0, new Uint8Array(0));
    assert.equal(decodeChunk(other).data.length, 0, 'an empty chunk is still a frame');
    other[0] = 2;
    assert.equal(decodeChunk(other), null, 'another tag');
    assert.equal(decodeChunk('text'), null);
  });
});

describe('SHA-256', () => {
  it('known vectors (FIPS 180-2 / NIST)', () => {
    const hex = (s) => new Sha256().update(new TextEncoder().encode(s)).hex();
    assert.equal(hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(
      hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
    assert.equal(
      hex(
        'abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu',
      ),
      'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1',
    );
    const million = new Sha256();
    const block = new Uint8Array(1000).fill(0x61);
    for (let i = 0; i < 1000; i++) million.update(block);
    assert.equal(million.hex(), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
    assert.equal(million.hex(), million.hex(), 'digest is stable');
    assert.throws(() => million.update(block), /after digest/);
  });

  it('incremental: any split gives node:crypto’s digest (lengths around the 55/56/64-byte padding edges too)', () => {
    for (const n of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096, 100_003]) {
      const data = randomBytes(n);
      const h = new Sha256();
      let at = 0;
      while (at < n) {
        const step = Math.min(n - at, 1 + Math.floor(Math.random() * 150));
        h.update(data.subarray(at, at + step));
        at += step;
      }
      assert.equal(h.hex(), nodeSha(data), `${n} bytes`);
    }
  });

  it('sha256Hex: bytes and Blobs, with WebCrypto and without (incremental JS over a Blob > 32 MiB)', async () => {
    const data = randomBytes(300_000);
    assert.equal(await sha256Hex(data), nodeSha(data));
    assert.equal(await sha256Hex(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)), nodeSha(data));
    assert.equal(await sha256Hex(new Blob([data])), nodeSha(data));
    const big = Buffer.alloc((33 << 20) + 17, 7);
    assert.equal(await sha256Hex(new Blob([big])), nodeSha(big));
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
    Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true, writable: true });
    try {
      assert.equal(globalThis.crypto, undefined);
      assert.equal(await sha256Hex(data), nodeSha(data));
      assert.equal(await sha256Hex(new Blob([data])), nodeSha(data));
    } finally {
      Object.defineProperty(globalThis, 'crypto', saved);
    }
  });
});

/** A connected client on a fake WebSocket. */
async function connected(options = {}) {
  const WS = fakeWebSocket();
  const sb = client({ WebSocket: WS, ...options }).connect();
  const ws = await socketN(WS, 1);
  ws.welcome();
  return { WS, sb, ws };
}

describe('sendFile (fake server)', () => {
  it('offers, keeps at most `window` chunks unacknowledged, resumes after a reconnect from `next`, resolves on file_complete', async () => {
    const { WS, sb, ws } = await connected();
    assert.equal(ws.binaryType, 'arraybuffer');
    const file = randomBytes(10 * 1024 - 300); // 10 chunks of 1024, the last 724 bytes
    const events = [];
    const clientEvents = [];
    sb.on('fileprogress', (e) => clientEvents.push(e));
    const done = sb.sendFile({ room: 'r' }, file, { name: 'a.bin', chunkSize: 1024, onProgress: (e) => events.push(e) });
    const offer = await findRequest(ws, 'file_offer');
    const { id: _id, ...fields } = offer;
    assert.deepEqual(fields, {
      op: 'file_offer',
      to: { room: 'r' },
      name: 'a.bin',
      size: file.length,
      sha256: nodeSha(file),
      chunk_size: 1024,
    });
    ws.reply(offer, { transfer: T1, chunk_size: 1024, chunks: 10, next: 0, window: 3, complete: false });
    await waitFor(() => ws.chunks().length === 3, '3 chunks');
    await sleep(20);
    assert.deepEqual(
      ws.chunks().map((c) => c.index),
      [0, 1, 2],
      'no more than the window',
    );
    for (const c of ws.chunks()) {
      assert.equal(c.transfer, T1);
      assert.deepEqual(Buffer.from(c.data), file.subarray(c.index * 1024, (c.index + 1) * 1024));
    }
    for (const i of [0, 1, 2, 3, 4]) {
      ws.push({ op: 'file_ack', transfer: T1, chunk: i });
      await waitFor(() => ws.chunks().length === Math.min(8, i + 4), `chunk ${i + 3}`);
    }
    // 5, 6, 7 are out and not acknowledged: the connection drops.
    ws.serverClose(1006);
    const ws2 = await socketN(WS, 2);
    ws2.welcome();
    const resume = await findRequest(ws2, 'file_offer');
    assert.equal(resume.transfer, T1);
    assert.equal(resume.sha256, nodeSha(file));
    assert.equal(resume.size, file.length);
    ws2.reply(resume, { transfer: T1, chunk_size: 1024, chunks: 10, next: 5, window: 3, complete: false });
    await waitFor(() => ws2.chunks().length === 3, '3 chunks on the new connection');
    for (let i = 5; i < 10; i++) {
      ws2.push({ op: 'file_ack', transfer: T1, chunk: i });
      await sleep(5);
    }
    assert.deepEqual(
      ws2.chunks().map((c) => c.index),
      [5, 6, 7, 8, 9],
      'from next, nothing acknowledged again',
    );
    assert.equal(ws2.chunks()[4].data.length, 724);
    ws2.push({ op: 'file_complete', transfer: T1 });
    assert.deepEqual(await done, { transfer: T1, name: 'a.bin', size: file.length, sha256: nodeSha(file) });
    assert.deepEqual(events, clientEvents);
    assert.ok(events.every((e) => e.direction === 'upload' && e.transfer === T1 && e.chunks === 10 && e.size === file.length));
    for (let i = 1; i < events.length; i++) assert.ok(events[i].acked >= events[i - 1].acked, 'acked never goes back');
    assert.deepEqual(
      events.map((e) => e.acked),
      [0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10],
    );
    assert.equal(events.at(-1).bytes, file.length);
  });

  it('a resume the server does not know (not_found) is offered anew; file_error checksum_mismatch rejects', async () => {
    const { WS, sb, ws } = await connected();
    const file = new Uint8Array(3000).fill(1);
    const done = sb.sendFile({ user: 'bob' }, new Blob([file]), { name: 'b' });
    const offer = await findRequest(ws, 'file_offer');
    assert.deepEqual(offer.to, { user: 'bob' });
    assert.equal(offer.chunk_size, undefined);
    ws.reply(offer, { transfer: T1, chunk_size: 1024, chunks: 3, next: 0, window: 16, complete: false });
    await waitFor(() => ws.chunks().length === 3, 'the chunks');
    ws.serverClose(1006);
    const ws2 = await socketN(WS, 2);
    ws2.welcome();
    const resume = await findRequest(ws2, 'file_offer');
    assert.equal(resume.transfer, T1);
    ws2.push({ id: resume.id, ok: false, error: { code: 'not_found', message: 'no such transfer' } });
    const anew = await findRequest(ws2, 'file_offer', 2);
    assert.equal(anew.transfer, undefined, 'a fresh offer');
    ws2.reply(anew, { transfer: T2, chunk_size: 1024, chunks: 3, next: 0, window: 16, complete: false });
    await waitFor(() => ws2.chunks().length === 3, 'all chunks again');
    assert.ok(ws2.chunks().every((c) => c.transfer === T2));
    ws2.push({ op: 'file_error', transfer: T2, code: 'checksum_mismatch', message: 'bad' });
    await assert.rejects(done, { code: 'checksum_mismatch' });
  });

  it('complete: true on a resume resolves at once; out_of_order goes on from the server’s next; bad offers reject', async () => {
    const { WS, sb, ws } = await connected();
    const file = new Uint8Array(5000).fill(2);
    const done = sb.sendFile({ room: 'r' }, file);
    const offer = await findRequest(ws, 'file_offer');
    assert.equal(offer.name, 'file');
    ws.reply(offer, { transfer: T1, chunk_size: 1024, chunks: 5, next: 0, window: 2, complete: false });
    await waitFor(() => ws.chunks().length === 2, '2 chunks');
    ws.push({ op: 'file_error', transfer: T1, code: 'out_of_order', message: 'm', next: 1 });
    await waitFor(() => ws.chunks().length === 3, 'chunk 1 again');
    assert.equal(ws.chunks()[2].index, 1);
    ws.serverClose(1006);
    const ws2 = await socketN(WS, 2);
    ws2.welcome();
    const resume = await findRequest(ws2, 'file_offer');
    ws2.reply(resume, { transfer: T1, chunk_size: 1024, chunks: 5, next: 5, window: 2, complete: true });
    assert.equal((await done).transfer, T1);
    assert.equal(ws2.chunks().length, 0);

    const refused = sb.sendFile({ room: 'r' }, file);
    const o2 = await findRequest(ws2, 'file_offer', 2);
    ws2.push({ id: o2.id, ok: false, error: { code: 'too_large', message: 'over' } });
    await assert.rejects(refused, { code: 'too_large' });
    await assert.rejects(sb.sendFile({ room: 'r', user: 'x' }, file), { code: 'bad_request' });
    await assert.rejects(sb.sendFile({ room: 'r' }, 'a string'), TypeError);
  });

  it('an abort rejects with `aborted` and cancels the transfer; close() rejects with `closed`', async () => {
    const { sb, ws } = await connected();
    const ac = new AbortController();
    const done = sb.sendFile({ room: 'r' }, new Uint8Array(4096), { signal: ac.signal });
    const offer = await findRequest(ws, 'file_offer');
    ws.reply(offer, { transfer: T1, chunk_size: 1024, chunks: 4, next: 0, window: 1, complete: false });
    await waitFor(() => ws.chunks().length === 1, 'a chunk');
    ac.abort();
    await assert.rejects(done, { code: 'aborted' });
    const cancel = await findRequest(ws, 'file_cancel');
    assert.equal(cancel.transfer, T1);
    ws.push({ op: 'file_ack', transfer: T1, chunk: 0 });
    await sleep(10);
    assert.equal(ws.chunks().length, 1, 'nothing more after the abort');

    const other = sb.sendFile({ room: 'r' }, new Uint8Array(4096));
    const o2 = await findRequest(ws, 'file_offer', 2);
    ws.reply(o2, { transfer: T2, chunk_size: 1024, chunks: 4, next: 0, window: 1, complete: false });
    sb.close();
    await assert.rejects(other, { code: 'closed' });
  });
});

describe('receiveFile (fake server)', () => {
  const chunked = (data, size) => {
    const out = [];
    for (let at = 0; at < data.length; at += size) out.push(data.subarray(at, at + size));
    return out;
  };

  it('file_get, acknowledges each chunk, resumes from what it holds after a reconnect, checks the SHA-256', async () => {
    const { WS, sb, ws } = await connected();
    const file = randomBytes(8 * 1000 - 1);
    const parts = chunked(file, 1000);
    const events = [];
    const done = sb.receiveFile(T1, { onProgress: (e) => events.push(e) });
    await assert.rejects(sb.receiveFile(T1.toUpperCase()), { code: 'bad_request' }, 'one download of a transfer at a time');
    const get = await findRequest(ws, 'file_get');
    assert.deepEqual({ ...get, id: 0 }, { id: 0, op: 'file_get', transfer: T1, from: 0 });
    ws.reply(get, {
      transfer: T1,
      name: 'x.bin',
      size: file.length,
      sha256: nodeSha(file),
      chunk_size: 1000,
      chunks: 8,
      from: 0,
      window: 4,
    });
    for (let i = 0; i < 3; i++) ws.pushBinary(encodeChunk(T1, i, parts[i]));
    ws.pushBinary(encodeChunk(T2, 3, parts[3])); // another transfer's: ignored
    assert.deepEqual(
      ws.requests().filter((r) => r.op === 'file_ack'),
      [0, 1, 2].map((chunk) => ({ op: 'file_ack', transfer: T1, chunk })),
      'each chunk acknowledged, no id',
    );
    ws.serverClose(1006);
    const ws2 = await socketN(WS, 2);
    ws2.welcome();
    const again = await findRequest(ws2, 'file_get');
    assert.equal(again.from, 3, 'from the chunks held');
    ws2.reply(again, {
      transfer: T1,
      name: 'x.bin',
      size: file.length,
      sha256: nodeSha(file),
      chunk_size: 1000,
      chunks: 8,
      from: 3,
      window: 4,
    });
    for (let i = 3; i < 8; i++) ws2.pushBinary(encodeChunk(T1, i, parts[i]));
    const got = await done;
    assert.equal(got.name, 'x.bin');
    assert.equal(got.size, file.length);
    assert.equal(got.sha256, nodeSha(file));
    assert.ok(got.data instanceof Uint8Array);
    assert.deepEqual(Buffer.from(got.data), file);
    assert.deepEqual(
      events.map((e) => e.received),
      [0, 1, 2, 3, 3, 4, 5, 6, 7, 8],
    );
    assert.ok(events.every((e) => e.direction === 'download' && e.chunks === 8 && e.transfer === T1));
    assert.equal(events.at(-1).bytes, file.length);
  });

  it('a wrong SHA-256 rejects with checksum_mismatch; not_ready and file_error reject; a `file` event is accepted as the transfer', async () => {
    const { sb, ws } = await connected();
    const file = randomBytes(1500);
    const done = sb.receiveFile({ transfer: T1, name: 'n' });
    const get = await findRequest(ws, 'file_get');
    ws.reply(get, { transfer: T1, name: 'n', size: 1500, sha256: '0'.repeat(64), chunk_size: 1000, chunks: 2, from: 0, window: 4 });
    ws.pushBinary(encodeChunk(T1, 0, file.subarray(0, 1000)));
    ws.pushBinary(encodeChunk(T1, 1, file.subarray(1000)));
    await assert.rejects(done, { code: 'checksum_mismatch' });

    const notReady = sb.receiveFile(T2);
    const g2 = await findRequest(ws, 'file_get', 2);
    ws.push({ id: g2.id, ok: false, error: { code: 'not_ready', message: 'incomplete' } });
    await assert.rejects(notReady, { code: 'not_ready' });

    const gone = sb.receiveFile(T2);
    const g3 = await findRequest(ws, 'file_get', 3);
    ws.reply(g3, { transfer: T2, name: 'n', size: 1500, sha256: nodeSha(file), chunk_size: 1000, chunks: 2, from: 0, window: 4 });
    ws.push({ op: 'file_error', transfer: T2, code: 'not_found', message: 'expired' });
    await assert.rejects(gone, { code: 'not_found' });

    const wrongLength = sb.receiveFile(T2);
    const g4 = await findRequest(ws, 'file_get', 4);
    ws.reply(g4, { transfer: T2, name: 'n', size: 1500, sha256: nodeSha(file), chunk_size: 1000, chunks: 2, from: 0, window: 4 });
    ws.pushBinary(encodeChunk(T2, 0, file.subarray(0, 999)));
    await assert.rejects(wrongLength, { code: 'bad_chunk' });
  });
});

describe('file announcements and files()', () => {
  it('a `file` room message is a `message` and a `file` event; files() lists', async () => {
    const { sb, ws } = await connected();
    const files = [];
    const messages = [];
    sb.on('file', (f) => files.push(f));
    sb.on('message', (m) => messages.push(m));
    const data = { transfer: T1, name: 'r.pdf', size: 10, sha256: 'ab'.repeat(32) };
    ws.push({ op: 'message', room: 'user:alice', epoch: 'e', offset: 4, event: 'file', data, from: 'bob', at: 'now' });
    ws.push({ op: 'message', room: 'user:alice', epoch: 'e', offset: 5, event: 'file', data: { not: 'a file' }, from: null });
    assert.equal(messages.length, 2);
    assert.deepEqual(files, [{ ...data, room: 'user:alice', from: 'bob', offset: 4, epoch: 'e', at: 'now' }]);
    const listing = sb.files();
    const req = await findRequest(ws, 'files');
    ws.reply(req, { files: [{ ...data, from: 'bob', to: { user: 'alice' } }] });
    assert.deepEqual(await listing, { files: [{ ...data, from: 'bob', to: { user: 'alice' } }] });
    const cancel = sb.cancelFile(T1);
    ws.reply(await findRequest(ws, 'file_cancel'));
    assert.equal(await cancel, undefined);
  });
});
