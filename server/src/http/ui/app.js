// The cellplacer console: reads the public API with the user's bearer token (kept for
// this tab only) and draws the zone's state; refreshes on its own. No framework, no build.
"use strict";

const REFRESH_MS = 5000;
// Items a list shows at a time: a server, a failure or a rack can hold thousands of cells.
const PAGE = 100;
// A cell's latest moves shown.
const MOVES = 20;
let token = sessionStorage.getItem("cellplacer-token");
let role = null;

const $ = (id) => document.getElementById(id);
const text = (id, value) => { $(id).textContent = value; };
const fmt = (n) => Number(n).toLocaleString("en-US");
// Outages per year, to three significant digits.
const rate = (x) => x === 0 ? "0" : (x < 0.001 ? x.toExponential(2) : x.toPrecision(3));

async function api(method, path, body) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => null);
  if (r.status === 401) {
    showLogin(token ? "the service does not know this token" : "");
    throw new Error("unauthorized");
  }
  if (!r.ok) {
    const message = data && data.error ? data.error.code + ": " + data.error.message : "HTTP " + r.status;
    throw new Error(message);
  }
  return data;
}

function showLogin(error) {
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  text("login-error", error || "");
}

function bar(label, value, max, cls) {
  const row = document.createElement("div");
  row.className = "bar " + (cls || "");
  const name = document.createElement("span");
  name.className = "bar-label";
  name.textContent = label;
  const track = document.createElement("span");
  track.className = "bar-track";
  const fill = document.createElement("span");
  fill.className = "bar-fill";
  fill.style.width = max > 0 ? (100 * value / max).toFixed(1) + "%" : "0";
  track.appendChild(fill);
  const count = document.createElement("span");
  count.className = "bar-value";
  count.textContent = fmt(value);
  row.append(name, track, count);
  return row;
}

// A definition list of [term, value] rows; each value's dd carries data-field=term.
function definitions(rows) {
  const dl = document.createElement("dl");
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    if (v instanceof Node) dd.appendChild(v); else dd.textContent = v;
    dd.dataset.field = k;
    dl.append(dt, dd);
  }
  return dl;
}

function cellButton(id, attr) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = id;
  b.dataset[attr] = id;
  b.addEventListener("click", () => showCell(id));
  return b;
}

function elementButton(id, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label ? id + " (" + label + ")" : id;
  b.dataset.element = id;
  b.addEventListener("click", () => showElement(id));
  return b;
}

// `total` cells as buttons, a page at a time behind a "more" button: `first` now, then
// on each click the page `next()` gives (or resolves to).
function pagedCells(container, total, first, next, attr) {
  let shown = 0;
  const more = document.createElement("button");
  more.type = "button";
  more.className = "more";
  const add = (page) => {
    for (const id of page) container.insertBefore(cellButton(id, attr), more);
    shown += page.length;
    more.hidden = shown >= total;
    more.textContent = "more (" + fmt(total - shown) + " left)";
  };
  more.addEventListener("click", async () => add(await next()));
  container.appendChild(more);
  add(first);
}

// The cells `ids`, held whole, shown a page at a time.
function cellsInPages(container, ids, attr) {
  let shown = PAGE;
  const next = () => ids.slice(shown, shown += PAGE);
  pagedCells(container, ids.length, ids.slice(0, PAGE), next, attr);
}

// A "what if it fails" button (admin) for `element` and where its answer goes.
function whatIfButton(element, buttonId, answerId, rack) {
  const button = document.createElement("button");
  button.type = "button";
  button.id = buttonId;
  button.className = "admin-only";
  button.textContent = "what if it fails";
  const answer = document.createElement("div");
  answer.id = answerId;
  button.addEventListener("click", () => whatIfFails(element, answer, rack));
  return [button, answer];
}

