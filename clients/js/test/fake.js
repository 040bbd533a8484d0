// What the unit tests share: a fake WebSocket whose "server" side is driven
// by hand (welcome, replies, pushes, binary frames, close codes), and polling.

import { setTimeout as sleep } from 'node:timers/promises';

import { decodeChunk } from '../switchboard.js';

/** A fresh fake WebSocket class with its own list of instances. */
export function fakeWebSocket() {
  return class FakeWebSocket {
    static instances = [];
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.readyState = 0;
      this.closedByClient = null;
      this.binaryType = 'blob';
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      FakeWebSocket.instances.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('not open');
      // Binary frames are copied: the client may reuse its buffers.
      this.sent.push(typeof data === 'string' ? data : new Uint8Array(data));
    }
    close(code, reason) {
      this.closedByClient = { code, reason };
      this.readyState = 3;
    }
    // --- the server's side
    welcome(socket = `s${FakeWebSocket.instances.indexOf(this) + 1}`, user = 'u1') {
      this.readyState = 1;
      this.onopen?.({});
      this.push({ op: 'welcome', socket, user, ping_interval: 25000 });
    }
    push(value) {
      this.onmessage?.({ data: typeof value === 'string' ? value : JSON.stringify(value) });
    }
    pushBinary(bytes) {
      const copy = new Uint8Array(bytes);
      this.onmessage?.({ data: copy.buffer });
    }
    serverClose(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    /** Requests received (JSON), pings left out. */
    requests() {
      return this.sent.filter((s) => typeof s === 'string' && s !== 'ping').map((s) => JSON.parse(s));
    }
    /** The chunk frames sent, decoded. */
    chunks() {
      return this.sent.filter((s) => typeof s !== 'string').map((s) => decodeChunk(s));
    }
    reply(req, fields = {}) {
      this.push({ id: req.id, ok: true, ...fields });
    }
  };
}

/** Polls `pred` until it is truthy (bounded: fails after `ms`). */
export async function waitFor(pred, what = 'a condition', ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

export const socketN = (WS, n) => waitFor(() => WS.instances[n - 1], `WebSocket #${n}`);
