#!/usr/bin/env node
// Socket.IO (official `socket.io` npm server) peer for benches/sio_idle.sh.
// Usage: node sio-relay.js PORT        (or HOST:PORT, or --listen HOST:PORT)
// Listens on 127.0.0.1 unless a host is given, path /socket.io/, default
// options (pingInterval 25 s, pingTimeout 20 s, polling + websocket), and
// accepts every connection on the main namespace "/". Kept minimal on purpose:
// what is measured is the server's cost of an idle connection.
'use strict';

const http = require('http');
const { Server } = require('socket.io');

function parseListen(argv) {
  let addr = '127.0.0.1:3000';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--listen' || a === '-l') addr = argv[++i];
    else if (a.startsWith('--listen=')) addr = a.slice('--listen='.length);
    else if (a === '-h' || a === '--help') {
      console.error('usage: node sio-relay.js [--listen] [HOST:]PORT');
      process.exit(0);
    } else if (!a.startsWith('-')) addr = a;
    else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (/^\d+$/.test(addr || '')) addr = `127.0.0.1:${addr}`;
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(addr || '');
  if (!m) {
    console.error(`bad listen address: ${addr}`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]) };
}

const { host, port } = parseListen(process.argv.slice(2));

const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false });

io.on('connection', () => {});

httpServer.on('error', (err) => {
  console.error(`sio-relay: ${err.message}`);
  process.exit(1);
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  console.error(`sio-relay listening on ${a.address}:${a.port} (socket.io ${require('socket.io/package.json').version}, node ${process.version})`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
