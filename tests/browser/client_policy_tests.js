// The browser client's policy, run IN Chromium on a fake clock, fake timers and a fake
// WebSocket (the twin of tests/unit/test_client_policy.py). The page imports this module and
// publishes window.__results = [{name, ok, error}] and window.__done = true.
import { HEARTBEAT_ID_PREFIX, backoffDelay, connect, isDead, tokenExp } from "/client/timeline-ws.js";

// -- fakes ------------------------------------------------------------------------------

class FakeTimers {
  constructor() {
    this.now = 1_000_000;
    this.queue = [];
    this.nextId = 1;
    this.clock = () => this.now;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.queue.push({ id, at: this.now + Math.max(0, ms || 0), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.queue = this.queue.filter((t) => t.id !== id);
    };
  }
  // Run every timer due within `ms`, in time order, moving the clock to each.
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at || a.id - b.id);
      const due = this.queue[0];
      if (!due || due.at > end) break;
      this.queue.shift();
      this.now = Math.max(this.now, due.at);
      due.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
  // A throttled tab: the clock moves on, no timer runs.
  skip(ms) {
    this.now += ms;
  }
  // The throttled tab wakes up: every overdue timer runs now, late.
  async runOverdue() {
    await this.advance(0);
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0)); // real macrotask: flushes promises

function fakeSocketClass(timers) {
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      FakeSocket.all.push(this);
    }
    get token() {
      return new URL(this.url).searchParams.get("token");
    }
    send(text) {
      if (this.readyState !== 1) throw new Error("not open");
      this.sent.push(text);
    }
    close(code, reason) {
      if (this.closedWith) return;
      this.closedWith = { code, reason };
      this.readyState = 2;
    }
    // -- what the test plays as the server --
    accept() {
      this.readyState = 1;
      this.onopen?.({});
    }
    receive(data) {
      this.onmessage?.({ data: typeof data === "string" ? data : JSON.stringify(data) });
    }
    pings() {
      return this.sent.map((t) => JSON.parse(t)).filter((m) => m.action === "ping");
    }
    answerPings(connectionId = "conn-" + FakeSocket.all.indexOf(this)) {
      for (const p of this.pings().slice(this.answered || 0)) {
        this.receive({ action: "pong", connectionId, serverTime: "2026-01-03T00:00:00Z", id: p.id });
      }
      this.answered = this.pings().length;
    }
    finish(code = 1006, reason = "", wasClean = false) {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean });
    }
  }
  FakeSocket.all = [];
  return FakeSocket;
}

class ScriptedRandom {
  constructor(...draws) {
    this.draws = draws;
    this.calls = 0;
    this.fn = () => {
      this.calls += 1;
      return this.draws.length ? this.draws.shift() : 0.5;
    };
  }
}

function fakeEnv() {
  const target = new EventTarget();
  target.navigator = { onLine: true };
  target.document = new EventTarget();
  target.document.visibilityState = "visible";
  return target;
}

