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
    if (typeof text !== 'string' || text === 'pong') return;
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
      this.#emit('message', m);
    }
  }

  #onLive(msg) {
    const m = toMessage(msg);
    if (!m) return;
    const r = this.#rooms.get(m.room);
    if (!r) {
      // A room this client did not join through it (its personal room
      // `user:<id>`, rooms named by the connect proxy): as it comes.
      this.#emit('message', m);
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
    this.#emit('message', m);
  }

  // -------------------------------------------------------------- requests

  /**
   * Sends one request (`{op, …}`) and resolves with the reply without `id`
   * and `ok`; rejects with a SwitchboardError (`.code`) on `{ok: false}`, or
   * `timeout`, `disconnected`, `queue_full`, `closed`. Requests go out in
   * call order; while not connected they wait in a bounded queue.
   */
  request(op) {
    return new Promise((resolve, reject) => {
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
    });
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

export default Switchboard;
