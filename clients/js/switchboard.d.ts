// Types of the switchboard native-protocol client (switchboard.js).

/** A token, or a function that produces one (asked before every connection and on a `refresh` push). */
export type TokenProvider = () => string | null | undefined | Promise<string | null | undefined>;

export interface BackoffOptions {
  /** Ceiling of the first delay, ms. Default 500. */
  initial?: number;
  /** Largest ceiling, ms. Default 20000. */
  max?: number;
  /** Growth of the ceiling per attempt. Default 2. */
  factor?: number;
}

/** What the client needs of a WebSocket (the browser's, Node ≥ 22's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState?: number;
  /** Set to `'arraybuffer'` by the client (chunk frames of file downloads). */
  binaryType?: string;
  /** Text frames (JSON, `ping`) and binary chunk frames (`Uint8Array`). */
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  terminate?(): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Where `online`/`offline` and `visibilitychange` come from (default: `globalThis`, i.e. `window`). */
export interface SwitchboardEnvironment {
  addEventListener?(type: string, listener: (ev: any) => void): void;
  removeEventListener?(type: string, listener: (ev: any) => void): void;
  navigator?: { onLine?: boolean };
  document?: {
    visibilityState?: string;
    addEventListener?(type: string, listener: (ev: any) => void): void;
    removeEventListener?(type: string, listener: (ev: any) => void): void;
  };
}

export interface SwitchboardOptions {
  /** The primary `ws://`/`wss://` URL of `/ws`, or the primary then its backups. */
  urls: string | string[];
  /** Sent as `?token=`; a function is asked before each connection and on a `refresh` push. */
  token?: string | null | TokenProvider;
  /** Time between text `ping`s, ms (0: no heartbeat). Default 10000. */
  pingInterval?: number;
  /** The connection is dead after pingInterval + pingTimeout without any message. Default 10000. */
  pingTimeout?: number;
  /** Reconnection delays: exponential with full jitter. */
  backoff?: BackoffOptions;
  /** Backoff attempts (since the last connection) before giving up (`closed`). Default Infinity. */
  maxAttempts?: number;
  /** Failed attempts in a row on one URL before the next. Default 2. */
  failuresPerUrl?: number;
  /** Requests kept while not connected; beyond, a new request rejects with `queue_full`. Default 1000. */
  queueLimit?: number;
  /** Time a request sent on the wire waits for its answer, ms (then `timeout`). Default 10000. */
  requestTimeout?: number;
  /** Time a connection attempt may take up to the `welcome`, ms. Default 10000. */
  connectTimeout?: number;
  /** The WebSocket constructor. Default `globalThis.WebSocket` (Node 20 has none: pass `ws`'s). */
  WebSocket?: WebSocketConstructor | (new (url: string, ...rest: any[]) => any);
  /** Random numbers in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
  /** Source of `online`/`offline`/`visibilitychange`. Default `globalThis`. */
  environment?: SwitchboardEnvironment | null;
}

export type ReadyState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateEvent {
  state: ReadyState;
  /** The URL connected to, tried, or to be tried next. */
  url: string;
  /** `reconnecting`: attempts since the last connection (1 for the first retry). */
  attempt?: number;
  /** `reconnecting`: the wait before the next attempt, ms (absent while offline). */
  delay?: number;
  /** `reconnecting`, `closed`: why. */
  reason?: string;
}

export interface Message<T = unknown> {
  room: string;
  event: string;
  data: T;
  /** Its offset in the room's log. */
  offset: number;
  /** The room log's epoch. */
  epoch: string;
  /** The publishing user; null for the admin API. */
  from: string | null;
  /** RFC 3339 UTC timestamp. */
  at?: string;
}

export interface PresenceEvent {
  room: string;
  user: string;
  action: 'join' | 'leave';
}

export interface GapEvent {
  /** Messages of this room may have been lost while disconnected: refetch its state. */
  room: string;
}

export interface KickEvent {
  reason: string | null;
  reconnect: boolean;
}

export interface ErrorEvent {
  error: unknown;
}

export interface SwitchboardEventMap {
  state: StateEvent;
  message: Message;
  presence: PresenceEvent;
  gap: GapEvent;
  kick: KickEvent;
  error: ErrorEvent;
  /** A file is complete and may be downloaded (a room message with the event `file`, also delivered as `message`). */
  file: FileEvent;
  /** Progress of every sendFile and receiveFile of this client. */
  fileprogress: FileProgress;
}