function jwt(claims) {
  const part = (o) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${part({ alg: "RS256" })}.${part(claims)}.sig`;
}

// A client on fakes; `events` records [name, data] for every event.
function harness(overrides = {}) {
  const timers = new FakeTimers();
  const Socket = fakeSocketClass(timers);
  const random = overrides.random || new ScriptedRandom();
  const env = fakeEnv();
  const tokens = { value: "token-1", calls: [] };
  const probes = [];
  const reaches = [];
  const events = [];
  const client = connect({
    url: "wss://example.invalid/ws",
    getToken: (opts) => {
      tokens.calls.push(opts);
      if (tokens.error) throw tokens.error;
      return tokens.value;
    },
    probe: overrides.probe === false ? undefined : async (token) => {
      probes.push(token);
      return overrides.probeStatus ?? null;
    },
    reach: async (url) => {
      reaches.push(url);
      return overrides.reachable ?? true;
    },
    clock: timers.clock,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    random: random.fn,
    WebSocket: Socket,
    env,
    ...(overrides.options || {}),
  });
  for (const name of ["connecting", "open", "pong", "message", "close", "reconnecting", "auth_error", "token_error", "state", "dropped"]) {
    client.on(name, (data) => events.push([name, data]));
  }
  const of = (name) => events.filter(([n]) => n === name).map(([, d]) => d);
  return { timers, Socket, random, env, tokens, probes, reaches, events, of, client };
}

// The last socket fails before opening (a bare 1006); once the client decided (it may ask its
// reach or probe), the timers run to the attempt it scheduled.
async function failAndWait(h) {
  h.Socket.all.at(-1).finish(1006);
  await settle();
  await settle();
  await h.timers.advance(h.of("reconnecting").at(-1).delay);
}

async function opened(h) {
  await settle();
  const socket = h.Socket.all.at(-1);
  socket.accept();
  socket.answerPings();
  await settle();
  return socket;
}

// -- a tiny runner --------------------------------------------------------------------------

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
function assert(condition, message) {
  if (!condition) throw new Error(message || "assertion failed");
}
function equal(actual, expected, message) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message || "not equal"}: got ${a}, expected ${e}`);
}
const near = (a, b) => Math.abs(a - b) < 1e-6;

// -- backoff ------------------------------------------------------------------------------

test("backoff: full jitter draws a new random number for every attempt", async () => {
  const o = { backoffBase: 1000, backoffCap: 30000 };
  const r = new ScriptedRandom(0.5, 0.25);
  equal([backoffDelay(0, o, r.fn), backoffDelay(1, o, r.fn)], [500, 500]);
  equal(r.calls, 2, "one draw per attempt");
});

