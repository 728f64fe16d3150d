// Types of timeline-ws-client (timeline-ws-client.js). The one place they are written: the
// README's client reference links here. Times are milliseconds; sizes are UTF-8 bytes.

/** Heartbeat ping ids start with this prefix (`"tws:"`); an application must not use it. */
export declare const HEARTBEAT_ID_PREFIX: "tws:";

/** The codes of the errors `connect()`, `send()`, `reconnect()` throw (`error.code`). */
export type ErrorCode =
  /** `connect()`: `url` is missing, unparsable or not `ws://` / `wss://` (a TypeError). */
  | "invalid_url"
  /** `connect()`: neither `getToken` (a function) nor `token` (a string), or no `WebSocket` option nor global (a TypeError). */
  | "invalid_options"
  /** `send()`: over `maxBytes` (32 KB) of UTF-8; nothing was sent or queued (a RangeError). */
  | "message_too_large"
  /** `send()` or `reconnect()` after `close()` (an Error). */
  | "closed";

/** An error thrown by the client: `message` starts with `code`. */
export interface TimelineSocketError extends Error {
  readonly code: ErrorCode;
}

/** Why the client stopped at `auth_error` (see the auth rule on `connect`). */
export type AuthErrorReason =
  /** The token's `exp` (read unverified) had passed, even after a forced refresh; no handshake was made. */
  | "token_expired"
  /** `authRefusals` handshakes in a row failed before opening while the server answered. */
  | "refused"
  /** The app's `probe` answered 401 or 403 for a freshly refreshed token. */
  | "probe";

export type State =
  /** Before the first attempt. */
  | "idle"
  /** A handshake runs, or waits for the first pong. */
  | "connecting"
  /** The connection answered its first ping. */
  | "open"
  /** Waiting for the next attempt (backoff). */
  | "reconnecting"
  /** The token was refused: no handshake until it changes. */
  | "auth_error"
  /** `navigator.onLine` is false: no attempt until the `online` event. */
  | "offline"
  /** `pagehide` closed the connection (back/forward cache); `pageshow` resumes. */
  | "paused"
  /** After `close()`. */
  | "closed";

/** What `getToken` is asked with. */
export interface TokenRequest {
  /** `true`: return a new token, not a cached one (a refused or nearly expired token). */
  forceRefresh: boolean;
}

/** Where the token comes from: `getToken`, `token`, or both (`token` wins). One is required. */
export type TokenSource =
  | {
      /** Asked before every attempt (sync or async). */
      getToken: (request: TokenRequest) => string | Promise<string>;
      /** A token to use instead of `getToken` (change it with `setToken`). */
      token?: string;
    }
  | {
      getToken?: (request: TokenRequest) => string | Promise<string>;
      token: string;
    };

/** `connect()`'s options: the URL, a token source (`getToken` or `token`) and the knobs. */
export type ConnectOptions = ConnectSettings & TokenSource;

export interface ConnectSettings {
  /**
   * URL of the WebSocket API, without the token: `wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}`
   * (this project's stage: `live`), `wss://{domain}/ws` (a custom domain), or locally `ws://127.0.0.1:8080/ws`.
   */
  url: string;
  /**
   * The app's own auth check, asked after a handshake with a freshly refreshed token failed
   * before opening: the HTTP status (401/403: `auth_error`) or `null` when unknown. It gets
   * the token itself: send it in a header or a body, never in a URL.
   */
  probe?: (token: string) => Promise<number | null>;
  /**
   * Whether the server answers at all, asked without the token (default: a `no-cors` fetch of
   * the `http(s)` form of `url`, which needs no CORS header). Used when there is no `probe`.
   */
  reach?: (httpUrl: string) => Promise<boolean>;
  /** Refusals in a row (failed before opening, server reachable) that make an `auth_error`. Default 3. */
  authRefusals?: number;
  /** Heartbeat interval. Default 30 000. */
  pingInterval?: number;
  /** A ping unanswered this long may mean a dead connection. Default 10 000. */
  pongTimeout?: number;
  /** Silence after which a connection with a ping past `pongTimeout` is dead. Default 2 × pingInterval + 10 000. */
  deadAfter?: number;
  /** A check ping (tab visible again, back online) must be answered within. Default 5 000. */
  checkDeadline?: number;
  /** Backoff: random(0, min(backoffCap, backoffBase × 2^attempt)). Defaults 1 000 and 30 000. */
  backoffBase?: number;
  backoffCap?: number;
  /** A connection open this long resets the attempt counter. Default 5 000. */
  stableAfter?: number;
  /** After a server close 1000/1001 of a stable connection, reconnect within. Default 1 000. */
  cleanCloseJitter?: number;
  /** Handover before API Gateway's 2-hour limit: at handoverAfter + random(0, handoverJitter). Defaults 6 900 000 and 180 000. */
  handoverAfter?: number;
  handoverJitter?: number;
  /** Messages kept while disconnected (the oldest dropped: `dropped`). Default 100. */
  queueLimit?: number;
  /** Largest message `send` accepts, in UTF-8 bytes. Default 32 768: API Gateway's frame limit (a browser never fragments). */
  maxBytes?: number;
  /** A token whose `exp` is within this is asked again with `forceRefresh`. Default 60 000. */
  refreshMargin?: number;
  /** Injectable for tests: wall clock in ms (`Date.now`). */
  clock?: () => number;
  /** Injectable for tests: draws in [0, 1) (`Math.random`). */
  random?: () => number;
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: any) => void;
  /**
   * The WebSocket class (default: the global `WebSocket`). Node < 22 has none without
   * `--experimental-websocket`: pass the `ws` package's (`import WebSocket from "ws"`).
   */
  WebSocket?: new (url: string) => WebSocket;
  /**
   * The window (online, pagehide, pageshow, visibilitychange; default: the global object).
   * An object without `addEventListener` (Node's global object) gets no such handling.
   */
  env?: any;
}