// ------------------------------------------------------------ file transfer

/** Where a file goes: a room (the sender must be allowed to publish there) or a user (not for anonymous senders). */
export type FileTarget = { room: string; user?: never } | { user: string; room?: never };

/** What sendFile reads: a Blob/File (browsers, Node), or bytes in memory. */
export type FileInput = Blob | ArrayBuffer | ArrayBufferView;

/** What a `file` room message announces (and what `files()` lists, with `from` and `to`). */
export interface FileInfo {
  /** The transfer id: 32 lowercase hex characters. */
  transfer: string;
  name: string;
  size: number;
  /** 64 lowercase hex characters. */
  sha256: string;
}

export interface FileEvent extends FileInfo {
  /** The room the announcement came in: the target room, or `user:<id>` for a file sent to a user. */
  room: string;
  /** The sender. */
  from: string | null;
  offset: number;
  epoch: string;
  at?: string;
}

export interface FileListing extends FileInfo {
  from: string | null;
  to: { room: string } | { user: string };
}

/**
 * Progress of an upload (after each offer answer and each `file_ack`) or a
 * download (after each `file_get` answer and each chunk stored). `acked` and
 * `bytes` never go back within one `transfer`; the last event has
 * `acked === chunks` and `bytes === size`.
 */
export type FileProgress = UploadProgress | DownloadProgress;

export interface ProgressBase {
  transfer: string;
  name: string | null;
  /** Chunks in the file (0 for an empty file). */
  chunks: number;
  /** Chunks acknowledged: by the server (upload), by this client (download). */
  acked: number;
  /** Bytes of those chunks. */
  bytes: number;
  /** The file's size in bytes. */
  size: number;
}

export interface UploadProgress extends ProgressBase {
  direction: 'upload';
  /** Chunks put on the wire (the next to send): may step back to `acked` after a reconnect. */
  sent: number;
}

export interface DownloadProgress extends ProgressBase {
  direction: 'download';
  /** Chunks received and stored (equal to `acked`). */
  received: number;
}

export interface SendFileOptions {
  /** The file's name. Default: `file.name` of a File, else `"file"`. */
  name?: string;
  /** The chunk size to ask for (1024 to the server's max payload − 21); default the server's (32768). */
  chunkSize?: number;
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting rejects with `aborted` and cancels the transfer on the server (`file_cancel`). */
  signal?: AbortSignal;
}

export type SentFile = FileInfo;

export interface ReceiveFileOptions {
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborting rejects with `aborted` (the server's copy stays). */
  signal?: AbortSignal;
}

export interface ReceivedFile extends FileInfo {
  name: string;
  /** The whole file (in a browser, `new Blob([data])` makes a Blob of it). */
  data: Uint8Array;
}

export interface JoinResult {
  epoch: string;
  /** The room log's last offset. */
  offset: number;
  /** Whether everything since the last delivered message came back. */
  recovered: boolean;
}

export interface Member {
  user: string;
  info: unknown;
  connections: number;
  since: string;
}

export interface StoredMessage<T = unknown> {
  offset: number;
  event: string;
  data: T;
  from: string | null;
  at: string;
}

export interface HistoryOptions {
  /** An offset, or `{epoch, offset}` (another epoch: everything held). */
  since?: number | { epoch: string; offset: number };
  limit?: number;
}

/** Error codes: the server's (`forbidden`, `rate_limited`, …) and the client's. */
export type ErrorCode =
  | 'timeout'
  | 'disconnected'
  | 'queue_full'
  | 'closed'
  | 'aborted'
  | 'checksum_mismatch'
  | 'not_found'
  | 'not_ready'
  | 'too_large'
  | 'bad_chunk'
  | 'out_of_order'
  | 'bad_reply'
  | 'changed'
  | 'read_failed'
  | 'bad_request'
  | 'unknown_op'
  | 'forbidden'
  | 'too_many_rooms'
  | 'rate_limited'
  | 'unauthorized'
  | 'unavailable'
  | 'rpc_failed'
  | (string & {});

export class SwitchboardError extends Error {
  constructor(code: string, message?: string, details?: unknown);
  readonly code: ErrorCode;
  /** The server's `error` object, when the server refused the request. */
  readonly details?: { code: string; message?: string; status?: number; data?: unknown; [k: string]: unknown };
}

export class Switchboard {
  constructor(options: SwitchboardOptions);
  /** One instance per identical `urls` list (later options are ignored until it is closed). */
  static shared(options: SwitchboardOptions): Switchboard;

