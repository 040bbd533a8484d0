#!/usr/bin/env node
// Socket.IO (official `socket.io` npm server) peer for benches/sio_idle.sh and
// benches/fanout.sh: a subset of switchboard's relay (DESIGN.md §3,
// docs/protocol.md "Relay") on the main namespace "/".
//
// Usage: node sio-relay.js PORT        (or HOST:PORT, or --listen HOST:PORT)
//        [--recovery]                  enable socket.io's connection state
//                                      recovery (off by default)
// Listens on 127.0.0.1 unless a host is given, path /socket.io/, default
// options (pingInterval 25 s, pingTimeout 20 s, polling + websocket) but
// `serveClient: false`, and accepts every connection on "/" as an anonymous
// user (`anon-<12 characters>`, the `from` of its publishes). An idle
// connection holds one shared `onAny` listener and nothing else of the relay's.
//
// Events (each with an ack, the last argument):
//   join(room, opts?)                 -> {ok: true, epoch, offset, recovered: false}
//   leave(room)                       -> {ok: true}
//   publish(room, event, data, opts?) -> {ok: true, offset}; every member of
//       `room`, the sender included, receives `event(data, meta)` with
//       meta = {room, offset, epoch, from, at} (`opts.volatile`: a volatile
//       broadcast)
//   anything else                     -> {ok: false, error: {code: "unknown_event", message}}
// Bad arguments get {ok: false, error: {code: "bad_request", message}}. Each
// room has an epoch (16 hex digits) and an offset counter, from 0, kept for
// the life of the process; there is no history, presence or permission
// check. Nothing is printed per message.
'use strict';

const crypto = require('crypto');
const http = require('http');
const { Server } = require('socket.io');

function usage(code) {
  console.error('usage: node sio-relay.js [--listen] [HOST:]PORT [--recovery]');
  process.exit(code);
}

function parseArgs(argv) {
  let addr = '127.0.0.1:3000';
  let recovery = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--listen' || a === '-l') addr = argv[++i];
    else if (a.startsWith('--listen=')) addr = a.slice('--listen='.length);
    else if (a === '--recovery') recovery = true;
    else if (a === '-h' || a === '--help') usage(0);
    else if (!a.startsWith('-')) addr = a;
    else {
      console.error(`unknown argument: ${a}`);
      usage(2);
    }
  }
  if (/^\d+$/.test(addr || '')) addr = `127.0.0.1:${addr}`;
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(addr || '');
  if (!m) {
    console.error(`bad listen address: ${addr}`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]), recovery };
}

const { host, port, recovery } = parseArgs(process.argv.slice(2));

const httpServer = http.createServer();
const options = { serveClient: false };
if (recovery) options.connectionStateRecovery = { maxDisconnectionDuration: 2 * 60 * 1000 };
const io = new Server(httpServer, options);

// Event names socket.io reserves, and the relay's own: cannot be published.
const RESERVED = new Set([
  'connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener',
  'presence', 'kick', 'refresh',
]);

/** room -> {epoch, offset}: made on the first join or publish. */
const logs = new Map();
function log(room) {
  let l = logs.get(room);
  if (!l) {
    l = { epoch: crypto.randomBytes(8).toString('hex'), offset: 0 };
    logs.set(room, l);
  }
  return l;
}

const validRoom = (r) => typeof r === 'string' && r.length > 0;
const validEvent = (e) => typeof e === 'string' && e.length > 0 && e.length <= 128 && !RESERVED.has(e);
const error = (code, message) => ({ ok: false, error: { code, message } });

/** Splits an event's arguments into (values, ack); the ack is a no-op when absent. */
function split(args) {
  const last = args[args.length - 1];
  if (typeof last === 'function') return [args.slice(0, -1), last];
  return [args, () => {}];
}

const handlers = {
  join(socket, [room]) {
    if (!validRoom(room)) return error('bad_request', 'join(room, opts?): room must be a non-empty string');
    const l = log(room);
    socket.join(room);
    return { ok: true, epoch: l.epoch, offset: l.offset, recovered: false };
  },
  leave(socket, [room]) {
    if (typeof room !== 'string') return error('bad_request', 'leave(room): room must be a string');
    socket.leave(room);
    return { ok: true };
  },
  publish(socket, [room, event, data, opts]) {
    if (!validRoom(room) || !validEvent(event)) {
      return error('bad_request', 'publish(room, event, data): room must be a string, event a name that is not reserved');
    }
    const l = log(room);
    l.offset += 1;
    const meta = { room, offset: l.offset, epoch: l.epoch, from: user(socket), at: new Date().toISOString() };
    const to = io.to(room);
    (opts && opts.volatile === true ? to.volatile : to).emit(event, data === undefined ? null : data, meta);
    return { ok: true, offset: l.offset };
  },
};

/** The anonymous user of a socket, named on its first publish (idle sockets hold none). */
function user(socket) {
  if (socket.data.user === undefined) socket.data.user = `anon-${crypto.randomBytes(9).toString('base64url')}`;
  return socket.data.user;
}

/** Every event of every socket (`this` is the socket): one shared function, no per-socket closure. */
function dispatch(name, ...rest) {
  const [args, ack] = split(rest);
  const handler = Object.prototype.hasOwnProperty.call(handlers, name) ? handlers[name] : null;
  let answer;
  try {
    answer = handler ? handler(this, args) : error('unknown_event', `unknown event ${JSON.stringify(name)}`);
  } catch (e) {
    answer = error('bad_request', String((e && e.message) || e));
  }
  ack(answer);
}

io.on('connection', (socket) => socket.onAny(dispatch));

httpServer.on('error', (err) => {
  console.error(`sio-relay: ${err.message}`);
  process.exit(1);
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  console.error(`sio-relay listening on ${a.address}:${a.port} (socket.io ${require('socket.io/package.json').version}, node ${process.version}${recovery ? ', connection state recovery' : ''})`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