function drawFleet(f) {
  text("fleet-cells", fmt(f.cells));
  text("fleet-out", fmt(f.cells_out));
  text("fleet-unsafe", fmt(f.cells_unsafe));
  text("fleet-down", fmt(f.servers_down));
  text("fleet-draining", fmt(f.servers_draining));
  const load = f.node_capacity > 0 ? (100 * f.nodes_placed / f.node_capacity).toFixed(1) + "%" : "–";
  text("fleet-load", load + " / " + (100 * f.utilisation_max).toFixed(1) + "%");
  text("fleet-version", "v" + f.inventory_version);
  const risk = $("risk");
  risk.replaceChildren();
  const max = Math.max(0, ...f.risk.map((b) => b.cells));
  for (const b of f.risk) {
    const label = b.below === null ? "above " + f.risk[f.risk.length - 2].below : "≤ " + b.below;
    risk.appendChild(bar(label, b.cells, max));
  }
}

function drawAutopilot(a) {
  const state = a.settings.enabled ? (a.acting ? "on, acting" : "on, another replica acts") : "off";
  text("autopilot-state", state + " · " + fmt(a.in_flight) + " moves in flight · rate " + a.settings.rate + "/s · grace " + a.settings.grace_s + " s");
  const queue = $("autopilot-queue");
  queue.replaceChildren();
  const entries = Object.entries(a.queue);
  const max = Math.max(0, ...entries.map(([, n]) => n));
  for (const [reason, n] of entries) queue.appendChild(bar(reason, n, max));
  $("autopilot-on").disabled = a.settings.enabled;
  $("autopilot-off").disabled = !a.settings.enabled;
}

function drawPlans(list) {
  const rows = $("plan-rows");
  rows.replaceChildren();
  for (const p of list.plans) {
    const tr = document.createElement("tr");
    const done = p.progress.committed + p.progress.replanned + p.progress.skipped;
    const progress = document.createElement("td");
    progress.appendChild(bar(done + " / " + p.progress.steps, done, p.progress.steps));
    const actions = document.createElement("td");
    actions.className = "admin-only";
    for (const action of ["pause", "resume", "cancel"]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = action;
      b.dataset.plan = p.plan_id;
      b.dataset.action = action;
      b.addEventListener("click", () => act("POST", "/v1/plans/" + encodeURIComponent(p.plan_id) + "/" + action));
      actions.appendChild(b);
    }
    const id = document.createElement("td");
    id.textContent = p.plan_id;
    const state = document.createElement("td");
    state.textContent = p.state;
    tr.append(id, state, progress, actions);
    rows.appendChild(tr);
  }
}

