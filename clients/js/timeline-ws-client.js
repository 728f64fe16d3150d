// timeline-ws-client: the browser client of the timeline WebSocket API. A dependency-free ES
// module; its types are timeline-ws-client.d.ts (the one place they are written). Times are
// milliseconds. The policy is the Python client's (clients/python/timeline_ws_client/policy.py;
// the README's "Clients" table): full-jitter backoff reset after 5 s open, liveness on
// wall-clock time, handover before API Gateway's 2-hour limit, a bounded send queue, AWS's
// 32 KB frame limit, and auth errors told apart from network errors without seeing the
// handshake's status (see `connect`).
const DEFAULTS = {
  pingInterval: 3e4, pongTimeout: 1e4, checkDeadline: 5e3, backoffBase: 1e3, backoffCap: 3e4,
  stableAfter: 5e3, cleanCloseJitter: 1e3, handoverAfter: 69e5, handoverJitter: 18e4,
  queueLimit: 100, maxBytes: 32768, refreshMargin: 6e4, authRefusals: 3,
};

/** Heartbeat ping ids start with this prefix; applications must not use it for their ids. */
export const HEARTBEAT_ID_PREFIX = "tws:";

// An Error (or TypeError, RangeError) whose `code` is one of the documented error codes.
const fail = (code, message, Type = Error) => Object.assign(new Type(`${code}: ${message}`), { code });

/** Full jitter, a fresh draw for every attempt: random(0, min(cap, base * 2^attempt)) ms. */
export const backoffDelay = (attempt, o, random) =>
  random() * Math.min(o.backoffCap, o.backoffBase * 2 ** Math.min(attempt, 64));

// Dead only after deadAfter of silence AND with a ping unanswered for pongTimeout, or when a
// check ping (tab visible again, back online) got no message within checkDeadline. A late
// timer alone never kills: the ping it sends is fresh and gets its own timeout.
export const isDead = (c, t, o) =>
  (c.chk != null && t - c.chk >= o.checkDeadline) ||
  (t - c.last >= o.deadAfter && Object.values(c.pings).some((s) => t - s >= o.pongTimeout));

/** The JWT's `exp` in ms, read WITHOUT verifying the token (only the server can); NaN if unreadable. */
export const tokenExp = (token) => {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).exp * 1e3;
  } catch {
    return NaN;
  }
};

// Whether the server answers at all, asked WITHOUT the token: a no-cors request needs no CORS
// header from the server (API Gateway sends none), and its promise rejects only when nothing
// answered (no network, DNS, refused).
const defaultReach = (httpUrl) =>
  fetch(httpUrl, { mode: "no-cors", cache: "no-store", credentials: "omit" }).then(() => true, () => false);

/**
 * Open a client that stays connected: see timeline-ws-client.d.ts for every option, event and
 * error code, and the README's "Clients" section for the rules.
 *
 * The auth rule (a browser never sees a refused handshake's HTTP status, only a bare 1006):
 * a token whose unverified `exp` has passed, after one `getToken({forceRefresh: true})`, is an
 * `auth_error` ("token_expired") without any handshake; a handshake that fails before opening
 * while the server answers a tokenless request is a refusal, retried with a forced refresh,
 * and `authRefusals` (3) refusals in a row are an `auth_error` ("refused"); with a `probe`
 * (the app's own check, given the token, never a URL with it) a 401/403 from the probe after
 * a forced refresh is one ("probe"). After an `auth_error` no handshake is made until the
 * token changes (`setToken`, or `getToken` returning a different one: it is asked again at
 * the backoff cadence).
 *
 * @throws {TypeError} code "invalid_url" (not a ws:// or wss:// URL) or "invalid_options"
 *   (no options, neither `getToken` nor `token`, no `WebSocket` option nor global).
 */
