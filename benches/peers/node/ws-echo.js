#!/usr/bin/env node
// ws (Node.js) echo server: a peer for benches/echo.sh.
// Usage: node ws-echo.js --listen HOST:PORT   (or a positional HOST:PORT)
// Echoes every message back with the same type (binary stays binary, text stays
// text), accepts every path, permessage-deflate off, prints nothing per message.
'use strict';

const { WebSocketServer } = require('ws');

function parseListen(argv) {
  let addr = '127.0.0.1:9001';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--listen' || a === '-l') addr = argv[++i];
    else if (a.startsWith('--listen=')) addr = a.slice('--listen='.length);
    else if (a === '-h' || a === '--help') {
      console.error('usage: node ws-echo.js [--listen] HOST:PORT');
      process.exit(0);
    } else if (!a.startsWith('-')) addr = a;
    else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(addr || '');
  if (!m) {
    console.error(`bad listen address: ${addr}`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]) };
}

const { host, port } = parseListen(process.argv.slice(2));

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: false,
  clientTracking: false,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  const a = wss.address();
  console.error(`ws-echo listening on ${a.address}:${a.port} (ws ${require('ws/package.json').version}, node ${process.version})`);
});

wss.on('error', (err) => {
  console.error(`ws-echo: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
