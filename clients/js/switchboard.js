// The switchboard native-protocol client for browsers and Node ≥ 20
// (docs/protocol.md, "Native protocol"). No runtime dependencies.
//
//   import { Switchboard } from './switchboard.js';
//   const sb = new Switchboard({ urls: ['wss://a.example/ws', 'wss://b.example/ws'], token: getToken });
//   sb.on('message', (m) => console.log(m.room, m.offset, m.data));
//   sb.connect();
//   await sb.join('lobby', { presence: true });
//   await sb.publish('lobby', 'chat', { text: 'hi' });
//
// One WebSocket at a time. Reconnects with exponential backoff and full
// jitter over the primary URL and its backups, rejoins its rooms with
// `since` and delivers every room message once and in order.

const DEFAULT_BACKOFF = Object.freeze({ initial: 500, max: 20000, factor: 2 });

/** An error with a machine-readable `code` (the server's, or the client's own). */
export class SwitchboardError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   * @param {object} [details] the server's `error` object, when it sent one
   */
  constructor(code, message, details) {
    super(message || code);
    this.name = 'SwitchboardError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/**
 * The delay before attempt `attempt` (0-based): exponential with full jitter,
 * a uniformly random time in [0, min(max, initial × factor^attempt)].
 * `unit` is a random number in [0, 1).
 */
export function backoffDelay(attempt, backoff = DEFAULT_BACKOFF, unit = Math.random()) {
  const { initial, max, factor } = { ...DEFAULT_BACKOFF, ...backoff };
  const grown = initial * Math.pow(Math.max(1, factor), Math.min(Math.max(0, attempt), 64));
  const ceiling = Math.max(0, Math.min(max, grown));
  const u = Number.isFinite(unit) ? Math.min(1, Math.max(0, unit)) : 0;
  return Math.floor(ceiling * u);
}

/**
 * The primary URL and its backups: stay on one URL while it works, move to
 * the next (wrapping around) after `failuresPerUrl` failures in a row.
 */
export class Rotation {
  constructor(urls, failuresPerUrl = 2) {
    if (!urls.length) throw new TypeError('at least one URL');
    this.urls = urls;
    this.index = 0;
    this.failures = 0;
    this.failuresPerUrl = Math.max(1, failuresPerUrl | 0);
  }
  current() {
    return this.urls[this.index];
  }
  failed() {
    this.failures += 1;
    if (this.failures >= this.failuresPerUrl) this.skip();
  }
  skip() {
    this.failures = 0;
    this.index = (this.index + 1) % this.urls.length;
  }
  succeeded() {
    this.failures = 0;
  }
}

function normalizeUrls(urls) {
  const list = typeof urls === 'string' ? [urls] : Array.isArray(urls) ? [...urls] : [];
  if (list.length === 0) throw new TypeError('Switchboard: `urls` needs at least one ws:// or wss:// URL');
  for (const u of list) {
    if (typeof u !== 'string' || !/^wss?:\/\//i.test(u)) {
      throw new TypeError(`Switchboard: not a ws:// or wss:// URL: ${String(u)}`);
    }
  }
  return list;
}

function withToken(url, token) {
  if (token === null || token === undefined || token === '') return url;
  const hash = url.indexOf('#');
  const base = hash === -1 ? url : url.slice(0, hash);
  const sep = base.includes('?') ? '&' : '?';
  return `${base}${sep}token=${encodeURIComponent(String(token))}`;
}

function reportError(error) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else if (typeof console !== 'undefined') console.error(error);
}

const noop = () => {};

/** Instances of `Switchboard.shared`, by URL list. */
const registry = new Map();

export class Switchboard {
  // Settings.
  #urls;
  #token;
  #pingInterval;
  #pingTimeout;
  #backoff;
  #maxAttempts;
  #queueLimit;
  #requestTimeout;
  #connectTimeout;
  #WebSocket;
  #random;
  #env;
  #sharedKey = null;

  // Connection.
  #state = 'idle';
  #rotation;
  #attempts = 0; // backoff attempts since the last successful connection
  #generation = 0; // bumped by every attempt and by close(): stale callbacks check it
  #ws = null;
  #wsUrl = null;
  #welcomed = false;
  #kicked = null; // the `reconnect` of a kick received on this connection
  #user = null;
  #socket = null;
  #retryTimer = null;
  #connectTimer = null;
  #heartbeat = null;
  #lastHeard = 0;
  #lastPing = 0;
  #pendingPing = null;
  #envListeners = [];

  // Requests.
  #nextId = 1;
  #queue = []; // {op, resolve, reject}: waiting for a connection
  #inflight = new Map(); // id → {resolve, reject, settled, timer, join}

  // Rooms: room → {presence, since: {epoch, offset} | null, held: message[] | null}.
  #rooms = new Map();

  // File transfers (see sendFile, receiveFile): every one under way, told of
  // disconnections and of close(); uploads and downloads by transfer id, for
  // the pushes and the chunk frames.
  #transfers = new Set();
  #uploads = new Map();
  #downloads = new Map();

  #listeners = new Map();

  /**
   * @param {object} options see switchboard.d.ts (SwitchboardOptions)
   */
  constructor({
    urls,
    token = null,
    pingInterval = 10000,
    pingTimeout = 10000,
    backoff = DEFAULT_BACKOFF,
    maxAttempts = Infinity,
    failuresPerUrl = 2,
    queueLimit = 1000,
    requestTimeout = 10000,
    connectTimeout = 10000,
    WebSocket = globalThis.WebSocket,
    random = Math.random,
    environment = globalThis,
  } = {}) {
    this.#urls = normalizeUrls(urls);
    if (typeof WebSocket !== 'function') {
      throw new TypeError(
        'Switchboard: no WebSocket constructor (on Node 20, pass `WebSocket` from the `ws` package)',
      );
    }
    this.#token = token;
    this.#pingInterval = pingInterval;
    this.#pingTimeout = pingTimeout;
    this.#backoff = { ...DEFAULT_BACKOFF, ...(backoff || {}) };
    this.#maxAttempts = maxAttempts;
    this.#queueLimit = queueLimit;
    this.#requestTimeout = requestTimeout;
    this.#connectTimeout = connectTimeout;
    this.#WebSocket = WebSocket;
    this.#random = random;
    this.#env = environment || null;
    this.#rotation = new Rotation(this.#urls, failuresPerUrl);
  }

