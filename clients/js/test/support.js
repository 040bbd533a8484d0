// What the integration tests share: `switchboard serve` started from
// $SB_BIN_DIR (default `$CARGO_TARGET_DIR/release`, CARGO_TARGET_DIR
// defaulting to ~/.cache/switchboard-target) and killed again when the test
// process ends (also when a test fails), the admin API, HS256 tokens, polling.

import { after, afterEach } from 'node:test';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

import { Switchboard } from '../switchboard.js';

export const BIN_DIR =
  process.env.SB_BIN_DIR ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache', 'switchboard-target'), 'release');
export const BIN = path.join(BIN_DIR, 'switchboard');
export const API_KEY = 'k';

// ------------------------------------------------------------------ servers

const running = new Set();
process.on('exit', () => {
  for (const s of running) {
    try {
      s.proc.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.setTimeout(500, () => done(false));
  });
}

/**
 * `switchboard serve --listen 127.0.0.1:PORT --api-key k ARGS…`, resolved once
 * the port accepts TCP connections (10 s at most).
 */
export async function startServer({ port, args = [] } = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`server binary not found: ${BIN} (set SB_BIN_DIR or CARGO_TARGET_DIR)`);
  }
  port ??= await freePort();
  const argv = ['serve', '--listen', `127.0.0.1:${port}`, '--api-key', API_KEY, '--log-level', 'warn', ...args];
  const proc = spawn(BIN, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    log = (log + chunk).slice(-8192);
  });
  let exited = null;
  const exit = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      running.delete(server);
      resolve(exited);
    });
  });
  proc.once('error', (error) => {
    exited = { error: String(error) };
  });
  const server = {
    port,
    proc,
    exit,
    ws: `ws://127.0.0.1:${port}/ws`,
    http: `http://127.0.0.1:${port}`,
    log: () => log,
    /** Sends `signal` (default SIGKILL) and waits for the exit (SIGKILL after 5 s). */
    async kill(signal = 'SIGKILL') {
      if (exited) return exited;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const result = await exit;
      clearTimeout(timer);
      return result;
    },
  };
  running.add(server);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`switchboard exited at start (${JSON.stringify(exited)}): ${log}`);
    if (await accepts(port)) return server;
    if (Date.now() > deadline) {
      await server.kill();
      throw new Error(`switchboard did not accept connections on ${port} within 10 s: ${log}`);
    }
    await sleep(20);
  }
}

after(async () => {
  await Promise.all([...running].map((s) => s.kill()));
});

/** The admin API: POST/GET with the key; the JSON answer (throws on a non-2xx). */
export async function admin(server, method, route, body) {
  const res = await fetch(`${server.http}${route}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(3000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// ------------------------------------------------------------------ helpers

export function signJwt(payload, secret) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Polls `pred` (may be async) until truthy; fails after `ms`. */
export async function waitFor(pred, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}


const clients = [];

/**
 * A client with short backoff, heartbeat and request timeouts (the `ws`
 * WebSocket; `options` override); closed after each test.
 */
export function client(options) {
  const sb = new Switchboard({
    WebSocket,
    environment: null,
    backoff: { initial: 50, max: 300, factor: 2 },
    pingInterval: 2000,
    pingTimeout: 2000,
    requestTimeout: 5000,
    ...options,
  });
  clients.push(sb);
  return sb;
}
afterEach(() => {
  for (const sb of clients.splice(0)) sb.close();
});