test("backoff: delays stay in [0, min(30 s, 1 s * 2^attempt)) and the cap holds", async () => {
  const o = { backoffBase: 1000, backoffCap: 30000 };
  const ceilings = [0, 1, 2, 3, 4, 5, 6, 40, 5000].map((n) => backoffDelay(n, o, () => 1));
  equal(ceilings, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  equal(backoffDelay(3, o, () => 0), 0);
});

test("backoff: failed attempts back off with one draw each, growing to the cap", async () => {
  const h = harness({ random: new ScriptedRandom(1, 1, 1, 1, 1, 1, 1, 1) });
  await settle();
  for (let i = 0; i < 7; i++) {
    await failAndWait(h); // refused before opening
  }
  equal(h.of("reconnecting").map((r) => r.delay), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  equal(h.random.calls, 7, "a fresh draw for every attempt");
  equal(h.Socket.all.length, 8);
  h.client.close();
});

// -- the reset rule ---------------------------------------------------------------------------

test("reset: a connection open under 5 s does not reset the attempt counter", async () => {
  const h = harness({ random: new ScriptedRandom(1, 1, 1, 1) });
  await settle();
  for (let i = 0; i < 2; i++) {
    await failAndWait(h);
  }
  const socket = await opened(h);
  await h.timers.advance(4900);
  socket.finish(1006);
  await settle();
  equal(h.of("reconnecting").map((r) => r.delay), [1000, 2000, 4000], "the schedule goes on");
  h.client.close();
});

test("reset: a connection open 5 s resets the counter; a clean close reconnects within 1 s", async () => {
  const h = harness({ random: new ScriptedRandom(1, 1, 1, 0.5, 0.5) });
  await settle();
  for (let i = 0; i < 2; i++) {
    await failAndWait(h);
  }
  let socket = await opened(h);
  await h.timers.advance(5000);
  socket.finish(1006); // unclean, but the counter resets: attempt 0 again
  await settle();
  equal(h.of("reconnecting").at(-1).delay, 500);
  await h.timers.advance(500);
  socket = await opened(h);
  await h.timers.advance(60000);
  socket.finish(1001, "", true); // idle timeout / 2-hour limit: jittered over 1 s
  await settle();
  const close = h.of("close").at(-1);
  equal([close.code, close.willReconnect, close.opened], [1001, true, true]);
  equal(h.of("reconnecting").at(-1).delay, 500);
  h.client.close();
});

// -- liveness -------------------------------------------------------------------------------

test("liveness: the rule needs silence AND a ping unanswered past its timeout", async () => {
  const o = { deadAfter: 70000, pongTimeout: 10000, checkDeadline: 5000 };
  equal(isDead({ last: 0, pings: {} }, 120000, o), false, "silence alone");
  equal(isDead({ last: 0, pings: { 1: 115000 } }, 120000, o), false, "a fresh ping");
  equal(isDead({ last: 0, pings: { 1: 30000 } }, 69999, o), false, "under 70 s");
  equal(isDead({ last: 0, pings: { 1: 30000 } }, 70000, o), true);
  equal(isDead({ last: 0, pings: {}, chk: 10 }, 5010, o), true, "a check past its deadline");
});

test("liveness: a timer 90 s late in a throttled tab does not kill a live connection", async () => {
  const h = harness();
  const socket = await opened(h);
  await h.timers.advance(30000); // heartbeat 2 sent
  socket.answerPings();
  h.timers.skip(90000); // the tab sleeps: 90 s without any timer
  await h.timers.runOverdue(); // the late heartbeat: pings now, does not judge by the silence
  equal(h.of("close").length, 0, "no close after the late timer");
  equal(socket.closedWith, null);
  socket.answerPings(); // the pong arrives (events are not throttled)
  await h.timers.advance(15000); // its pong-timeout check runs: alive
  equal(h.of("close").length, 0);
  equal(h.client.state, "open");
  h.client.close();
});

test("liveness: a silent connection is declared dead after 70 s and replaced", async () => {
  const h = harness({ random: new ScriptedRandom(0.5) });
  const socket = await opened(h);
  await h.timers.advance(69000);
  equal(h.of("close").length, 0, "not before 70 s");
  await h.timers.advance(1000);
  const close = h.of("close")[0];
  equal([close.code, close.reason, close.willReconnect], [1006, "heartbeat timeout", true]);
  assert(socket.closedWith, "the dead socket was closed");
  await h.timers.advance(close.delay);
  equal(h.Socket.all.length, 2, "a new connection");
  h.client.close();
});

test("liveness: back to visible, a check ping must be answered within 5 s", async () => {
  const h = harness();
  const socket = await opened(h);
  await h.timers.advance(1000);
  h.env.document.visibilityState = "visible";
  h.env.document.dispatchEvent(new Event("visibilitychange"));
  equal(socket.pings().length, 2, "a ping at once");
  await h.timers.advance(5000);
  equal(h.of("close")[0]?.reason, "heartbeat timeout", "dead after 5 s, not 70 s");
  h.client.close();
});

// -- handover --------------------------------------------------------------------------------

test("handover: the successor opens first, the old one closes 1000 unreported", async () => {
  const h = harness({ options: { handoverAfter: 60000, handoverJitter: 0 } });
  const old = await opened(h);
  await h.timers.advance(59000);
  equal(h.Socket.all.length, 1, "not before the handover time");
  await h.timers.advance(1000);
  equal(h.Socket.all.length, 2, "the successor is connecting");
  equal(old.closedWith, null, "the old one still serves");
  const successor = h.Socket.all[1];
  successor.accept();
  old.receive({ action: "note", from: "old" }); // both deliver while the successor opens
  successor.answerPings("conn-new");
  await settle();
  equal(old.closedWith, { code: 1000, reason: "handover" });
  old.receive({ action: "note", from: "old, late" });
  old.finish(1000, "", true);
  await settle();
  equal(h.of("close").length, 0, "the old close is no drop");
  equal(h.of("open").map((e) => [e.connectionId, e.handover]), [["conn-0", false], ["conn-new", true]]);
  equal(h.of("message").map((m) => m.from), ["old", "old, late"]);
  equal(h.client.connectionId, "conn-new");
  h.client.send({ action: "x" });
  equal(JSON.parse(successor.sent.at(-1)).action, "x", "sends go to the successor");
  h.client.close();
});

test("handover: the default comes at 115 min plus up to 3 min", async () => {
  const h = harness({ random: new ScriptedRandom(0.5) }); // the one draw: the jitter
  const socket = await opened(h);
  const due = 115 * 60000 + 0.5 * 180000;
  for (let elapsed = 0; elapsed < due - 1; elapsed += Math.min(30000, due - 1 - elapsed)) {
    await h.timers.advance(Math.min(30000, due - 1 - elapsed));
    socket.answerPings(); // a healthy connection all along
  }
  equal(h.Socket.all.length, 1, "not at 116.5 min - 1 ms");
  await h.timers.advance(1);
  equal(h.Socket.all.length, 2, "the successor at 116.5 min");
  h.client.close();
});

// -- the send queue and the size limit -------------------------------------------------------

test("queue: while disconnected at most 100 wait, the oldest dropped and reported", async () => {
  const h = harness();
  await settle();
  for (let i = 0; i < 105; i++) equal(h.client.send({ n: i }), false);
  equal(h.of("dropped").map((d) => JSON.parse(d.message).n), [0, 1, 2, 3, 4]);
  const socket = await opened(h);
  const delivered = socket.sent.map((t) => JSON.parse(t)).filter((m) => "n" in m).map((m) => m.n);
  equal(delivered.length, 100);
  equal([delivered[0], delivered[99]], [5, 104], "flushed in order once open");
  equal(h.client.send({ n: "now" }), true);
  h.client.close();
});

test("size: 32 KB of UTF-8 passes (one frame on AWS), one byte more throws message_too_large", async () => {
  const h = harness();
  const socket = await opened(h);
  equal(h.client.send("x".repeat(32768)), true);
  const before = socket.sent.length;
  let error = null;
  try {
    h.client.send("é".repeat(16384) + "x");
  } catch (e) {
    error = e;
  }
  assert(error instanceof RangeError && error.code === "message_too_large", String(error));
  equal(socket.sent.length, before, "nothing sent");
  h.client.close();
});

// -- tokens and auth -------------------------------------------------------------------------

test("auth: a refused handshake gets one forced refresh, then the probe; 401 stops", async () => {
  const h = harness({ probeStatus: 401 });
  await settle();
  h.Socket.all[0].finish(1006);
  await settle();
  await h.timers.advance(h.of("reconnecting")[0].delay);
  equal(h.tokens.calls.at(-1), { forceRefresh: true }, "the retry forces a refresh");
  equal(h.probes.length, 0, "the probe waits for a fresh token's failure");
  h.Socket.all[1].finish(1006);
  await settle();
  await settle();
  equal(h.probes, ["token-1"], "the probe gets the token, not a URL carrying it");
  equal(h.of("auth_error"), [{ reason: "probe", status: 401 }]);
  equal(h.client.state, "auth_error");
  await h.timers.advance(120000); // getToken is polled, the same token: no attempt
  equal(h.Socket.all.length, 2, "never retries the refused token");
  assert(h.tokens.calls.length > 4, "getToken polled at the backoff cadence");
  h.tokens.value = "token-2";
  await h.timers.advance(30000);
  equal(h.Socket.all.length, 3, "a different token: attempts resume");
  equal(h.Socket.all[2].token, "token-2");
  h.client.close();
});

test("auth without a probe: 3 refusals in a row while the server answers, each with a fresh token", async () => {
  const h = harness({ probe: false, random: new ScriptedRandom(1, 1, 1, 1) });
  await settle();
  for (let i = 0; i < 3; i++) {
    h.Socket.all.at(-1).finish(1006);
    await settle();
    await settle();
    if (i < 2) await h.timers.advance(h.of("reconnecting").at(-1).delay);
  }
  equal(h.reaches, Array(3).fill("https://example.invalid/ws"), "asked without the token");
  equal(h.tokens.calls.slice(1).map((c) => c.forceRefresh), [true, true], "retries use fresh tokens");
  equal(h.of("auth_error"), [{ reason: "refused", status: null }]);
  equal(h.of("close").map((c) => c.willReconnect), [true, true, false]);
  assert(h.timers.now - 1_000_000 < 10000, "within 10 s");
  await h.timers.advance(120000);
  equal(h.Socket.all.length, 3, "no attempt with the refused token");
  h.client.close();
});

test("auth without a probe: failures while the server does not answer are network errors", async () => {
  const h = harness({ probe: false, reachable: false });
  await settle();
  for (let i = 0; i < 5; i++) {
    await failAndWait(h);
  }
  equal(h.of("auth_error").length, 0);
  equal(h.Socket.all.length, 6, "it keeps trying");
  assert(h.tokens.calls.every((c) => !c.forceRefresh), "no forced refresh for a network error");
  h.client.close();
});

test("auth: an expired token (unverified exp) is an auth_error at once, without a handshake", async () => {
  const h = harness({ probe: false });
  h.tokens.value = jwt({ exp: Math.floor(h.timers.now / 1000) - 60 });
  await settle();
  await settle();
  equal(h.tokens.calls, [{ forceRefresh: false }, { forceRefresh: true }], "one forced refresh first");
  equal(h.Socket.all.length, 0, "no handshake");
  equal(h.of("auth_error"), [{ reason: "token_expired", status: null }]);
  await h.timers.advance(60000);
  equal(h.Socket.all.length, 0, "none while getToken returns it");
  h.client.setToken(jwt({ exp: Math.floor(h.timers.now / 1000) + 3600 }));
  await settle();
  await settle();
  equal(h.Socket.all.length, 1, "setToken at auth_error: an attempt at once");
  await opened(h);
  equal(h.client.state, "open");
  h.client.close();
});

test("auth: an inconclusive probe (null, 426) backs off as for a network error", async () => {
  const h = harness({ probeStatus: 426 });
  await settle();
  h.Socket.all[0].finish(1006);
  await settle();
  await h.timers.advance(h.of("reconnecting")[0].delay);
  h.Socket.all[1].finish(1006);
  await settle();
  await settle();
  equal(h.of("auth_error").length, 0);
  equal(h.of("close").at(-1).willReconnect, true);
  equal(h.of("close").at(-1).status, 426);
  h.client.close();
});

test("tokens: a token expiring within 60 s is asked again with forceRefresh", async () => {
  const h = harness();
  h.tokens.value = jwt({ exp: Math.floor((h.timers.now + 30000) / 1000) });
  await settle();
  await settle();
  equal(h.tokens.calls, [{ forceRefresh: false }, { forceRefresh: true }]);
  equal(tokenExp(jwt({ exp: 1234 })), 1234000);
  assert(Number.isNaN(tokenExp("opaque")));
  h.client.close();
});

test("token provider: a failure is reported (token_error) and retried with the backoff", async () => {
  const h = harness({ random: new ScriptedRandom(1, 1, 1) });
  h.tokens.error = new Error("login service down");
  await settle();
  await settle();
  equal(h.of("token_error").map((e) => [e.error.message, e.delay]), [["login service down", 1000]]);
  await h.timers.advance(1000);
  await settle();
  equal(h.of("token_error").map((e) => e.delay), [1000, 2000]);
  equal(h.client.state, "reconnecting");
  h.tokens.error = null;
  await h.timers.advance(2000);
  await opened(h);
  equal(h.client.state, "open");
  h.client.close();
});

test("control: reconnect() drops the connection unreported and attempts at once, backoff reset", async () => {
  const h = harness({ random: new ScriptedRandom(1, 1, 1) });
  await settle();
  for (let i = 0; i < 2; i++) {
    await failAndWait(h);
  }
  const socket = await opened(h);
  const calls = h.tokens.calls.length;
  h.client.reconnect();
  equal(socket.closedWith, { code: 1000, reason: "reconnect" });
  await settle();
  equal(h.Socket.all.length, 4, "a new attempt without waiting");
  equal(h.tokens.calls.length, calls + 1, "getToken asked again");
  equal(h.of("connecting").at(-1).attempt, 0, "the backoff counter is reset");
  socket.finish(1000, "", true);
  await opened(h);
  equal(h.of("close").length, 2, "the dropped connection's close is not reported");
  h.client.close();
  let error = null;
  try {
    h.client.reconnect();
  } catch (e) {
    error = e;
  }
  equal(error?.code, "closed");
});

test("heartbeat ids carry the reserved prefix; an app's pong with its own id is a message", async () => {
  const h = harness();
  const socket = await opened(h);
  assert(socket.pings().every((p) => p.id.startsWith(HEARTBEAT_ID_PREFIX)), JSON.stringify(socket.pings()));
  equal(HEARTBEAT_ID_PREFIX, "tws:");
  socket.receive({ action: "pong", id: "1", connectionId: "conn-0" }); // the app's ping "1"
  equal(h.of("message").map((m) => m.id), ["1"]);
  equal(h.of("pong").length, 1, "only the heartbeat's");
  h.client.close();
});

test("connect() throws invalid_url and invalid_options", async () => {
  const codes = [];
  for (const options of [{ url: "https://x/ws", token: "t" }, { url: "not a url", token: "t" }, { token: "t" }, { url: "wss://x/ws" }, undefined]) {
    try {
      connect(options);
      codes.push("none");
    } catch (e) {
      codes.push(e instanceof TypeError && e.code);
    }
  }
  equal(codes, ["invalid_url", "invalid_url", "invalid_url", "invalid_options", "invalid_options"]);
});

// -- the page's life ---------------------------------------------------------------------------

test("offline: no attempt while navigator.onLine is false, one at once on online", async () => {
  const h = harness();
  h.env.navigator.onLine = false;
  await settle();
  equal([h.Socket.all.length, h.client.state], [0, "offline"]);
  h.env.navigator.onLine = true;
  h.env.dispatchEvent(new Event("online"));
  await settle();
  equal(h.Socket.all.length, 1);
  h.client.close();
});

test("pagehide closes with 1000 and stays away; pageshow (persisted) reconnects", async () => {
  const h = harness();
  const socket = await opened(h);
  const hide = new Event("pagehide");
  h.env.dispatchEvent(hide);
  equal(socket.closedWith, { code: 1000, reason: "pagehide" });
  equal(h.client.state, "paused");
  socket.finish(1000, "", true);
  await h.timers.advance(600000);
  equal(h.Socket.all.length, 1, "no reconnection while hidden");
  const show = new Event("pageshow");
  show.persisted = true;
  h.env.dispatchEvent(show);
  await settle();
  equal(h.Socket.all.length, 2);
  h.client.close();
});

test("close() closes with 1000 and never reconnects", async () => {
  const h = harness();
  const socket = await opened(h);
  h.client.close();
  equal(socket.closedWith, { code: 1000, reason: undefined });
  socket.finish(1000, "", true);
  await h.timers.advance(600000);
  equal(h.Socket.all.length, 1);
  equal(h.of("close").at(-1).willReconnect, false);
  equal(h.client.state, "closed");
});

// -- run ---------------------------------------------------------------------------------------

window.__testNames = tests.map((t) => t.name);
const results = [];
for (const { name, fn } of tests) {
  try {
    await fn();
    results.push({ name, ok: true });
  } catch (error) {
    results.push({ name, ok: false, error: String(error && error.stack || error) });
  }
}
window.__results = results;
window.__done = true;