  /** Starts connecting; later calls do nothing. */
  connect(): this;
  /** Closes for good: pending and queued requests reject with `closed`. */
  close(): void;

  readonly readyState: ReadyState;
  /** The user the server sees (from the last `welcome`). */
  readonly user: string | null;
  /** The server's id of this connection (from the last `welcome`). */
  readonly socket: string | null;

  /** Returns a function that removes the listener. */
  on<K extends keyof SwitchboardEventMap>(type: K, listener: (event: SwitchboardEventMap[K]) => void): () => void;
  off<K extends keyof SwitchboardEventMap>(type: K, listener: (event: SwitchboardEventMap[K]) => void): void;

  /** Joins `room`; it is joined again with `since` after every reconnect. */
  join(room: string, options?: { presence?: boolean }): Promise<JoinResult>;
  leave(room: string): Promise<void>;
  publish(room: string, event: string, data?: unknown, options?: { volatile?: boolean }): Promise<{ offset: number }>;
  presence(room: string): Promise<{ members: Member[] }>;
  history(room: string, options?: HistoryOptions): Promise<{ epoch: string; messages: StoredMessage[] }>;
  /** A raw request `{op, …}`: the reply without `id` and `ok`; rejects with a SwitchboardError. */
  request<R extends object = Record<string, unknown>>(op: { op: string; [field: string]: unknown }): Promise<R>;

  /**
   * Sends a file: hashes it (SHA-256), offers it, sends its chunks within the
   * server's window, resumes after reconnects (never resending an acknowledged
   * chunk); resolves on `file_complete`. Rejects with the server's code
   * (`forbidden`, `too_large`, `unavailable`, `checksum_mismatch`, `not_found`
   * if cancelled meanwhile, …), `aborted`, `closed`.
   */
  sendFile(to: FileTarget, file: FileInput, options?: SendFileOptions): Promise<SentFile>;
  /**
   * Downloads a complete transfer (its id, or a `file` event / `files()`
   * entry), acknowledging each chunk; resumes after reconnects from the chunks
   * held; checks the SHA-256. Rejects with `not_ready`, `not_found`,
   * `forbidden`, `checksum_mismatch`, `aborted`, `closed`, …
   */
  receiveFile(transfer: string | { transfer: string }, options?: ReceiveFileOptions): Promise<ReceivedFile>;
  /** The complete transfers sent to this user or to the rooms this connection is in. */
  files(): Promise<{ files: FileListing[] }>;
  /** Deletes a transfer this user sent. */
  cancelFile(transfer: string | { transfer: string }): Promise<void>;
}

/** A chunk frame: `0x01`, the transfer id's 16 bytes, the index (u32 big-endian), the data. */
export function encodeChunk(transfer: string | Uint8Array, index: number, data: ArrayBuffer | ArrayBufferView): Uint8Array;
/** Reads a chunk frame; null when it is not one. `data` is a view into the frame. */
export function decodeChunk(
  frame: ArrayBuffer | ArrayBufferView | Uint8Array[],
): { transfer: string; index: number; data: Uint8Array } | null;
/** SHA-256 (64 lowercase hex) of bytes or a Blob: WebCrypto when available, else the JS Sha256. */
export function sha256Hex(input: Blob | ArrayBuffer | ArrayBufferView): Promise<string>;

/** Incremental SHA-256 in plain JS. */
export class Sha256 {
  update(data: ArrayBuffer | ArrayBufferView): this;
  /** The 32-byte digest; no update after it. */
  digest(): Uint8Array;
  hex(): string;
}

/** The delay before attempt `attempt` (0-based), full jitter: `unit` × min(max, initial × factor^attempt), floored. */
export function backoffDelay(attempt: number, backoff?: BackoffOptions, unit?: number): number;

/** The primary URL and its backups (see `failuresPerUrl`). */
export class Rotation {
  constructor(urls: string[], failuresPerUrl?: number);
  readonly urls: string[];
  index: number;
  failures: number;
  current(): string;
  failed(): void;
  skip(): void;
  succeeded(): void;
}

export default Switchboard;
