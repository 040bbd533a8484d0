// Starts one of our server binaries for a test file and stops it again.
//
//   const srv = await startServer('examples/interop-server', (port) => [String(port)]);
//   ... srv.url, srv.port, srv.pause() / srv.resume() (SIGSTOP / SIGCONT) ...
//   await srv.stop();
//
// Binaries come from $SB_BIN_DIR (default `$CARGO_TARGET_DIR/release`, with
// CARGO_TARGET_DIR defaulting to ~/.cache/switchboard-target). The server's
// stdout and stderr go to $OUT_DIR/interop/<name>-<port>.log (OUT_DIR
// defaults to `out`).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const BIN_DIR =
  process.env.SB_BIN_DIR ||
  path.join(
    process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache', 'switchboard-target'),
    'release',
  );

export const LOG_DIR = path.resolve(process.env.OUT_DIR || 'out', 'interop');

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;

// Every child still running when this process exits gets SIGKILL, so a
// crashing test file cannot leak a server.
const running = new Set();
process.on('exit', () => {
  for (const proc of running) {
    try {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A TCP port that was free a moment ago (bound on 127.0.0.1:0, then released). */
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
 * Spawns `$BIN_DIR/<bin>` with `args(port)` (or a fixed array) on a fresh port
 * and resolves once the port accepts TCP connections.
 *
 * @param {string} bin path relative to BIN_DIR, e.g. 'examples/interop-server' or 'switchboard'
 * @param {(port: number) => string[]} args
 */
export async function startServer(bin, args) {
  const exe = path.join(BIN_DIR, bin);
  if (!fs.existsSync(exe)) {
    throw new Error(
      `server binary not found: ${exe} (build it with cargo build --release, ` +
        'or point SB_BIN_DIR at the directory that holds it)',
    );
  }
  fs.mkdirSync(LOG_DIR, { recursive: true });

  const port = await freePort();
  const argv = typeof args === 'function' ? args(port) : args;
  const logPath = path.join(LOG_DIR, `${path.basename(bin)}-${port}.log`);
  const logFd = fs.openSync(logPath, 'a');
  fs.writeSync(logFd, `# ${exe} ${argv.join(' ')}\n`);

  const proc = spawn(exe, argv, {
    stdio: ['ignore', logFd, logFd],
    env: { RUST_BACKTRACE: '1', ...process.env },
  });
  fs.closeSync(logFd); // the child holds its own copy
  running.add(proc);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      running.delete(proc);
      resolve(exited);
    });
  });
  proc.once('error', (err) => {
    exited = { error: err };
  });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      throw new Error(
        `${bin} exited before accepting connections (${JSON.stringify(exited)}); see ${logPath}`,
      );
    }
    if (await accepts(port)) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${bin} did not accept connections on port ${port} within 10 s; see ${logPath}`);
    }
    await sleep(50);
  }

  let stopping = null;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    logPath,
    /** SIGSTOP: the process freezes, its sockets stay open. */
    pause() {
      if (!exited) proc.kill('SIGSTOP');
    },
    /** SIGCONT after pause(). */
    resume() {
      if (!exited) proc.kill('SIGCONT');
    },
    /** SIGTERM (SIGKILL after 3 s); resolves once the process has exited. */
    stop() {
      if (stopping) return stopping;
      stopping = (async () => {
        if (exited) return exited;
        proc.kill('SIGCONT'); // a paused process would not act on SIGTERM
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
        const result = await exitPromise;
        clearTimeout(timer);
        return result;
      })();
      return stopping;
    },
  };
}
