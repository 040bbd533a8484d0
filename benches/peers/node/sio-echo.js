#!/usr/bin/env node
// Socket.IO echo peer (official `socket.io` npm server) for benches/sio_echo.sh.
// Usage: node sio-echo.js [--listen] [HOST:]PORT
// On the main namespace: an `echo` event with an ack is acknowledged with its
// arguments; one without is emitted back as `echo`. Default server options
// (pingInterval 25 s, pingTimeout 20 s, polling + websocket), no
// connection state recovery, no per-message deflate (the default).
'use strict';

const http = require('http');
const { Server } = require('socket.io');

let addr = '127.0.0.1:3000';
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--listen' || argv[i] === '-l') addr = argv[++i];
  else if (argv[i].startsWith('--listen=')) addr = argv[i].slice(9);
  else if (!argv[i].startsWith('-')) addr = argv[i];
}
if (/^\d+$/.test(addr)) addr = `127.0.0.1:${addr}`;
const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(addr);
if (!m) {
  console.error(`bad listen address: ${addr}`);
  process.exit(2);
}

const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false });
io.on('connection', (socket) => {
  socket.on('echo', (...args) => {
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args.pop()(...args);
    } else {
      socket.emit('echo', ...args);
    }
  });
});
httpServer.listen(Number(m[2]), m[1], () => {
  const a = httpServer.address();
  console.error(`sio-echo listening on ${a.address}:${a.port} (socket.io ${require('socket.io/package.json').version}, node ${process.version})`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
