// relaybus firehose console: the live event stream over the gateway's /ws endpoint.
//
// Plain JavaScript, no build step. It subscribes with the page's ?topic= filters (and
// ?token= when the gateway needs one), resumes after the last event id it saw whenever the
// connection drops (the gateway replays what was missed, or says "gap"), keeps events that
// arrive while paused, and counts events and rates per type. `window.firehose` holds its
// state, for the curious and for tests.
"use strict";

(() => {
  const MAX_ROWS = 500;        // rows kept in the table
  const MAX_KEPT = 5000;       // events kept for the detail view and de-duplication
  const RATE_WINDOW_MS = 10000;
  const FATAL = new Set([4400, 4401, 4403]);  // the gateway refused us: retrying won't help

  // Filters travel as filter= in URLSearchParams' encoding (a space is "+", the wildcard
  // "%2B"); a hand-typed ?topic=nova/+/x keeps "+" as the wildcard, so it is read raw.
  const params = new URLSearchParams(location.search);
  const rawTopics = location.search.slice(1).split("&")
    .filter((pair) => pair.startsWith("topic="))
    .map((pair) => decodeURIComponent(pair.slice(6)));
  const LAST_ID = "relaybus.firehose.lastId";  // survives a page refresh (per tab)
  const state = {
    filters: [...rawTopics, ...params.getAll("filter")].filter(Boolean),
    token: params.get("token"),
    lastId: sessionStorage.getItem(LAST_ID),
    instance: null,
    scope: "",                 // " · within <the token's scope>", when it has one
    paused: false,
    pending: [],
    kept: new Map(),           // id -> CloudEvent
    types: new Map(),          // type -> {count, times[]}
    received: 0,
    dropped: 0,
    gaps: 0,
    connects: 0,
    socket: null,
    retry: 0,
    timer: null,
  };
  window.firehose = state;

  const $ = (id) => document.getElementById(id);
  const rows = $("events");

  function setStatus(name, text) {
    const status = $("status");
    status.dataset.state = name;
    status.textContent = text;
  }

  function socketURL() {
    const url = new URL("ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    for (const filter of state.filters) url.searchParams.append("filter", filter);
    if (state.lastId) url.searchParams.set("since", state.lastId);
    if (state.token) url.searchParams.set("token", state.token);
    return url.toString();
  }

  function connect() {
    clearTimeout(state.timer);
    const socket = new WebSocket(socketURL());
    state.socket = socket;
    socket.onmessage = (message) => {
      if (socket === state.socket) handle(JSON.parse(message.data));
    };
    socket.onclose = (closed) => {
      if (socket !== state.socket) return;       // replaced on purpose (new filter)
      if (FATAL.has(closed.code)) {
        setStatus("error", closed.reason || "refused by the gateway");
        return;
      }
      const delay = Math.min(5000, 250 * 2 ** state.retry) * (0.5 + Math.random());
      state.retry += 1;
      setStatus("reconnecting", "reconnecting…");
      state.timer = setTimeout(connect, delay);
    };
  }

  function reconnect() {
    const old = state.socket;
    state.socket = null;
    if (old) old.close(1000, "new filter");
    state.retry = 0;
    connect();
  }

  function handle(message) {
    switch (message.kind) {
      case "hello":
        state.retry = 0;
        state.connects += 1;
        if (state.instance && state.instance !== message.instance) {
          marker(`the gateway restarted (instance ${message.instance}); resuming`);
        }
        state.instance = message.instance;
        // A token scoped to some topics: the gateway narrows wider filters to its scope.
        state.scope = message.scope ? ` · within ${message.scope.join(", ")}` : "";
        setStatus(state.paused ? "paused" : "live",
                  (state.paused ? "paused" : "live") + state.scope);
        break;
      case "event":
        receive(message.event);
        break;
      case "gap":
        state.gaps += 1;
        marker(`gap: the gateway no longer holds the events after ${message.since}; ` +
               `${message.replayed} buffered events follow, earlier ones may be missing`);
        break;
      case "dropped":
        state.dropped += message.count;
        marker(`${message.count} events dropped: this page did not keep up ` +
               `(${message.total} in all)`);
        break;
      case "error":
        setStatus("error", message.message);
        break;
    }
  }

  function receive(event) {
    // The cursor to resume after: the log offset (the same on every gateway), else the id.
    state.lastId = String(event.firehoseseq ?? event.id);
    sessionStorage.setItem(LAST_ID, state.lastId);
    if (state.kept.has(event.id)) return;          // already shown (a redelivery)
    state.kept.set(event.id, event);
    if (state.kept.size > MAX_KEPT) state.kept.delete(state.kept.keys().next().value);
    state.received += 1;
    let entry = state.types.get(event.type);
    if (!entry) state.types.set(event.type, entry = {count: 0, times: []});
    entry.count += 1;
    entry.times.push(performance.now());
    if (state.paused) {
      state.pending.push(event);
      totals();
    } else {
      render(event);
    }
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function render(event) {
    const row = document.createElement("tr");
    row.className = "event";
    row.dataset.id = event.id;
    row.dataset.type = event.type;
    row.dataset.topic = event.firehosetopic || "";
    const time = event.time || "";
    cell(row, time.slice(11, 23)).title = time;   // HH:MM:SS.mmm; the full time on hover
    cell(row, event.priority || "", `p-${event.priority}`);
    cell(row, event.type).title = event.type;
    cell(row, event.source);
    cell(row, event.firehosetopic || "", "topic").title = event.firehosetopic || "";
    row.addEventListener("click", () => select(row, event.id));
    show(row);
  }

  function marker(text) {
    const row = document.createElement("tr");
    row.className = "marker";
    const td = cell(row, text);
    td.colSpan = 5;
    show(row);
  }

  // Rows go into the table once per animation frame, newest first: at hundreds of events a
  // second, one insertion (and one layout) per frame instead of one per event keeps the page
  // responsive and the socket's messages flowing.
  let batch = [];
  let frame = 0;

  function show(row) {
    batch.push(row);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) fragment.append(batch[i]);
    batch = [];
    rows.prepend(fragment);
    while (rows.rows.length > MAX_ROWS) rows.deleteRow(-1);
    totals();
  }

  function clearRows() {
    batch = [];
    rows.replaceChildren();
  }

  function select(row, id) {
    for (const selected of rows.querySelectorAll("tr.selected")) selected.classList.remove("selected");
    row.classList.add("selected");
    const event = state.kept.get(id);
    $("detail").textContent = event ? JSON.stringify(event, null, 2) : "(no longer kept)";
  }

  function totals() {
    const parts = [`${state.received} events`];
    if (state.pending.length) parts.push(`${state.pending.length} waiting`);
    if (state.dropped) parts.push(`${state.dropped} dropped`);
    if (state.gaps) parts.push(`${state.gaps} gap${state.gaps === 1 ? "" : "s"}`);
    $("totals").textContent = parts.join(" · ");
  }

  function refreshTypes() {
    const now = performance.now();
    const body = $("type-rows");
    const sorted = [...state.types.entries()].sort((a, b) => b[1].count - a[1].count);
    body.replaceChildren();
    for (const [type, entry] of sorted) {
      while (entry.times.length && now - entry.times[0] > RATE_WINDOW_MS) entry.times.shift();
      const row = body.insertRow();
      row.dataset.type = type;
      cell(row, type);
      cell(row, String(entry.count), "num count");
      cell(row, (entry.times.length / (RATE_WINDOW_MS / 1000)).toFixed(1), "num rate");
    }
  }

  // MQTT filter rules, as the gateway applies them: '+' one level, '#' the rest.
  function matches(filter, topic) {
    const want = filter.split("/");
    const have = topic.split("/");
    for (let i = 0; i < want.length; i++) {
      if (want[i] === "#") return true;
      if (i >= have.length || (want[i] !== "+" && want[i] !== have[i])) return false;
    }
    return want.length === have.length;
  }

  function wanted(event) {
    return !state.filters.length ||
      state.filters.some((filter) => matches(filter, event.firehosetopic || ""));
  }

  function togglePause() {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) {
      const waiting = state.pending;
      state.pending = [];
      for (const event of waiting) render(event);
    }
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      setStatus(state.paused ? "paused" : "live", (state.paused ? "paused" : "live") + state.scope);
    }
    totals();
  }

  $("filter").value = state.filters.join(" ");
  $("filter-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    state.filters = $("filter").value.split(/[\s,]+/).filter(Boolean);
    const url = new URL(location.href);
    url.searchParams.delete("topic");
    url.searchParams.delete("filter");
    for (const filter of state.filters) url.searchParams.append("filter", filter);
    history.replaceState(null, "", url);
    clearRows();
    state.pending = state.pending.filter(wanted);
    for (const event of state.kept.values()) {
      if (wanted(event) && !state.pending.includes(event)) render(event);
    }
    reconnect();
  });
  $("pause").addEventListener("click", togglePause);
  $("clear").addEventListener("click", () => {
    clearRows();
    state.types.clear();
    state.received = 0;
    state.pending = [];
    refreshTypes();
    totals();
  });
  setInterval(refreshTypes, 500);
  connect();
})();
