// The demo chat of `switchboard serve` in a real browser (Debian's chromium,
// headless, driven by playwright-core): two pages chat in a room; the server
// is SIGKILLed and restarted on the same --data-dir and both pages show the
// reconnecting state, then every message published meanwhile appears once;
// going offline and back (context.setOffline) recovers the same way. A
// screenshot of the demo is saved under $OUT_DIR/browser/.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const BIN = path.join(
  process.env.SB_BIN_DIR ||
    path.join(process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache', 'switchboard-target'), 'release'),
  'switchboard',
);
const OUT = path.resolve(process.env.OUT_DIR || 'out', 'browser');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const KEY = 'browser-test-key';
const ROOM = 'e2e';
const T = { timeout: 60_000 };

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function listening(port, ms = 10_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

class Serve {
  constructor(port, dataDir) {
    this.port = port;
    this.dataDir = dataDir;
  }

  async start() {
    fs.mkdirSync(OUT, { recursive: true });
    const log = fs.openSync(path.join(OUT, `serve-${this.port}.log`), 'a');
    this.proc = spawn(
      BIN,
      ['serve', '--listen', `127.0.0.1:${this.port}`, '--api-key', KEY, '--data-dir', this.dataDir,
        '--ping-interval', '1s', '--ping-timeout', '1s'],
      { stdio: ['ignore', log, log] },
    );
    await listening(this.port);
  }

  kill() {
    this.proc?.kill('SIGKILL');
    this.proc = null;
  }

  async publish(data) {
    const res = await fetch(`http://127.0.0.1:${this.port}/api/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ room: ROOM, event: 'chat', data }),
    });
    assert.equal(res.status, 200);
    return res.json();
  }
}

/** Texts of the messages a page shows. */
const texts = (page) => page.$$eval('#messages li span', (spans) => spans.map((s) => s.textContent));

async function until(what, fn, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const state = (page) => page.$eval('#banner', (b) => b.dataset.state);

describe('demo chat in chromium', () => {
  let serve;
  let browser;
  let pages = [];
  let contexts = [];

  before(async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-browser-'));
    serve = new Serve(await freePort(), dataDir);
    await serve.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    for (const name of ['alice', 'bob']) {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error(`[${name}] ${e.message}`));
      await page.goto(`http://127.0.0.1:${serve.port}/?room=${ROOM}`);
      await page.fill('#name-input', name);
      contexts.push(context);
      pages.push(page);
    }
    for (const page of pages) await until('open', async () => (await state(page)) === 'open');
  }, { timeout: 60_000 });

  after(async () => {
    await browser?.close();
    serve?.kill();
  });

  it('two pages chat in a room', T, async () => {
    const [alice, bob] = pages;
    // Both joined (the presence list shows the other once joined).
    await until('bob joined', async () => (await alice.$$eval('#presence li', (l) => l.length)) >= 2);
    await alice.fill('#text-input', 'hello bob');
    await alice.click('#send-form button');
    await until('bob sees it', async () => (await texts(bob)).includes('hello bob'));
    await bob.fill('#text-input', 'hi alice');
    await bob.click('#send-form button');
    await until('alice sees it', async () => (await texts(alice)).includes('hi alice'));
    fs.mkdirSync(OUT, { recursive: true });
    await alice.screenshot({ path: path.join(OUT, 'chat.png'), fullPage: true });
  });

  it('a server killed and restarted on its data dir: reconnecting, then every message once', T, async () => {
    serve.kill();
    for (const page of pages) {
      await until('reconnecting banner', async () => (await state(page)) === 'reconnecting');
      assert.match(await page.$eval('#banner', (b) => b.textContent), /attempt \d+/);
    }
    await serve.start();
    const sent = ['while-away-1', 'while-away-2', 'while-away-3'];
    for (const text of sent) await serve.publish({ name: 'server', text });
    for (const page of pages) {
      await until('open again', async () => (await state(page)) === 'open');
      await until('the missed messages', async () => (await texts(page)).includes(sent[2]));
      const shown = await texts(page);
      for (const t of sent) assert.equal(shown.filter((x) => x === t).length, 1, `${t} once`);
      assert.equal(shown.filter((x) => x === 'hello bob').length, 1, 'history not repeated');
    }
  });

  it('the dashboard shows live connections, message rates and the room with who is present', T, async () => {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${serve.port}/dashboard`);
    await until('connections', async () => Number(await page.textContent('#connections')) >= 2);
    await until('a rate', async () => (await page.textContent('#in-rate')) !== '–');
    await page.fill('#key-input', KEY);
    await page.click('#key-form button');
    await until('the room row', async () =>
      (await page.$$eval('#rooms tr', (rows) => rows.map((r) => r.textContent))).some((t) => t.startsWith(ROOM)),
    );
    const row = await page.$$eval('#rooms tr', (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
    const e2e = row.find((r) => r[0] === ROOM);
    assert.equal(e2e[1], '2', 'two users present');
    await page.screenshot({ path: path.join(OUT, 'dashboard.png'), fullPage: true });
  });

  it('offline and back: the messages published meanwhile appear once', T, async () => {
    const [alice, bob] = pages;
    await contexts[1].setOffline(true);
    await until('bob notices', async () => (await state(bob)) !== 'open');
    const sent = ['offline-1', 'offline-2'];
    for (const text of sent) await serve.publish({ name: 'server', text });
    await until('alice got them', async () => (await texts(alice)).includes(sent[1]));
    await contexts[1].setOffline(false);
    await until('bob back', async () => (await state(bob)) === 'open');
    await until('bob got them', async () => (await texts(bob)).includes(sent[1]));
    const shown = await texts(bob);
    for (const t of sent) assert.equal(shown.filter((x) => x === t).length, 1, `${t} once`);
  });
});