export interface ConnectingEvent {
  /** The backoff counter (0 for a first or reset attempt). */
  attempt: number;
  /** The successor of a connection near its 2-hour limit. */
  handover: boolean;
}
export interface OpenEvent {
  connectionId: string;
  /** It replaced a connection near its 2-hour limit (whose close is reported nowhere). */
  handover: boolean;
}
export interface PongEvent {
  /** The heartbeat ping's id (`HEARTBEAT_ID_PREFIX` + a number). */
  id: string;
  /** Round trip in ms. */
  rtt: number;
  connectionId: string;
  /** The server's ISO 8601 UTC time, as sent. */
  serverTime: string | undefined;
}
export interface CloseEvent {
  /** The close frame's code (1006 without one, or after a heartbeat timeout). */
  code: number;
  reason: string;
  wasClean: boolean;
  /** The handshake had succeeded. */
  opened: boolean;
  willReconnect: boolean;
  /** Ms before the next attempt, when `willReconnect`. */
  delay?: number;
  /** The `probe`'s answer, when it was asked. */
  status?: number | null;
}
export interface ReconnectingEvent {
  attempt: number;
  /** Ms before the attempt. */
  delay: number;
}
export interface AuthErrorEvent {
  reason: AuthErrorReason;
  /** The `probe`'s status (401 or 403), else `null`. */
  status: number | null;
}
export interface TokenErrorEvent {
  /** What `getToken` threw (or rejected with). */
  error: unknown;
  /** Ms before it is asked again. */
  delay: number;
}
export interface StateEvent {
  state: State;
  previous: State;
}
export interface DroppedEvent {
  /** The queued message dropped (the oldest), as text. */
  message: string;
}

/** Event name → what its listeners receive. */
export interface EventMap {
  connecting: ConnectingEvent;
  open: OpenEvent;
  pong: PongEvent;
  /** A server message: the parsed JSON value, or the raw data when it is not JSON (pongs of heartbeat pings are not messages). */
  message: unknown;
  close: CloseEvent;
  reconnecting: ReconnectingEvent;
  auth_error: AuthErrorEvent;
  token_error: TokenErrorEvent;
  state: StateEvent;
  dropped: DroppedEvent;
}
export type EventName = keyof EventMap;

export interface TimelineSocket {
  /** The current state. */
  readonly state: State;
  /** The open connection's connectionId (from its first pong), else `null`. */
  readonly connectionId: string | null;
  on<E extends EventName>(event: E, listener: (data: EventMap[E]) => void): TimelineSocket;
  off<E extends EventName>(event: E, listener: (data: EventMap[E]) => void): TimelineSocket;
  /**
   * Send now when open (`true`), else queue (`false`; past `queueLimit` the oldest is
   * dropped: `dropped`). An object is JSON-encoded.
   * @throws {TimelineSocketError} "message_too_large" (RangeError) over `maxBytes`; "closed".
   */
  send(data: unknown): boolean;
  /** Use `token` for every later attempt (`getToken` is no longer asked); at `auth_error`, reconnects at once. */
  setToken(token: string): void;
  /**
   * Drop the current connection (unreported) and attempt at once with a reset backoff,
   * asking `getToken` again (after a login, a network change).
   * @throws {TimelineSocketError} "closed" after `close()`.
   */
  reconnect(): void;
  /** Close with 1000; never reconnects. */
  close(): void;
}

/**
 * Start a client that stays connected (the first attempt comes after the current task, so
 * listeners registered at once see every event).
 *
 * The auth rule: see the README's "Auth errors" (a token whose unverified `exp` has passed is
 * an `auth_error` without a handshake; `authRefusals` refused handshakes with fresh tokens
 * while the server answers are one; so is a `probe` answering 401/403).
 *
 * @throws {TimelineSocketError} "invalid_url" or "invalid_options" (TypeErrors).
 */
export declare function connect(options: ConnectOptions): TimelineSocket;

/** Full-jitter backoff delay (ms) before attempt `attempt`. */
export declare function backoffDelay(
  attempt: number,
  options: { backoffBase: number; backoffCap: number },
  random: () => number,
): number;

/** The liveness rule over a connection's record `{last, pings, chk}` at time `now` (ms). */
export declare function isDead(
  connection: { last: number; pings: Record<string, number>; chk?: number | null },
  now: number,
  options: { deadAfter: number; pongTimeout: number; checkDeadline: number },
): boolean;

/** The JWT's `exp` in ms, read without verifying it; `NaN` when unreadable. */
export declare function tokenExp(token: string): number;