function drawElements(list) {
  const rows = $("element-rows");
  rows.replaceChildren();
  for (const e of list.elements) {
    const tr = document.createElement("tr");
    const id = document.createElement("td");
    id.appendChild(elementButton(e.element));
    tr.appendChild(id);
    for (const v of [e.kind, e.state, e.since, e.reason || ""]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    rows.appendChild(tr);
  }
}

// A rack's colour: white (nothing) to red (the map's most), by the chosen measure.
function measureOf(rack, measure) {
  if (measure === "load") return rack.capacity > 0 ? rack.nodes / rack.capacity : (rack.nodes > 0 ? 1 : 0);
  if (measure.startsWith("blast_")) {
    const b = blastByRack.get(rack.rack);
    return b ? b[measure.slice("blast_".length)] : 0;
  }
  return rack[measure];
}

// Every element's blast radius (`GET /v1/blast`), by rack: fetched only while a blast
// measure is chosen (it judges the cells that are not known safe).
let blastByRack = new Map();

async function loadBlast() {
  const b = await api("GET", "/v1/blast");
  blastByRack = new Map(b.racks.map((r) => [r.rack, r]));
}

function isBlastMeasure() {
  return $("measure").value.startsWith("blast_");
}

function drawMap(map) {
  const measure = $("measure").value;
  // Load is a share of capacity: full is full. The counts are against the map's most.
  const most = Math.max(0, ...map.racks.map((r) => measureOf(r, measure)));
  const max = measure === "load" ? 1 : Math.max(1e-9, most);
  text("map-legend", measure === "load" ? "white: empty, red: full" : "white: 0, red: " + fmt(most));
  const root = $("map");
  root.replaceChildren();
  const group = (key, parent, cls, title) => {
    let node = parent.querySelector(":scope > [data-key='" + CSS.escape(key) + "']");
    if (!node) {
      node = document.createElement("div");
      node.className = cls;
      node.dataset.key = key;
      if (title) {
        const h = document.createElement(cls === "dc" ? "h4" : "h5");
        h.textContent = title;
        node.appendChild(h);
      }
      parent.appendChild(node);
    }
    return node;
  };
  for (const r of map.racks) {
    const dc = group(r.datacenter, root, "dc", r.datacenter);
    const room = group(r.room, dc, "room", r.room);
    const row = group(r.row, room, "row", null);
    const tile = document.createElement("button");
    tile.type = "button";
    tile.className = "rack";
    tile.dataset.rack = r.rack;
    tile.dataset.failed = r.failed;
    tile.dataset.unsafe = r.cells_unsafe;
    tile.dataset.out = r.cells_out;
    if (measure.startsWith("blast_")) tile.dataset.blast = measureOf(r, measure);
    const share = measureOf(r, measure) / max;
    tile.style.background = share > 0 ? "rgba(200, 40, 30, " + (0.15 + 0.85 * share).toFixed(3) + ")" : "#fff";
    tile.title = r.rack + ": " + r.nodes + " / " + r.capacity + " nodes, " + r.failed + " failed, "
      + r.draining + " draining, " + r.cells_unsafe + " unsafe cells, " + r.cells_out + " out";
    tile.addEventListener("click", () => showRack(r.rack));
    row.appendChild(tile);
  }
  if (selectedRack) {
    const tile = root.querySelector("[data-rack='" + CSS.escape(selectedRack) + "']");
    if (tile) tile.classList.add("selected");
  }
  if (whatIfRack) {
    const tile = root.querySelector("[data-rack='" + CSS.escape(whatIfRack) + "']");
    if (tile) tile.classList.add("whatif");
  }
  for (const rack of hitRacks) {
    const tile = root.querySelector("[data-rack='" + CSS.escape(rack) + "']");
    if (tile) tile.classList.add("hit");
  }
  for (const [kind, racks] of Object.entries(cellRacks)) {
    for (const rack of racks) {
      const tile = root.querySelector("[data-rack='" + CSS.escape(rack) + "']");
      if (tile) tile.classList.add("cell-" + kind);
    }
  }
}

let whatIfRack = null;

// What the element's failure would do to the cells, by the what-if API: nothing
// committed. Its out cells are listed a page at a time.
async function whatIfFails(element, view, rack) {
  view.textContent = "asking…";
  try {
    const w = await api("POST", "/v1/whatif", { change: { fail: [element] } });
    if (rack) {
      whatIfRack = rack;
      if (lastMap) drawMap(lastMap);
    }
    const s = w.after.scenario;
    view.replaceChildren();
    const p = document.createElement("p");
    p.className = "whatif-summary";
    if (rack) p.id = "whatif-summary";
    p.dataset.out = s.out;
    p.dataset.degraded = s.degraded;
    p.textContent = "If " + element + " fails: " + fmt(s.out) + " cells out, " + fmt(s.degraded)
      + " degraded (a what-if: nothing is committed).";
    const cells = document.createElement("div");
    cells.className = "cells";
    view.append(p, cells);
    cellsInPages(cells, s.out_cells, "outCell");
  } catch (e) {
    view.textContent = e.message;
  }
}

let selectedRack = null;
let lastMap = null;

async function showRack(id) {
  selectedRack = id;
  if (lastMap) drawMap(lastMap);
  const view = $("rack-view");
  try {
    const rack = await api("GET", "/v1/racks/" + encodeURIComponent(id));
    view.replaceChildren();
    const h = document.createElement("h3");
    h.textContent = "Rack " + rack.rack.rack + " (" + rack.rack.datacenter + " / " + rack.rack.room + " / " + rack.rack.row
      + "), as of " + new Date().toLocaleTimeString() + ": click its tile again for now";
    const [whatIf, answer] = whatIfButton(rack.rack.rack, "whatif-rack", "whatif-view", rack.rack.rack);
    const asElement = elementButton(rack.rack.rack);
    asElement.textContent = "the rack as an element";
    asElement.id = "rack-element";
    // What it hangs on: each one's failure, in the element view.
    const devices = document.createElement("p");
    devices.className = "elements rack-elements";
    devices.append("network: ");
    for (const e of rack.network) devices.appendChild(elementButton(e.id, e.kind));
    devices.append(" power: ");
    for (const e of rack.power) devices.appendChild(elementButton(e.id, e.kind));
    const table = document.createElement("table");
    table.innerHTML = "<thead><tr><th>server</th><th>status</th><th>load</th><th>cells</th></tr></thead>";
    const body = document.createElement("tbody");
    for (const s of rack.servers) {
      const tr = document.createElement("tr");
      tr.dataset.server = s.server_id;
      const name = document.createElement("td");
      const link = document.createElement("button");
      link.type = "button";
      link.textContent = s.server_id;
      link.className = "server";
      link.addEventListener("click", () => showServerCells(s, tr));
      name.appendChild(link);
      const status = document.createElement("td");
      status.textContent = s.status;
      const load = document.createElement("td");
      load.textContent = s.load + " / " + s.capacity;
      const cells = document.createElement("td");
      cells.textContent = s.cells.length;
      tr.append(name, status, load, cells);
      body.appendChild(tr);
    }
    table.appendChild(body);
    view.append(h, devices, asElement, whatIf, answer, table);
  } catch (e) {
    view.textContent = e.message;
  }
}

function showServerCells(server, row) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("server-cells")) next.remove();
  const tr = document.createElement("tr");
  tr.className = "server-cells";
  const td = document.createElement("td");
  td.colSpan = 4;
  if (server.cells.length === 0) td.textContent = "no cell";
  else cellsInPages(td, server.cells, "cell");
  tr.appendChild(td);
  row.after(tr);
}