  /**
   * One instance per identical URL list (the options of later calls are
   * ignored while that instance is not closed).
   */
  static shared(options = {}) {
    const key = JSON.stringify(normalizeUrls(options.urls));
    let sb = registry.get(key);
    if (!sb || sb.readyState === 'closed') {
      sb = new Switchboard(options);
      sb.#sharedKey = key;
      registry.set(key, sb);
    }
    return sb;
  }

  get readyState() {
    return this.#state;
  }

  /** The user the server sees (from the last `welcome`), or null. */
  get user() {
    return this.#user;
  }

  /** The server's id of this connection (from the last `welcome`), or null. */
  get socket() {
    return this.#socket;
  }

  // ---------------------------------------------------------------- events

  on(type, listener) {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  #emit(type, payload) {
    const set = this.#listeners.get(type);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (error) {
        if (type === 'error') reportError(error);
        else this.#emit('error', { error });
      }
    }
  }

  #setState(state, info = {}) {
    this.#state = state;
    this.#emit('state', { state, ...info });
  }

  // ------------------------------------------------------------ lifecycle

  /** Starts connecting (once; later calls do nothing). */
  connect() {
    if (this.#state !== 'idle') return this;
    this.#listenToEnvironment();
    this.#attempt();
    return this;
  }

  /** Closes the connection for good: pending requests reject with `closed`. */
  close() {
    if (this.#state === 'closed') return;
    const ws = this.#ws;
    if (ws) {
      this.#detach(ws);
      try {
        ws.close(1000, 'client closed');
      } catch {
        // already closing
      }
    }
    this.#shutdown('closed by the client');
  }

  #isOffline() {
    const nav = this.#env?.navigator;
    return !!nav && nav.onLine === false;
  }

  #listenToEnvironment() {
    const env = this.#env;
    const add = (target, type, fn) => {
      if (target && typeof target.addEventListener === 'function') {
        target.addEventListener(type, fn);
        this.#envListeners.push(() => target.removeEventListener(type, fn));
      }
    };
    if (!env) return;
    add(env, 'online', () => {
      if (this.#state === 'reconnecting') this.#attempt();
    });
    add(env, 'offline', () => {
      // The network is gone: the open connection is as good as dead (the
      // heartbeat would take interval + timeout to notice). Drop it now and
      // wait for `online`.
      if (this.#ws && (this.#state === 'open' || this.#state === 'connecting')) {
        this.#drop(this.#ws, 'offline');
        return;
      }
      if (this.#state === 'reconnecting' && this.#retryTimer !== null) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = null;
        this.#setState('reconnecting', { url: this.#rotation.current(), reason: 'offline' });
      }
    });
    const doc = env.document;
    add(doc, 'visibilitychange', () => {
      if (doc.visibilityState !== 'visible') return;
      if (this.#state === 'reconnecting' && !this.#isOffline()) this.#attempt();
      else if (this.#state === 'open') this.#ping(Date.now()); // check the connection is still alive
    });
  }

  async #getToken() {
    const t = this.#token;
    const value = typeof t === 'function' ? await t() : t;
    return value === undefined || value === '' ? null : value;
  }

  /** One connection attempt to the current URL. */
  async #attempt() {
    if (this.#state === 'closed') return;
    if (this.#retryTimer !== null) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
    const gen = ++this.#generation;
    const url = this.#rotation.current();
    if (this.#isOffline()) {
      this.#setState('reconnecting', { url, reason: 'offline' });
      return; // the `online` event tries again
    }
    this.#setState('connecting', { url });
    let token;
    try {
      token = await this.#getToken();
    } catch (error) {
      if (gen !== this.#generation || this.#state === 'closed') return;
      this.#emit('error', { error });
      this.#after({ welcomed: false, now: false, reason: 'token provider failed' });
      return;
    }
    if (gen !== this.#generation || this.#state === 'closed') return;
    let ws;
    try {
      ws = new this.#WebSocket(withToken(url, token));
    } catch (error) {
      this.#emit('error', { error });
      this.#after({ welcomed: false, now: false, reason: 'WebSocket constructor failed' });
      return;
    }
    this.#ws = ws;
    this.#wsUrl = url;
    this.#welcomed = false;
    this.#kicked = null;
    try {
      ws.binaryType = 'arraybuffer'; // chunk frames (the browser's default is Blob, `ws`'s Buffer)
    } catch {
      // a WebSocket without binaryType
    }
    ws.onopen = noop;
    ws.onerror = noop; // a close event follows
    ws.onmessage = (ev) => this.#onMessage(ws, ev);
    ws.onclose = (ev) => {
      if (ws === this.#ws) this.#ended(ev?.code ?? null, ev?.reason || '');
    };
    if (Number.isFinite(this.#connectTimeout) && this.#connectTimeout > 0) {
      this.#connectTimer = setTimeout(() => {
        this.#connectTimer = null;
        if (ws === this.#ws && !this.#welcomed) this.#drop(ws, 'connect timeout');
      }, this.#connectTimeout);
    }
  }

  #detach(ws) {
    ws.onopen = noop;
    ws.onmessage = noop;
    ws.onclose = noop;
    ws.onerror = noop; // never null: `ws` (Node) throws an error nobody listens to
  }

  /** Gives up on a connection from this side (dead peer, no welcome in time). */
  #drop(ws, reason) {
    this.#detach(ws);
    try {
      if (typeof ws.terminate === 'function') ws.terminate();
      else ws.close();
    } catch {
      // already closed
    }
    this.#ended(null, reason);
  }

  /** The current connection ended with close `code` (null: none received). */
  #ended(code, reason) {
    const ws = this.#ws;
    if (ws) this.#detach(ws);
    this.#ws = null;
    const welcomed = this.#welcomed;
    const kicked = this.#kicked;
    this.#welcomed = false;
    this.#kicked = null;
    this.#stopTimers();
    this.#failInflight('disconnected', 'the connection dropped before the answer');
    // Transfers under way offer again / ask again on the next connection.
    for (const t of [...this.#transfers]) t.disconnected();
    const hasProvider = typeof this.#token === 'function';
    const why = reason || (code !== null ? `closed with ${code}` : 'connection lost');
    // The close code decides; a kick's `reconnect` only when the code says nothing.
    if (code === 4001) return this.#shutdown('kicked by the server');
    if (code === 4003) {
      if (!hasProvider) return this.#shutdown('token expired (no token provider)');
      return this.#after({ welcomed, now: true, reason: 'token expired' });
    }
    if (code === 4000) return this.#after({ welcomed, now: true, reason: 'kicked (reconnect)' });
    if (code === 1001) {
      return this.#after({ welcomed, now: true, skip: this.#urls.length > 1, reason: 'server going away' });
    }
    if (code === 4401) {
      if (!hasProvider) return this.#shutdown('unauthorized (no token provider)');
      return this.#after({ welcomed, now: false, reason: 'unauthorized' });
    }
    if (kicked === false) return this.#shutdown('kicked by the server');
    if (kicked === true) return this.#after({ welcomed, now: true, reason: 'kicked (reconnect)' });
    return this.#after({ welcomed, now: false, reason: why });
  }

  /** Schedules the next attempt after a connection ended or failed. */
  #after({ welcomed, now, skip = false, reason }) {
    if (this.#state === 'closed') return;
    if (welcomed) {
      this.#attempts = 0;
      this.#rotation.succeeded();
    } else {
      this.#rotation.failed();
    }
    if (skip) this.#rotation.skip();
    let delay = 0;
    if (!now) {
      if (this.#attempts >= this.#maxAttempts) return this.#shutdown('gave up reconnecting');
      delay = backoffDelay(this.#attempts, this.#backoff, this.#random());
      this.#attempts += 1;
    }
    const url = this.#rotation.current();
    const attempt = Math.max(1, this.#attempts);
    if (this.#isOffline()) {
      this.#setState('reconnecting', { url, attempt, reason: 'offline' });
      return; // the `online` event tries again
    }
    this.#setState('reconnecting', { url, attempt, delay, reason });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#attempt();
    }, delay);
  }

  #stopTimers() {
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#connectTimer = null;
    this.#heartbeat = null;
  }

  #failInflight(code, message) {
    const inflight = [...this.#inflight.values()];
    this.#inflight.clear();
    for (const f of inflight) {
      clearTimeout(f.timer);
      if (f.join) {
        // The room stays, to be joined again (with its position) next time.
        const r = this.#rooms.get(f.join);
        if (r) r.held = null;
      }
      if (!f.settled) {
        f.settled = true;
        f.reject(new SwitchboardError(code, message));
      }
    }
  }

  #shutdown(reason) {
    this.#generation += 1;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#stopTimers();
    this.#ws = null;
    this.#welcomed = false;
    for (const undo of this.#envListeners.splice(0)) undo();
    if (this.#sharedKey !== null && registry.get(this.#sharedKey) === this) registry.delete(this.#sharedKey);
    this.#failInflight('closed', 'the client is closed');
    const queued = this.#queue.splice(0);
    for (const q of queued) q.reject(new SwitchboardError('closed', 'the client is closed'));
    for (const t of [...this.#transfers]) t.fail(new SwitchboardError('closed', 'the client is closed'));
    this.#setState('closed', { url: this.#wsUrl ?? this.#rotation.current(), reason });
  }

  // ------------------------------------------------------------ heartbeat

  #startHeartbeat() {
    const now = Date.now();
    this.#lastHeard = now;
    this.#lastPing = now;
    this.#pendingPing = null;
    const interval = this.#pingInterval;
    const timeout = this.#pingTimeout;
    if (!(interval > 0) || !Number.isFinite(interval)) return; // heartbeat off
    const tick = Math.max(5, Math.min(interval, Number.isFinite(timeout) ? timeout : interval) / 4);
    this.#heartbeat = setInterval(() => this.#beat(), tick);
  }

  #ping(now) {
    this.#lastPing = now;
    if (this.#pendingPing === null) this.#pendingPing = now;
    try {
      this.#ws?.send('ping');
    } catch {
      // closing: the close event follows
    }
  }

  #beat() {
    const ws = this.#ws;
    if (!ws || !this.#welcomed) return;
    const now = Date.now();
    if (now - this.#lastPing >= this.#pingInterval) this.#ping(now);
    // Dead: silent for interval + timeout, and a ping has been unanswered for
    // at least the timeout (a throttled background tab gets its chance).
    if (
      this.#pendingPing !== null &&
      now - this.#pendingPing >= this.#pingTimeout &&
      now - this.#lastHeard >= this.#pingInterval + this.#pingTimeout
    ) {
      this.#drop(ws, 'heartbeat timeout');
    }
  }

  // ------------------------------------------------------------- incoming

  #onMessage(ws, ev) {
    if (ws !== this.#ws) return;
    this.#lastHeard = Date.now();
    this.#pendingPing = null;
    const text = ev?.data;
    if (typeof text !== 'string') {
      if (this.#welcomed && text !== null && text !== undefined) this.#onBinary(text);
      return;
    }
    if (text === 'pong') return;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return;
    if (!this.#welcomed) {
      if (msg.op === 'welcome') this.#onWelcome(ws, msg);
      return;
    }
    switch (msg.op) {
      case undefined:
        this.#onReply(msg);
        break;
      case 'message':
        this.#onLive(msg);
        break;
      case 'presence':
        this.#emit('presence', { room: msg.room, user: msg.user, action: msg.action });
        break;
      case 'refresh':
        this.#onRefresh(ws);
        break;
      case 'kick': {
        const reconnect = msg.reconnect !== false;
        this.#kicked = reconnect;
        this.#emit('kick', { reason: msg.reason ?? null, reconnect });
        break;
      }
      case 'file_ack':
        this.#uploads.get(String(msg.transfer).toLowerCase())?.ack(msg.chunk);
        break;
      case 'file_complete':
        this.#uploads.get(String(msg.transfer).toLowerCase())?.complete();
        break;
      case 'file_error': {
        const t = String(msg.transfer).toLowerCase();
        (this.#uploads.get(t) ?? this.#downloads.get(t))?.error(msg);
        break;
      }
      default:
        break;
    }
  }

  #onWelcome(ws, msg) {
    if (this.#connectTimer !== null) clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
    this.#welcomed = true;
    this.#user = msg.user ?? null;
    this.#socket = msg.socket ?? null;
    this.#attempts = 0;
    this.#rotation.succeeded();
    this.#startHeartbeat();
    // Rooms first (with `since`), then what waited, in order; then the
    // `open` event (requests its listeners make come after these).
    for (const [room, r] of this.#rooms) {
      this.#send({ op: 'join', room, presence: r.presence }, null);
    }
    const queued = this.#queue.splice(0);
    for (const q of queued) this.#send(q.op, q);
    this.#setState('open', { url: this.#wsUrl });
  }

  #onReply(msg) {
    const f = this.#inflight.get(msg.id);
    if (!f) return;
    this.#inflight.delete(msg.id);
    clearTimeout(f.timer);
    if (f.join) this.#onJoinReply(f.join, msg);
    if (f.settled) return;
    f.settled = true;
    if (msg.ok === true) {
      const { id: _id, ok: _ok, ...rest } = msg;
      f.resolve(rest);
    } else {
      const e = msg.error && typeof msg.error === 'object' ? msg.error : {};
      f.reject(new SwitchboardError(String(e.code ?? 'error'), e.message, msg.error));
    }
  }

  async #onRefresh(ws) {
    if (typeof this.#token !== 'function') return;
    let token;
    try {
      token = await this.#token();
    } catch (error) {
      this.#emit('error', { error });
      return;
    }
    if (ws !== this.#ws || !this.#welcomed || !token) return;
    this.#send(
      { op: 'refresh', token },
      {
        resolve: noop,
        reject: (error) => {
          if (error.code !== 'disconnected') this.#emit('error', { error });
        },
      },
    );
  }

  // -------------------------------------------------------------- recovery

  /** A join is going out: returns the `since` to send (none the first time); holds live messages. */
  #joining(room, presence) {
    let r = this.#rooms.get(room);
    if (!r) this.#rooms.set(room, (r = { presence, since: null, held: null }));
    r.presence = presence;
    r.held = [];
    return r.since ? { epoch: r.since.epoch, offset: r.since.offset } : null;
  }

  #onJoinReply(room, msg) {
    const r = this.#rooms.get(room);
    if (!r) return;
    if (msg.ok !== true) {
      // A first join that failed forgets the room; a rejoin keeps its position.
      if (r.since === null) this.#rooms.delete(room);
      else r.held = null;
      return;
    }
    const epoch = String(msg.epoch ?? '');
    const offset = Number(msg.offset) || 0;
    const held = r.held ?? [];
    r.held = null;
    const hadPosition = r.since !== null;
    const deliver = [];
    let gap = false;
    if (msg.recovered === true) {
      let last = r.since ? r.since.offset : 0;
      for (const m of Array.isArray(msg.missed) ? msg.missed : []) {
        const message = toMessage({ ...m, room, epoch });
        if (message && message.offset > last) {
          last = message.offset;
          deliver.push(message);
        }
      }
      r.since = { epoch, offset: Math.max(last, offset) };
    } else {
      r.since = { epoch, offset };
      gap = hadPosition;
    }
    for (const m of held) {
      if (m.epoch === r.since.epoch && m.offset > r.since.offset) {
        r.since.offset = m.offset;
        deliver.push(m);
      }
    }
    if (gap) this.#emit('gap', { room });
    for (const m of deliver) {
      // A listener may have left the room meanwhile: stop delivering then.
      if (this.#rooms.get(room) !== r) break;
      this.#deliver(m);
    }
  }

  #onLive(msg) {
    const m = toMessage(msg);
    if (!m) return;
    const r = this.#rooms.get(m.room);
    if (!r) {
      // A room this client did not join through it (its personal room
      // `user:<id>`, rooms named by the connect proxy): as it comes.
      this.#deliver(m);
      return;
    }
    if (r.held) {
      r.held.push(m);
      return;
    }
    if (r.since && r.since.epoch === m.epoch) {
      if (m.offset <= r.since.offset) return; // already delivered
      r.since.offset = m.offset;
    } else {
      // Another epoch: the room's log was reset; go on from it.
      r.since = { epoch: m.epoch, offset: m.offset };
    }
    this.#deliver(m);
  }

  /** A room message to the listeners: `message`, and `file` for a file's announcement. */
  #deliver(m) {
    this.#emit('message', m);
    if (m.event === 'file' && isFileInfo(m.data)) {
      const { transfer, name, size, sha256 } = m.data;
      this.#emit('file', {
        transfer: transfer.toLowerCase(),
        name: name ?? null,
        size,
        sha256,
        room: m.room,
        from: m.from,
        offset: m.offset,
        epoch: m.epoch,
        at: m.at,
      });
    }
  }

  // -------------------------------------------------------------- requests

  /**
   * Sends one request (`{op, …}`) and resolves with the reply without `id`
   * and `ok`; rejects with a SwitchboardError (`.code`) on `{ok: false}`, or
   * `timeout`, `disconnected`, `queue_full`, `closed`. Requests go out in
   * call order; while not connected they wait in a bounded queue.
   */
  request(op) {
    return new Promise((resolve, reject) => this.#enqueue(op, resolve, reject));
  }

  /**
   * request() with callbacks: `resolve` is called synchronously as the reply
   * is read (the file transfers need that: chunk frames follow a reply at once).
   */
  #enqueue(op, resolve, reject) {
    if (!op || typeof op !== 'object' || typeof op.op !== 'string') {
      reject(new SwitchboardError('bad_request', 'a request is an object with a string `op`'));
      return;
    }
    if (this.#state === 'closed') {
      reject(new SwitchboardError('closed', 'the client is closed'));
      return;
    }
    const copy = { ...op };
    delete copy.id;
    try {
      JSON.stringify(copy);
    } catch (error) {
      reject(new SwitchboardError('bad_request', `cannot serialize the request: ${error.message}`));
      return;
    }
    const entry = { op: copy, resolve, reject };
    if (this.#ws && this.#welcomed) {
      this.#send(copy, entry);
    } else if (this.#queue.length >= this.#queueLimit) {
      reject(new SwitchboardError('queue_full', 'the offline queue is full'));
    } else {
      this.#queue.push(entry);
    }
  }

  /** Puts a request on the wire; `entry` null for the client's own (rejoins). */
  #send(op, entry) {
    const ws = this.#ws;
    const id = this.#nextId++;
    const wire = { ...op, id };
    let join = null;
    if (op.op === 'join' && typeof op.room === 'string') {
      const since = this.#joining(op.room, op.presence === true);
      if (since) wire.since = since;
      join = op.room;
    } else if (op.op === 'leave' && typeof op.room === 'string') {
      this.#rooms.delete(op.room);
    }
    const f = {
      resolve: entry ? entry.resolve : noop,
      reject: entry ? entry.reject : noop,
      settled: !entry,
      timer: null,
      join,
    };
    if (entry && Number.isFinite(this.#requestTimeout) && this.#requestTimeout > 0) {
      f.timer = setTimeout(() => {
        if (f.settled) return;
        f.settled = true;
        // A late join answer still feeds the room's recovery; others are forgotten.
        if (!f.join) this.#inflight.delete(id);
        f.reject(new SwitchboardError('timeout', 'no answer in time'));
      }, this.#requestTimeout);
    }
    this.#inflight.set(id, f);
    try {
      ws.send(JSON.stringify(wire));
    } catch {
      // The socket is closing: its close event rejects the request.
    }
  }

  /** Joins `room`; after a reconnect it is joined again with `since`. */
  async join(room, { presence = false } = {}) {
    const r = await this.request({ op: 'join', room, presence: !!presence });
    return { epoch: r.epoch, offset: r.offset, recovered: r.recovered };
  }

  /** Leaves `room` (it is no longer rejoined). */
  async leave(room) {
    await this.request({ op: 'leave', room });
  }

  /** Publishes to `room`; resolves with the message's offset. */
  async publish(room, event, data, { volatile } = {}) {
    const op = { op: 'publish', room, event, data: data === undefined ? null : data };
    if (volatile !== undefined) op.volatile = !!volatile;
    const r = await this.request(op);
    return { offset: r.offset };
  }

  /** The members of `room`. */
  async presence(room) {
    const r = await this.request({ op: 'presence', room });
    return { members: r.members };
  }

  /** The messages `room` holds, oldest first. */
  async history(room, { since, limit } = {}) {
    const op = { op: 'history', room };
    if (since !== undefined) op.since = since;
    if (limit !== undefined) op.limit = limit;
    const r = await this.request(op);
    return { epoch: r.epoch, messages: r.messages };
  }

  // --------------------------------------------------------- file transfer

  /**
   * Sends a file to `{room}` or `{user}` (docs/protocol.md, "File transfer"):
   * hashes it, offers it, sends its chunks with at most `window` not yet
   * acknowledged, and after a reconnect offers it again with its `transfer`
   * and goes on from the server's `next`. Resolves on `file_complete`.
   */
  async sendFile(to, file, { name, chunkSize, onProgress, signal } = {}) {
    if (!to || typeof to !== 'object' || (typeof to.room !== 'string') === (typeof to.user !== 'string')) {
      throw new SwitchboardError('bad_request', 'sendFile: `to` is {room} or {user}');
    }
    const src = fileSource(file);
    if (signal?.aborted) throw abortError(signal);
    if (this.#state === 'closed') throw new SwitchboardError('closed', 'the client is closed');
    const sha256 = await sha256Hex(src.bytes ?? src.blob);
    if (signal?.aborted) throw abortError(signal);
    if (this.#state === 'closed') throw new SwitchboardError('closed', 'the client is closed');
    const target = typeof to.room === 'string' ? { room: to.room } : { user: to.user };
    const fileName = name ?? src.name ?? 'file';
    return new Promise((resolve, reject) => {
      const spec = { to: target, name: String(fileName), size: src.size, sha256, src, chunkSize, onProgress, signal };
      this.#upload(spec, resolve, reject);
    });
  }

  #upload({ to, name, size, sha256, src, chunkSize, onProgress, signal }, resolve, reject) {
    const u = {
      phase: 'offering', // offering (a file_offer in flight or queued) | active | done
      transfer: null,
      id: null, // the transfer id's 16 bytes
      chunk: 0, // chunk size
      chunks: 0,
      window: 1,
      next: 0, // the next chunk to send
      acked: 0, // chunks the server holds (acknowledged)
      conn: null, // the WebSocket the chunks go on
      pumping: false,
      fresh: 0,
      retries: 0, // timeouts and rate_limited in a row
      timer: null,
      aborted: false,
    };
    const progress = () => {
      this.#progress(onProgress, {
        direction: 'upload',
        transfer: u.transfer,
        name,
        chunks: u.chunks,
        sent: u.next,
        acked: u.acked,
        bytes: Math.min(size, u.acked * u.chunk),
        size,
      });
    };
    const finish = (error, result) => {
      if (u.phase === 'done') return;
      u.phase = 'done';
      u.conn = null;
      clearTimeout(u.timer);
      this.#transfers.delete(u);
      if (u.transfer !== null && this.#uploads.get(u.transfer) === u) this.#uploads.delete(u.transfer);
      signal?.removeEventListener?.('abort', onAbort);
      if (error) reject(error);
      else resolve(result);
    };
    const done = () => {
      u.acked = u.chunks;
      finish(null, { transfer: u.transfer, name, size, sha256 });
    };
    const offer = () => {
      if (u.phase === 'done') return;
      u.phase = 'offering';
      u.conn = null;
      const op = { op: 'file_offer', to, name, size, sha256 };
      if (chunkSize !== undefined) op.chunk_size = chunkSize;
      if (u.transfer !== null) op.transfer = u.transfer;
      this.#enqueue(op, guard(finish, onOffer), onOfferError);
    };
    const onOffer = (reply) => {
      const t = String(reply.transfer ?? '').toLowerCase();
      if (u.phase === 'done' && u.aborted && TRANSFER_RE.test(t) && t !== u.transfer) {
        this.request({ op: 'file_cancel', transfer: t }).catch(noop); // an offer that went out after the abort
      }
      if (u.phase !== 'offering') return;
      u.retries = 0;
      const chunks = reply.chunks;
      const next = reply.next;
      if (!TRANSFER_RE.test(t) || !(reply.chunk_size > 0) || !Number.isInteger(chunks) || !Number.isInteger(next)) {
        finish(new SwitchboardError('bad_reply', 'file_offer: no transfer, chunk_size, chunks, next', reply));
        return;
      }
      if (u.transfer !== t) {
        if (u.transfer !== null && this.#uploads.get(u.transfer) === u) this.#uploads.delete(u.transfer);
        u.transfer = t;
        u.id = transferBytes(t);
        this.#uploads.set(t, u);
      }
      u.chunk = reply.chunk_size;
      u.chunks = chunks;
      u.window = Math.max(1, Number(reply.window) | 0);
      u.next = Math.min(next, chunks);
      u.acked = u.next;
      u.conn = this.#ws;
      u.phase = 'active';
      progress();
      if (reply.complete === true) done();
      else pump();
    };
    const onOfferError = (error) => {
      if (u.phase !== 'offering') return;
      if (error.code === 'not_found' && u.transfer !== null && u.fresh < MAX_FRESH_OFFERS) {
        // The server forgot it (expired, restarted without --data-dir, another node): offer it anew.
        u.fresh += 1;
        this.#uploads.delete(u.transfer);
        u.transfer = null;
        u.id = null;
        u.next = u.acked = 0;
        offer();
        return;
      }
      if (!this.#retry(error, u, offer)) finish(error);
    };
    // Sends chunks from `next` while the window allows, on the connection the
    // offer was answered on (one pump at a time: reading a Blob is async).
    const canSend = () =>
      u.phase === 'active' && u.conn === this.#ws && this.#welcomed && u.next < u.chunks && u.next - u.acked < u.window;
    const pump = async () => {
      if (u.pumping) return;
      u.pumping = true;
      try {
        while (canSend()) {
          const i = u.next;
          const start = i * u.chunk;
          const data = await src.read(start, Math.min(size, start + u.chunk));
          if (u.phase !== 'active' || u.conn !== this.#ws || u.next !== i) continue; // things changed meanwhile
          u.next = i + 1;
          try {
            u.conn.send(encodeChunk(u.id, i, data));
          } catch {
            // closing: its close event resumes the upload
          }
        }
      } catch (error) {
        const failed = new SwitchboardError('read_failed', `cannot read the file: ${error?.message ?? error}`);
        failed.cause = error;
        finish(failed);
      } finally {
        u.pumping = false;
      }
    };
    const onAbort = () => {
      const t = u.transfer;
      u.aborted = true;
      finish(abortError(signal));
      if (t !== null) this.request({ op: 'file_cancel', transfer: t }).catch(noop);
    };
    u.ack = (chunk) => {
      if (u.phase !== 'active' || !Number.isInteger(chunk) || chunk < u.acked || chunk >= u.chunks) return;
      u.acked = chunk + 1;
      if (u.next < u.acked) u.next = u.acked;
      progress();
      pump();
    };
    u.complete = () => {
      if (u.phase === 'done') return;
      if (u.acked !== u.chunks) {
        u.acked = u.next = u.chunks;
        progress();
      }
      done();
    };
    u.error = (msg) => {
      if (u.phase === 'done') return;
      const code = String(msg.code ?? 'error');
      if (code === 'out_of_order' && Number.isInteger(msg.next) && u.phase === 'active') {
        // The server holds `next` chunks: go on from there.
        u.next = Math.min(msg.next, u.chunks);
        if (u.acked > u.next) u.acked = u.next;
        pump();
        return;
      }
      finish(new SwitchboardError(code, msg.message, msg));
    };
    u.disconnected = () => {
      if (u.phase === 'active') offer(); // resume: queued until the next welcome
    };
    u.fail = (error) => finish(error);

    this.#transfers.add(u);
    signal?.addEventListener?.('abort', onAbort, { once: true });
    offer();
  }

  /**
   * Downloads a complete transfer (`transfer` the id, or a `file` event):
   * `file_get`, acknowledges each chunk, after a reconnect asks again from the
   * chunks it holds, checks the SHA-256 at the end.
   */
  receiveFile(transfer, { onProgress, signal } = {}) {
    return new Promise((resolve, reject) => {
      const t = String(transfer && typeof transfer === 'object' ? transfer.transfer : transfer).toLowerCase();
      if (!TRANSFER_RE.test(t)) {
        reject(new SwitchboardError('bad_request', 'receiveFile: a transfer id is 32 hex characters'));
        return;
      }
      if (this.#state === 'closed') {
        reject(new SwitchboardError('closed', 'the client is closed'));
        return;
      }
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      if (this.#downloads.has(t)) {
        reject(new SwitchboardError('bad_request', `receiveFile: ${t} is already being downloaded`));
        return;
      }
      this.#download(t, { onProgress, signal }, resolve, reject);
    });
  }

  #download(transfer, { onProgress, signal }, resolve, reject) {
    const d = {
      phase: 'asking', // asking (a file_get in flight or queued) | active | verifying | done
      name: null,
      size: 0,
      sha256: null,
      chunk: 0,
      chunks: 0,
      held: 0, // chunks stored, 0 … held - 1
      data: null,
      retries: 0, // timeouts and rate_limited in a row
      timer: null,
    };
    const progress = () => {
      this.#progress(onProgress, {
        direction: 'download',
        transfer,
        name: d.name,
        chunks: d.chunks,
        received: d.held,
        acked: d.held,
        bytes: Math.min(d.size, d.held * d.chunk),
        size: d.size,
      });
    };
    const finish = (error, result) => {
      if (d.phase === 'done') return;
      d.phase = 'done';
      clearTimeout(d.timer);
      this.#transfers.delete(d);
      if (this.#downloads.get(transfer) === d) this.#downloads.delete(transfer);
      signal?.removeEventListener?.('abort', onAbort);
      if (error) reject(error);
      else resolve(result);
    };
    const ask = () => {
      if (d.phase === 'done') return;
      d.phase = 'asking';
      this.#enqueue({ op: 'file_get', transfer, from: d.held }, guard(finish, onGet), onGetError);
    };
    const onGet = (reply) => {
      if (d.phase !== 'asking') return;
      d.retries = 0;
      const { size, chunks, chunk_size: chunk, sha256 } = reply;
      if (!(size >= 0) || !Number.isInteger(size) || !Number.isInteger(chunks) || !(chunk > 0) || !sha256) {
        finish(new SwitchboardError('bad_reply', 'file_get: no size, chunk_size, chunks, sha256', reply));
        return;
      }
      if (d.data === null) {
        d.name = reply.name ?? null;
        d.size = size;
        d.chunks = chunks;
        d.chunk = chunk;
        d.sha256 = sha256.toLowerCase();
        d.data = new Uint8Array(size);
      } else if (size !== d.size || chunks !== d.chunks || chunk !== d.chunk || sha256.toLowerCase() !== d.sha256) {
        finish(new SwitchboardError('changed', 'the transfer changed between two connections', reply));
        return;
      }
      if (Number.isInteger(reply.from) && reply.from > d.held) {
        finish(new SwitchboardError('bad_reply', `file_get: asked from ${d.held}, answered from ${reply.from}`, reply));
        return;
      }
      d.phase = 'active';
      progress();
      if (d.held >= d.chunks) verify();
    };
    const onGetError = (error) => {
      if (d.phase !== 'asking') return;
      if (!this.#retry(error, d, ask)) finish(error);
    };
    const ack = (index) => {
      try {
        this.#ws?.send(JSON.stringify({ op: 'file_ack', transfer, chunk: index }));
      } catch {
        // closing: the next connection asks from what is held
      }
    };
    const verify = async () => {
      d.phase = 'verifying';
      let sum;
      try {
        sum = await sha256Hex(d.data);
      } catch (error) {
        finish(error);
        return;
      }
      if (sum !== d.sha256) {
        finish(new SwitchboardError('checksum_mismatch', `the file's SHA-256 is ${sum}, not ${d.sha256}`));
        return;
      }
      finish(null, { transfer, name: d.name, size: d.size, sha256: d.sha256, data: d.data });
    };
    const onAbort = () => finish(abortError(signal));
    d.chunkFrame = guard(finish, (index, data) => {
      if (d.phase !== 'active') return;
      if (index < d.held) {
        ack(d.held - 1); // a repeat: say again what is held
        return;
      }
      if (index > d.held) {
        finish(new SwitchboardError('out_of_order', `chunk ${index} while ${d.held} was expected`));
        return;
      }
      const expected = index === d.chunks - 1 ? d.size - index * d.chunk : d.chunk;
      if (index >= d.chunks || data.length !== expected) {
        finish(new SwitchboardError('bad_chunk', `chunk ${index}: ${data.length} bytes, ${expected} expected`));
        return;
      }
      d.data.set(data, index * d.chunk);
      d.held = index + 1;
      ack(index);
      progress();
      if (d.held === d.chunks) verify();
    });
    d.error = (msg) => {
      if (d.phase === 'done' || d.phase === 'verifying') return;
      finish(new SwitchboardError(String(msg.code ?? 'error'), msg.message, msg));
    };
    d.disconnected = () => {
      if (d.phase === 'active') ask(); // resume from what is held: queued until the next welcome
    };
    d.fail = (error) => finish(error);

    this.#downloads.set(transfer, d);
    this.#transfers.add(d);
    signal?.addEventListener?.('abort', onAbort, { once: true });
    ask();
  }

  /**
   * After a failed offer / file_get: asks again when that can help
   * (`disconnected`: on the next connection; `timeout`: at once;
   * `rate_limited`: after a backoff delay). False when the error is final.
   */
  #retry(error, t, again) {
    const code = error?.code;
    if (code === 'disconnected') {
      again();
      return true;
    }
    if ((code === 'timeout' || code === 'rate_limited') && t.retries < MAX_RETRIES) {
      t.retries += 1;
      if (code === 'timeout') again();
      else t.timer = setTimeout(again, Math.max(50, backoffDelay(t.retries, this.#backoff, this.#random())));
      return true;
    }
    return false;
  }

  #progress(onProgress, event) {
    if (typeof onProgress === 'function') {
      try {
        onProgress(event);
      } catch (error) {
        this.#emit('error', { error });
      }
    }
    this.#emit('fileprogress', event);
  }

  /** A binary frame: a chunk of a download under way (others are ignored). */
  #onBinary(data) {
    const chunk = decodeChunk(data);
    if (!chunk) return;
    this.#downloads.get(chunk.transfer)?.chunkFrame(chunk.index, chunk.data);
  }

  /** The complete transfers sent to this user or to rooms this connection is in. */
  async files() {
    const r = await this.request({ op: 'files' });
    return { files: Array.isArray(r.files) ? r.files : [] };
  }

  /** Deletes a transfer this user sent (`file_cancel`). */
  async cancelFile(transfer) {
    const t = String(transfer && typeof transfer === 'object' ? transfer.transfer : transfer).toLowerCase();
    await this.request({ op: 'file_cancel', transfer: t });
  }
}

function toMessage(v) {
  if (!v || typeof v.room !== 'string' || typeof v.epoch !== 'string') return null;
  const offset = v.offset;
  if (typeof offset !== 'number' || !Number.isFinite(offset)) return null;
  return {
    room: v.room,
    event: v.event,
    data: v.data === undefined ? null : v.data,
    offset,
    epoch: v.epoch,
    from: v.from ?? null,
    at: v.at,
  };
}

// ---------------------------------------------------------- file transfer
//
// docs/protocol.md, "File transfer": chunk frames are binary WebSocket frames
// `0x01 | transfer id (16 bytes) | chunk index (u32 BE) | data`.

const CHUNK_TAG = 0x01;
const CHUNK_HEADER = 21;
/** Blobs are read this much at a time (chunks are cut from the block). */
const READ_BLOCK = 1 << 20;
/** Blobs up to this size are hashed in one call to WebCrypto; larger ones incrementally in JS. */
const ONE_SHOT_HASH_MAX = 32 << 20;
const HASH_BLOCK = 4 << 20;
const TRANSFER_RE = /^[0-9a-f]{32}$/;
/** Fresh offers an upload makes after the server forgot its transfer (`not_found` on a resume). */
const MAX_FRESH_OFFERS = 3;
/** Offers / file_gets that time out or are rate-limited, in a row, before a transfer fails. */
const MAX_RETRIES = 5;

/** A view of the bytes of an ArrayBuffer, a typed array / DataView / Buffer, an array of Buffers (`ws`); else null. */
function asBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (typeof SharedArrayBuffer === 'function' && v instanceof SharedArrayBuffer) return new Uint8Array(v);
  if (Array.isArray(v) && v.every((p) => p instanceof Uint8Array)) {
    const out = new Uint8Array(v.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of v) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  return null;
}

function toHex(bytes) {
  const b = asBytes(bytes);
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}

/** The 16 bytes of a transfer id (32 hex characters). */
function transferBytes(transfer) {
  const t = String(transfer).toLowerCase();
  if (!TRANSFER_RE.test(t)) throw new TypeError(`not a transfer id (32 hex characters): ${String(transfer)}`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * A chunk frame: `0x01`, the transfer id's 16 bytes, the index (u32
 * big-endian), the data. `transfer` is the 32 hex characters or their 16 bytes.
 */
export function encodeChunk(transfer, index, data) {
  const id = typeof transfer === 'string' ? transferBytes(transfer) : asBytes(transfer);
  if (!id || id.length !== 16) throw new TypeError('a transfer id is 16 bytes');
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new RangeError(`bad chunk index ${index}`);
  const bytes = asBytes(data);
  if (!bytes) throw new TypeError('chunk data: an ArrayBuffer or a typed array');
  const frame = new Uint8Array(CHUNK_HEADER + bytes.length);
  frame[0] = CHUNK_TAG;
  frame.set(id, 1);
  new DataView(frame.buffer).setUint32(17, index, false);
  frame.set(bytes, CHUNK_HEADER);
  return frame;
}

/**
 * Reads a chunk frame: `{transfer (32 lowercase hex), index, data}` (`data` a
 * view into the frame), or null when it is not one (shorter than 21 bytes,
 * another tag).
 */
export function decodeChunk(frame) {
  const b = asBytes(frame);
  if (!b || b.length < CHUNK_HEADER || b[0] !== CHUNK_TAG) return null;
  return {
    transfer: toHex(b.subarray(1, 17)),
    index: new DataView(b.buffer, b.byteOffset + 17, 4).getUint32(0, false),
    data: b.subarray(CHUNK_HEADER),
  };
}

const SHA256_K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

/**
 * Incremental SHA-256 in plain JS (WebCrypto has no incremental API, and no
 * `crypto.subtle` at all outside secure contexts).
 *
 *   new Sha256().update(a).update(b).hex()
 */
export class Sha256 {
  #h = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  #w = new Int32Array(64);
  #block = new Uint8Array(64);
  #blockLen = 0;
  #length = 0; // bytes
  #result = null;

  /** Adds bytes (an ArrayBuffer or a typed array). */
  update(data) {
    if (this.#result) throw new Error('Sha256: update after digest');
    const b = asBytes(data);
    if (!b) throw new TypeError('Sha256: bytes expected');
    let i = 0;
    const n = b.length;
    this.#length += n;
    if (this.#blockLen > 0) {
      const take = Math.min(64 - this.#blockLen, n);
      this.#block.set(b.subarray(0, take), this.#blockLen);
      this.#blockLen += take;
      i = take;
      if (this.#blockLen < 64) return this;
      this.#compress(this.#block, 0);
      this.#blockLen = 0;
    }
    for (; i + 64 <= n; i += 64) this.#compress(b, i);
    if (i < n) {
      this.#block.set(b.subarray(i), 0);
      this.#blockLen = n - i;
    }
    return this;
  }

  /** The 32 bytes of the digest (no more updates after it). */
  digest() {
    if (this.#result) return this.#result.slice();
    const block = this.#block;
    let len = this.#blockLen;
    block[len++] = 0x80;
    if (len > 56) {
      block.fill(0, len);
      this.#compress(block, 0);
      len = 0;
    }
    block.fill(0, len, 56);
    const bits = this.#length * 8;
    const view = new DataView(block.buffer);
    view.setUint32(56, Math.floor(bits / 0x100000000), false);
    view.setUint32(60, bits >>> 0, false);
    this.#compress(block, 0);
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let j = 0; j < 8; j++) ov.setInt32(4 * j, this.#h[j], false);
    this.#result = out;
    return out.slice();
  }

  /** The digest as 64 lowercase hex characters. */
  hex() {
    return toHex(this.digest());
  }

  #compress(p, off) {
    const w = this.#w;
    const K = SHA256_K;
    for (let t = 0; t < 16; t++, off += 4) {
      w[t] = (p[off] << 24) | (p[off + 1] << 16) | (p[off + 2] << 8) | p[off + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    const h = this.#h;
    let a = h[0];
    let b = h[1];
    let c = h[2];
    let d = h[3];
    let e = h[4];
    let f = h[5];
    let g = h[6];
    let k = h[7];
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (k + S1 + ch + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + b) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0;
    h[5] = (h[5] + f) | 0;
    h[6] = (h[6] + g) | 0;
    h[7] = (h[7] + k) | 0;
  }
}

function isBlob(v) {
  return (
    !!v &&
    typeof v === 'object' &&
    typeof v.size === 'number' &&
    typeof v.slice === 'function' &&
    typeof v.arrayBuffer === 'function'
  );
}

/** What sendFile reads: `{size, name?, bytes?, blob?, read(start, end) → Promise<Uint8Array>}`. */
function fileSource(file) {
  if (isBlob(file)) {
    let cache = null; // {start, bytes}: the last block read
    return {
      size: file.size,
      name: typeof file.name === 'string' && file.name !== '' ? file.name : undefined,
      blob: file,
      async read(start, end) {
        if (!cache || start < cache.start || end > cache.start + cache.bytes.length) {
          const stop = Math.min(file.size, Math.max(end, start + READ_BLOCK));
          cache = { start, bytes: new Uint8Array(await file.slice(start, stop).arrayBuffer()) };
        }
        return cache.bytes.subarray(start - cache.start, end - cache.start);
      },
    };
  }
  const bytes = Array.isArray(file) ? null : asBytes(file);
  if (!bytes) throw new TypeError('sendFile: the file is a Blob/File, an ArrayBuffer or a typed array (Buffer)');
  return { size: bytes.length, bytes, read: async (start, end) => bytes.subarray(start, end) };
}

function subtleCrypto() {
  const subtle = globalThis.crypto?.subtle;
  return subtle && typeof subtle.digest === 'function' ? subtle : null;
}

/**
 * The SHA-256 (64 lowercase hex characters) of bytes or a Blob: WebCrypto
 * when there is one (a Blob over 32 MiB is hashed incrementally in JS, 4 MiB
 * at a time, rather than read whole), else the JS implementation.
 */
export async function sha256Hex(input) {
  const subtle = subtleCrypto();
  if (isBlob(input)) {
    if (subtle && input.size <= ONE_SHOT_HASH_MAX) {
      return toHex(await subtle.digest('SHA-256', await input.arrayBuffer()));
    }
    const h = new Sha256();
    for (let at = 0; at < input.size; at += HASH_BLOCK) {
      h.update(await input.slice(at, Math.min(input.size, at + HASH_BLOCK)).arrayBuffer());
    }
    return h.hex();
  }
  const bytes = asBytes(input);
  if (!bytes) throw new TypeError('sha256Hex: bytes or a Blob expected');
  if (subtle) return toHex(await subtle.digest('SHA-256', bytes));
  return new Sha256().update(bytes).hex();
}

function abortError(signal) {
  const reason = signal?.reason;
  const error = new SwitchboardError('aborted', reason instanceof Error ? reason.message : 'aborted');
  if (reason !== undefined) error.cause = reason;
  return error;
}

/** `fn` for a transfer's handlers of what the server sends: what it throws ends the transfer. */
function guard(finish, fn) {
  return (...args) => {
    try {
      fn(...args);
    } catch (error) {
      finish(error);
    }
  };
}

function isFileInfo(d) {
  return !!d && typeof d === 'object' && typeof d.transfer === 'string' && TRANSFER_RE.test(d.transfer);
}

export default Switchboard;