export function connect(options) {
  if (!options || typeof options !== "object") throw fail("invalid_options", "connect() takes an options object", TypeError);
  let u;
  try {
    u = new URL(options.url);
  } catch {}
  if (!/^wss?:$/.test(u?.protocol)) throw fail("invalid_url", "url must be a ws:// or wss:// URL", TypeError);
  if (typeof options.getToken !== "function" && typeof options.token !== "string")
    throw fail("invalid_options", "getToken (a function) or token (a string) is required", TypeError);
  const o = { ...DEFAULTS, ...options };
  o.deadAfter ??= 2 * o.pingInterval + 1e4;
  const now = o.clock || Date.now;
  const random = o.random || Math.random;
  const setT = o.setTimeout || setTimeout;
  const clearT = o.clearTimeout || clearTimeout;
  const Socket = o.WebSocket || globalThis.WebSocket;
  if (typeof Socket != "function")
    throw fail("invalid_options", "no WebSocket implementation: pass WebSocket (Node < 22: the ws package's)", TypeError);
  const env = o.env || globalThis; // Node's is no event target: no online/pagehide handling
  const reach = o.reach || defaultReach;
  const httpUrl = o.url.replace(/^ws/, "http");
  const listeners = {};
  const queue = [];
  let state = "idle", attempts = 0, cur = null, next = null, timer, seq = 0, gen = 0;
  let stopped = false, paused = false, refused = null, refusals = 0, given = o.token;

  const emit = (event, data) =>
    (listeners[event] || []).forEach((f) => {
      try {
        f(data);
      } catch (error) {
        setTimeout(() => { throw error; });
      }
    });
  const setState = (s) => {
    const previous = state;
    if (s !== previous) emit("state", { state: (state = s), previous });
  };
  const wait = (ms, f) => {
    clearT(timer);
    timer = setT(f, ms);
  };
  const backoff = () => backoffDelay(attempts++, o, random);
  const later = (delay, force) => {
    setState("reconnecting");
    emit("reconnecting", { attempt: attempts, delay });
    wait(delay, () => attempt(force));
  };
  const getToken = (force) => given ?? o.getToken({ forceRefresh: !!force });
  const halt = (c) => [c.hb, c.pt, c.ho, c.ck].forEach(clearT);
  const drop = () => {
    [cur, next].forEach((c) => {
      if (c) {
        c.gone = 1; // its close is no drop: report nothing
        halt(c);
        c.ws.close(1000, "reconnect");
      }
    });
    cur = next = null;
  };
  const authError = (token, reason, status = null) => {
    refused = token;
    refusals = 0;
    setState("auth_error");
    emit("auth_error", { reason, status });
    wait(backoff(), attempt); // ask getToken again, at the backoff cadence
  };

  async function attempt(force, handover) {
    const g = gen;
    if (stopped || paused || (!handover && cur)) return;
    if (env.navigator?.onLine === false) return setState("offline"); // "online" resumes
    let token;
    try {
      token = await getToken(force);
      if (!force && tokenExp(token) - now() < o.refreshMargin) token = await getToken((force = 1));
    } catch (error) {
      if (handover || g !== gen) return;
      const delay = backoff();
      emit("token_error", { error, delay });
      return refused != null ? wait(delay, attempt) : later(delay);
    }
    if (stopped || paused || g !== gen || (!handover && cur)) return;
    if (refused != null) {
      if (token === refused) return wait(backoff(), attempt); // never retry a refused token
      refused = null;
    }
    if (tokenExp(token) <= now()) return handover || authError(token, "token_expired");
    if (!handover) setState("connecting");
    emit("connecting", { attempt: attempts, handover: !!handover });
    const w = new URL(o.url);
    w.searchParams.set("token", token); // the handshake is the one request that carries it
    const c = { ws: new Socket(w.href), pings: {}, token, force, handover };
    if (handover) next = c;
    else cur = c;
    c.ws.onopen = () => {
      c.at = c.last = now();
      ping(c);
      beat(c);
    };
    c.ws.onmessage = (e) => message(c, e.data);
    c.ws.onclose = (e) => ended(c, e.code, e.reason, e.wasClean);
  }

  function ping(c, check) {
    const id = HEARTBEAT_ID_PREFIX + ++seq, t = now();
    c.pings[id] = t;
    if (check && c.chk == null) c.chk = t;
    if (c.ws.readyState === 1) c.ws.send(JSON.stringify({ action: "ping", id }));
  }
  function alive(c) {
    if (!isDead(c, now(), o)) return true;
    c.ws.onclose = null;
    c.ws.close();
    ended(c, 1006, "heartbeat timeout", false);
  }
  function beat(c) {
    c.hb = setT(() => {
      if (alive(c)) {
        ping(c);
        c.pt = setT(() => alive(c), o.pongTimeout);
        beat(c);
      }
    }, o.pingInterval);
  }
  function check(c) {
    ping(c, true);
    c.ck = setT(() => alive(c), o.checkDeadline);
  }

  function message(c, data) {
    const t = now();
    let m = data;
    c.last = t;
    c.chk = null;
    try {
      m = JSON.parse(data);
    } catch {}
    if (m && m.action === "pong" && m.id in c.pings) {
      const rtt = t - c.pings[m.id];
      delete c.pings[m.id];
      c.id ||= m.connectionId;
      emit("pong", { id: m.id, rtt, connectionId: c.id, serverTime: m.serverTime });
      if (!c.ok) ready(c);
    } else emit("message", m);
  }

  function ready(c) {
    c.ok = 1;
    if (c.handover) {
      if (next !== c) return;
      const old = cur;
      cur = c;
      next = null;
      if (old) {
        old.gone = 1; // its close is no drop: report nothing
        halt(old);
        old.ws.close(1000, "handover");
      }
    } else if (cur !== c) return;
    refusals = 0;
    setState("open");
    emit("open", { connectionId: c.id, handover: !!c.handover });
    while (queue.length && c.ws.readyState === 1) c.ws.send(queue.shift());
    c.ho = setT(() => handover(c, 0), o.handoverAfter + random() * o.handoverJitter - (now() - c.at));
  }
  function handover(c, n) {
    if (cur !== c || next || stopped || paused) return;
    c.retry = n;
    attempt(0, 1);
  }

  async function ended(c, code, reason, wasClean) {
    halt(c);
    if (c.gone) return;
    if (c.handover && !c.ok) {
      // a successor that failed: the old connection serves on, try again later
      if (next === c) next = null;
      if (cur) cur.ho = setT(() => handover(cur, cur.retry + 1), backoffDelay(cur.retry, o, random));
      return;
    }
    if (c !== cur) return;
    cur = null;
    if (next) {
      next.gone = 1;
      next.ws.close();
      next = null;
    }
    const event = { code, reason, wasClean, opened: !!c.at };
    if (stopped || paused) return emit("close", { ...event, willReconnect: false });
    let delay, force;
    if (c.at) {
      const stable = now() - c.at >= o.stableAfter;
      if (stable) attempts = 0;
      if (stable && (code === 1000 || code === 1001)) {
        delay = random() * o.cleanCloseJitter;
        attempts = 1;
      } else delay = backoff();
    } else {
      // Failed before opening, its status hidden: refused, or nothing answered? (see connect)
      const g = gen;
      const status = o.probe ? (c.force ? await o.probe(c.token) : undefined) : undefined;
      const refusal = o.probe ? status === 401 || status === 403 : await reach(httpUrl);
      if (stopped || paused || g !== gen) return;
      if (status !== undefined) event.status = status;
      refusals = refusal ? refusals + 1 : 0;
      if (o.probe ? refusal : refusals >= o.authRefusals) {
        emit("close", { ...event, willReconnect: false });
        return authError(c.token, o.probe ? "probe" : "refused", status ?? null);
      }
      force = o.probe ? !c.force : refusal; // retry a refused token with a fresh one
      delay = backoff();
    }
    emit("close", { ...event, willReconnect: true, delay });
    later(delay, force);
  }

  const onOnline = () => (state === "offline" ? attempt() : cur?.ok && check(cur));
  const onVisible = () => env.document.visibilityState === "visible" && cur?.ok && check(cur);
  const onHide = () => {
    // bfcache or unload: close cleanly, no reconnection while hidden
    paused = true;
    clearT(timer);
    [cur, next].forEach((c) => {
      if (c) {
        c.gone = 1;
        halt(c);
        c.ws.close(1000, "pagehide");
      }
    });
    cur = next = null;
    setState("paused");
  };
  const onShow = (e) => {
    if (e.persisted && paused) {
      paused = false;
      attempt();
    }
  };
  const hooks = [[env, "online", onOnline], [env, "pagehide", onHide], [env, "pageshow", onShow],
    [env.document, "visibilitychange", onVisible]];
  hooks.forEach(([target, name, f]) => target?.addEventListener?.(name, f));

  const api = {
    /** The state: idle, connecting, open, reconnecting, auth_error, offline, paused, closed. */
    get state() {
      return state;
    },
    /** The open connection's connectionId (from its first pong), else null. */
    get connectionId() {
      return cur?.ok ? cur.id : null;
    },
    /** Call `f(payload)` on `event` (see EventMap in the .d.ts); returns the client. */
    on(event, f) {
      (listeners[event] ||= []).push(f);
      return api;
    },
    /** Stop calling `f` on `event`; returns the client. */
    off(event, f) {
      listeners[event] = (listeners[event] || []).filter((g) => g !== f);
      return api;
    },
    /**
     * Send now when open (true), else queue (false; past queueLimit the oldest is dropped:
     * "dropped"). An object is JSON-encoded.
     * @throws {RangeError} code "message_too_large" over maxBytes (32 KB) of UTF-8: nothing is sent.
     * @throws {Error} code "closed" after close().
     */
    send(data) {
      const text = typeof data === "string" ? data : JSON.stringify(data);
      const size = new TextEncoder().encode(text).length;
      if (size > o.maxBytes)
        throw fail("message_too_large", `${size} bytes > ${o.maxBytes} (one WebSocket frame on API Gateway)`, RangeError);
      if (stopped) throw fail("closed", "the client was closed");
      if (state === "open" && cur.ws.readyState === 1) return cur.ws.send(text), true;
      queue.push(text);
      if (queue.length > o.queueLimit) emit("dropped", { message: queue.shift() });
      return false;
    },
    /** Use `token` for every later attempt (getToken is no longer asked); at auth_error, reconnect at once. */
    setToken(token) {
      given = token;
      if (state === "auth_error") api.reconnect();
    },
    /**
     * Drop the connection (unreported), reset the backoff and attempt at once, asking for a
     * token again (after a login, a network change).
     * @throws {Error} code "closed" after close().
     */
    reconnect() {
      if (stopped) throw fail("closed", "the client was closed");
      gen++;
      paused = false;
      refused = null;
      refusals = attempts = 0;
      clearT(timer);
      drop();
      attempt();
    },
    /** Close with 1000 and never reconnect. */
    close() {
      stopped = true;
      clearT(timer);
      hooks.forEach(([target, name, f]) => target?.removeEventListener?.(name, f));
      [next, cur].forEach((c) => {
        if (c) {
          halt(c);
          c.ws.close(1000);
        }
      });
      if (next) next.gone = 1;
      setState("closed");
    },
  };
  Promise.resolve().then(() => attempt()); // after the caller registered its listeners
  return api;
}