async function showCell(id) {
  $("cell-id").value = id;
  const view = $("cell-view");
  try {
    const [c, why, history] = await Promise.all([
      api("GET", "/v1/cells/" + encodeURIComponent(id)),
      api("GET", "/v1/cells/" + encodeURIComponent(id) + "/explanation"),
      api("GET", "/v1/cells/" + encodeURIComponent(id) + "/moves?limit=" + MOVES),
    ]);
    const x = why.explanation;
    view.replaceChildren(definitions([
      ["cell", c.cell_id],
      ["risk", rate(c.risk) + " outages/year"],
      ["single-failure safe", c.single_failure_safe ? "yes" : "no"],
      ["down", c.down ? "yes" : "no"],
      ["nodes", c.nodes.join(", ")],
      ["clients", c.clients.join(", ")],
    ]));
    view.append(explanationOf(x), movesOf(history.moves));
    await markCellOnMap(c);
  } catch (e) {
    view.textContent = e.message;
  }
}

// A cell's latest moves, newest first.
function movesOf(moves) {
  const table = document.createElement("table");
  table.id = "cell-moves";
  table.innerHTML = "<thead><tr><th>move</th><th>out → into</th><th>status</th><th>risk before → after</th><th>updated</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const m of moves) {
    const tr = document.createElement("tr");
    tr.dataset.move = m.n;
    tr.dataset.status = m.status;
    for (const v of ["#" + m.n, m.out + " → " + m.into, m.status, rate(m.risk_before) + " → " + rate(m.risk_after), m.updated_at]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  if (moves.length === 0) body.innerHTML = "<tr><td colspan='5'>no move yet</td></tr>";
  table.appendChild(body);
  const box = document.createElement("div");
  const h = document.createElement("h3");
  h.textContent = "Its moves (latest " + MOVES + ", newest first)";
  box.append(h, table);
  return box;
}

// Why a cell sits where it does: its risk now by part, the elements that break it alone,
// its heaviest scenarios and how its nodes spread over the failure domains.
function explanationOf(x) {
  const box = document.createElement("div");
  box.className = "explanation";
  const h = document.createElement("h3");
  h.textContent = "Why it sits where it does (on the zone as it is now)";
  const breaking = document.createElement("span");
  breaking.className = "elements";
  for (const e of x.breaking) breaking.appendChild(elementButton(e.id, e.kind));
  if (x.breaking.length === 0) breaking.textContent = x.down ? "out with nothing more failed" : "none: single-failure safe";
  const dl = definitions([
    ["risk now", rate(x.risk) + " outages/year (single elements " + rate(x.single_risk) + ", pairs " + rate(x.pair_risk) + ")"],
    ["breaking elements", breaking],
  ]);
  dl.dataset.risk = x.risk;
  dl.id = "cell-explanation";
  const scenarios = document.createElement("table");
  scenarios.innerHTML = "<thead><tr><th>heaviest scenarios that put it out</th><th>outages/year</th></tr></thead>";
  const sbody = document.createElement("tbody");
  for (const s of x.top_scenarios) {
    const tr = document.createElement("tr");
    const which = document.createElement("td");
    which.className = "elements";
    for (const e of s.elements) which.appendChild(elementButton(e.id, e.kind));
    const w = document.createElement("td");
    w.textContent = rate(s.weight);
    tr.append(which, w);
    sbody.appendChild(tr);
  }
  if (x.top_scenarios.length === 0) sbody.innerHTML = "<tr><td colspan='2'>none</td></tr>";
  scenarios.appendChild(sbody);
  // One row per level: "dc3 ×5, dc2 ×2", largest first (as the API orders them).
  const domains = document.createElement("table");
  domains.innerHTML = "<thead><tr><th>failure domain</th><th>the cell's nodes in each</th></tr></thead>";
  const dbody = document.createElement("tbody");
  const levels = new Map();
  for (const d of x.domains) {
    if (!levels.has(d.level)) levels.set(d.level, []);
    levels.get(d.level).push(d.label + " ×" + d.nodes);
  }
  for (const [level, entries] of levels) {
    const tr = document.createElement("tr");
    tr.dataset.level = level;
    const name = document.createElement("td");
    name.textContent = level;
    const list = document.createElement("td");
    list.textContent = entries.join(", ");
    tr.append(name, list);
    dbody.appendChild(tr);
  }
  domains.appendChild(dbody);
  box.append(h, dl, scenarios, domains);
  return box;
}

// The racks holding nodes of the cells the shown element's failure would put out.
let hitRacks = [];

// An element and what its failure would do now (`GET /v1/elements/{id}`, read); the
// racks of the cells it would put out are hatched on the map; "what if it fails" asks
// the what-if API (admin).
async function showElement(id) {
  $("element-id").value = id;
  const view = $("element-view");
  view.textContent = "judging every cell…";
  try {
    const e = await api("GET", "/v1/elements/" + encodeURIComponent(id) + "?limit=" + PAGE);
    const r = e.reported;
    const summary = definitions([
      ["element", r.element],
      ["kind", r.kind === e.label ? r.kind : r.kind + " (" + e.label + ")"],
      ["state", r.state + " since " + r.since + (r.reason ? ": " + r.reason : "")],
      ["afr", e.afr + " per year, " + e.repair_hours + " h to repair"],
      ["blast radius", "cells out if it fails: " + fmt(e.blast_radius) + (e.out_already > 0 ? " (" + fmt(e.out_already) + " out already)" : "")],
      ["degraded", "cells that lose a node and keep a quorum: " + fmt(e.degraded)],
      ["servers down", fmt(e.servers_down)],
      ["racks hit", "holding nodes of the cells it would put out (hatched on the map): " + fmt(e.racks.length)],
    ]);
    summary.id = "element-summary";
    summary.dataset.element = r.element;
    summary.dataset.blast = e.blast_radius;
    summary.dataset.degraded = e.degraded;
    const [whatIf, answer] = whatIfButton(r.element, "whatif-element", "element-whatif", null);
    const cells = document.createElement("div");
    cells.className = "cells";
    cells.id = "element-cells";
    let cursor = e.next_cursor;
    const next = async () => {
      const page = await api("GET", "/v1/elements/" + encodeURIComponent(id) + "?limit=" + PAGE + "&cursor=" + cursor);
      cursor = page.next_cursor;
      return page.out_cells;
    };
    pagedCells(cells, e.blast_radius, e.out_cells, next, "elementCell");
    const h = document.createElement("h3");
    h.textContent = "Cells its failure would put out";
    view.replaceChildren(summary, whatIf, answer, h, cells);
    hitRacks = e.racks.map((x) => x.rack);
    if (lastMap) drawMap(lastMap);
  } catch (e) {
    view.textContent = e.message;
  }
}

// The racks of the shown cell's nodes and clients, marked on the map.
let cellRacks = { node: [], client: [] };

async function markCellOnMap(c) {
  const rackOf = async (server) => (await api("GET", "/v1/servers/" + encodeURIComponent(server))).rack;
  cellRacks = {
    node: await Promise.all(c.nodes.map(rackOf)),
    client: await Promise.all(c.clients.map(rackOf)),
  };
  if (lastMap) drawMap(lastMap);
}

async function act(method, path, body) {
  try {
    await api(method, path, body);
  } catch (e) {
    alert(e.message);
  }
  await refresh();
}

async function refresh() {
  try {
    const [fleet, pilot, plans, elements, map] = await Promise.all([
      api("GET", "/v1/fleet"),
      api("GET", "/v1/autopilot"),
      api("GET", "/v1/plans"),
      api("GET", "/v1/elements"),
      api("GET", "/v1/racks"),
      isBlastMeasure() ? loadBlast() : null,
    ]);
    drawFleet(fleet);
    lastMap = map;
    drawMap(map);
    drawAutopilot(pilot);
    drawPlans(plans);
    drawElements(elements);
    text("updated", "updated " + new Date().toLocaleTimeString());
    document.body.dataset.loaded = "true";
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    text("updated", "refresh failed: " + e.message);
  }
}

async function start() {
  let who;
  try {
    who = await api("GET", "/v1/whoami");
  } catch (e) {
    if (e.message !== "unauthorized") showLogin(e.message);
    return;
  }
  role = who.role;
  text("who", who.tokens ? who.name + " (" + role + ")" : "no tokens (" + role + ")");
  // Actions the token's role cannot take are not shown: they would only fail.
  document.body.classList.toggle("admin", role === "admin");
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = !token;
  await refresh();
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("cellplacer-token", token);
  start();
});
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem("cellplacer-token");
  token = null;
  showLogin();
});
$("cell-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  showCell($("cell-id").value.trim());
});
$("element-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  showElement($("element-id").value.trim());
});
$("measure").addEventListener("change", async () => {
  if (isBlastMeasure()) {
    text("map-legend", "judging blast radii…");
    try {
      await loadBlast();
    } catch (e) {
      text("map-legend", e.message);
      return;
    }
  }
  if (lastMap) drawMap(lastMap);
});
$("autopilot-on").addEventListener("click", () => act("PUT", "/v1/autopilot", { enabled: true }));
$("autopilot-off").addEventListener("click", () => act("PUT", "/v1/autopilot", { enabled: false }));

start();
setInterval(() => { if (!$("console").hidden) refresh(); }, REFRESH_MS);
