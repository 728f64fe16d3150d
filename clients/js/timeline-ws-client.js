// timeline-ws browser client: a dependency-free ES module. Times are milliseconds.
// The same policy as entrypoints/client/policy.py (the README's "Clients" table):
// full-jitter backoff reset after 5 s open, liveness on wall-clock time, handover before
// API Gateway's 2-hour limit, a bounded send queue, the 128 KB limit, auth vs network.
const DEFAULTS = {
  pingInterval: 3e4, pongTimeout: 1e4, checkDeadline: 5e3, backoffBase: 1e3, backoffCap: 3e4,
  stableAfter: 5e3, cleanCloseJitter: 1e3, handoverAfter: 69e5, handoverJitter: 18e4,
  queueLimit: 100, maxBytes: 131072, refreshMargin: 6e4,
};

// Full jitter, a fresh draw for every attempt: random(0, min(cap, base * 2^attempt)).
export const backoffDelay = (attempt, o, random) =>
  random() * Math.min(o.backoffCap, o.backoffBase * 2 ** Math.min(attempt, 64));

// Dead only after deadAfter of silence AND with a ping unanswered for pongTimeout, or when a
// check ping (tab visible again, back online) got no message within checkDeadline. A late
// timer alone never kills: the ping it sends is fresh and gets its own timeout.
export const isDead = (c, t, o) =>
  (c.chk != null && t - c.chk >= o.checkDeadline) ||
  (t - c.last >= o.deadAfter && Object.values(c.pings).some((s) => t - s >= o.pongTimeout));

// The JWT's exp in ms (unverified: only to ask for a fresh token in time), NaN if unreadable.
export const tokenExp = (token) => {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).exp * 1e3;
  } catch {
    return NaN;
  }
};

const defaultProbe = async (url) => {
  try {
    return (await fetch(url, { cache: "no-store" })).status;
  } catch {
    return null;
  }
};

export function connect(options) {
  const o = { ...DEFAULTS, ...options };
  o.deadAfter ??= 2 * o.pingInterval + 1e4;
  const now = o.clock || Date.now;
  const random = o.random || Math.random;
  const setT = o.setTimeout || setTimeout;
  const clearT = o.clearTimeout || clearTimeout;
  const Socket = o.WebSocket || WebSocket;
  const env = o.env || globalThis;
  const probe = o.probe || defaultProbe;
  const listeners = {};
  const queue = [];
  let state = "idle", attempts = 0, cur = null, next = null, timer, seq = 0;
  let stopped = false, paused = false, forced = false, refused = null;

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
  const url = (token, http) => {
    const u = new URL(http ? o.url.replace(/^ws/, "http") : o.url);
    u.searchParams.set("token", token);
    return u.href;
  };
  const halt = (c) => [c.hb, c.pt, c.ho, c.ck].forEach(clearT);

  async function attempt(force, handover) {
    if (stopped || paused || (!handover && cur)) return;
    if (env.navigator?.onLine === false) return setState("offline"); // "online" resumes
    let token;
    try {
      token = await o.getToken({ forceRefresh: !!force });
      if (!force && tokenExp(token) - now() < o.refreshMargin)
        token = await o.getToken({ forceRefresh: true });
    } catch {
      return handover || later(backoff());
    }
    if (stopped || paused || (!handover && cur)) return;
    if (refused != null) {
      if (token === refused) return wait(backoff(), attempt); // never retry a refused token
      refused = null;
      forced = false;
    }
    if (!handover) setState("connecting");
    emit("connecting", { attempt: attempts, handover: !!handover });
    const c = { ws: new Socket(url(token)), pings: {}, token, handover };
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
    const id = String(++seq), t = now();
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
    forced = false;
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
    let delay;
    if (c.at) {
      const stable = now() - c.at >= o.stableAfter;
      if (stable) attempts = 0;
      if (stable && (code === 1000 || code === 1001)) {
        delay = random() * o.cleanCloseJitter;
        attempts = 1;
      } else delay = backoff();
    } else if (!forced) {
      // failed before opening: once with a forced token refresh
      forced = true;
      delay = backoff();
      emit("close", { ...event, willReconnect: true, delay });
      return later(delay, 1);
    } else {
      // the browser hides the handshake's status (a bare 1006): ask the probe
      const status = await probe(url(c.token, 1));
      if (stopped || paused) return;
      event.status = status;
      if (status === 401 || status === 403) {
        refused = c.token;
        emit("close", { ...event, willReconnect: false });
        setState("auth_error");
        emit("auth_error", { status });
        return wait(backoff(), attempt); // ask getToken again, at the backoff cadence
      }
      delay = backoff();
    }
    emit("close", { ...event, willReconnect: true, delay });
    later(delay);
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
  hooks.forEach(([target, name, f]) => target?.addEventListener(name, f));

  const api = {
    get state() {
      return state;
    },
    get connectionId() {
      return cur?.ok ? cur.id : null;
    },
    on(event, f) {
      (listeners[event] ||= []).push(f);
      return api;
    },
    off(event, f) {
      listeners[event] = (listeners[event] || []).filter((g) => g !== f);
      return api;
    },
    // Sends now when open, else queues (the oldest dropped past queueLimit: "dropped").
    // Returns true when sent. Throws RangeError over maxBytes of UTF-8 (128 KB).
    send(data) {
      const text = typeof data === "string" ? data : JSON.stringify(data);
      const size = new TextEncoder().encode(text).length;
      if (size > o.maxBytes) throw new RangeError(`payload_too_large: ${size} > ${o.maxBytes} bytes`);
      if (stopped) throw new Error("closed");
      if (state === "open" && cur.ws.readyState === 1) return cur.ws.send(text), true;
      queue.push(text);
      if (queue.length > o.queueLimit) emit("dropped", { message: queue.shift() });
      return false;
    },
    close() {
      stopped = true;
      clearT(timer);
      hooks.forEach(([target, name, f]) => target?.removeEventListener(name, f));
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
