// The official Node Socket.IO server (npm `socket.io`, pinned in
// package.json) as a peer for the Rust client's tests
// (crates/client/tests/socketio_node.rs):
//
//   node tests/interop/lib/sio-peer-server.mjs PORT [websocket|polling]
//
// `polling` serves only HTTP long-polling (the WebSocket upgrade is refused),
// so a client must fall back. Connection state recovery is on; heartbeats are
// short. Prints `listening PORT` once it accepts connections.
//
// Handlers: every socket joins `room-a` and gets `welcome`;
//   echo(...args, ack)   acks the arguments back
//   ask(q, ack)          asks the client `question(q)` with an ack, acks the answer
//   shout(msg)           emits `news(msg)` to `room-a`
//   bin(buffer, ack)     acks the buffer with 0xff appended
//   drop()               closes the transport (the client reconnects)
//   bye()                disconnects the socket (the client stops)
// A CONNECT with auth {token: "bad"} is refused (connect_error "unauthorized").

import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2]);
const mode = process.argv[3] || 'websocket';
const httpServer = createServer();
const io = new Server(httpServer, {
  transports: mode === 'polling' ? ['polling'] : ['polling', 'websocket'],
  pingInterval: 300,
  pingTimeout: 300,
  connectionStateRecovery: { maxDisconnectionDuration: 60_000, skipMiddlewares: true },
});

io.use((socket, next) => {
  if (socket.handshake.auth?.token === 'bad') next(new Error('unauthorized'));
  else next();
});

io.on('connection', (socket) => {
  if (!socket.recovered) socket.join('room-a');
  socket.emit('welcome', { id: socket.id, recovered: socket.recovered });
  socket.on('echo', (...args) => {
    const ack = args.pop();
    ack(...args);
  });
  socket.on('ask', async (q, ack) => {
    try {
      const answer = await socket.timeout(5_000).emitWithAck('question', q);
      ack(answer);
    } catch (e) {
      ack({ error: String(e) });
    }
  });
  socket.on('shout', (msg) => io.to('room-a').emit('news', msg));
  socket.on('bin', (buf, ack) => ack(Buffer.concat([buf, Buffer.from([0xff])])));
  socket.on('drop', () => socket.conn.close());
  socket.on('bye', () => socket.disconnect());
});

httpServer.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
