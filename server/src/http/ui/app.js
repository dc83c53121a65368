// The cellplacer console: reads the public API with the user's bearer token (kept for
// this tab only) and draws the zone's state; refreshes on its own. No framework, no build.
"use strict";

const REFRESH_MS = 5000;
let token = sessionStorage.getItem("cellplacer-token");
let role = null;

const $ = (id) => document.getElementById(id);
const text = (id, value) => { $(id).textContent = value; };
const fmt = (n) => Number(n).toLocaleString("en-US");

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

function drawFleet(f) {
  text("fleet-cells", fmt(f.cells));
  text("fleet-out", fmt(f.cells_out));
  text("fleet-unsafe", fmt(f.cells_unsafe));
  text("fleet-down", fmt(f.servers_down));
  const load = f.node_capacity > 0 ? (100 * f.nodes_placed / f.node_capacity).toFixed(1) + "%" : "–";
  text("fleet-load", load);
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
    for (const v of [e.element, e.kind, e.state, e.since, e.reason || ""]) {
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
  return rack[measure];
}

function drawMap(map) {
  const measure = $("measure").value;
  // Load is a share of capacity: full is full. The counts are against the map's most.
  const max = measure === "load" ? 1 : Math.max(1e-9, ...map.racks.map((r) => measureOf(r, measure)));
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
  for (const [kind, racks] of Object.entries(cellRacks)) {
    for (const rack of racks) {
      const tile = root.querySelector("[data-rack='" + CSS.escape(rack) + "']");
      if (tile) tile.classList.add("cell-" + kind);
    }
  }
}

let whatIfRack = null;

// What the rack's failure would do to the cells, by the what-if API: nothing committed.
async function whatIfFails(rack) {
  const view = $("whatif-view");
  view.textContent = "asking…";
  try {
    const w = await api("POST", "/v1/whatif", { change: { fail: [rack] } });
    whatIfRack = rack;
    if (lastMap) drawMap(lastMap);
    const s = w.after.scenario;
    view.replaceChildren();
    const p = document.createElement("p");
    p.id = "whatif-summary";
    p.dataset.out = s.out;
    p.dataset.degraded = s.degraded;
    p.textContent = "If " + rack + " fails: " + fmt(s.out) + " cells out, " + fmt(s.degraded)
      + " degraded (a what-if: nothing is committed).";
    view.appendChild(p);
    for (const id of s.out_cells) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = id;
      b.dataset.outCell = id;
      b.addEventListener("click", () => { $("cell-id").value = id; showCell(id); });
      view.appendChild(b);
    }
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
    const whatIf = document.createElement("button");
    whatIf.type = "button";
    whatIf.id = "whatif-rack";
    whatIf.className = "admin-only";
    whatIf.textContent = "what if it fails";
    whatIf.addEventListener("click", () => whatIfFails(rack.rack.rack));
    const answer = document.createElement("div");
    answer.id = "whatif-view";
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
    view.append(h, whatIf, answer, table);
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
  for (const id of server.cells) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = id;
    b.dataset.cell = id;
    b.addEventListener("click", () => { $("cell-id").value = id; showCell(id); });
    td.appendChild(b);
  }
  if (server.cells.length === 0) td.textContent = "no cell";
  tr.appendChild(td);
  row.after(tr);
}

async function showCell(id) {
  const view = $("cell-view");
  try {
    const c = await api("GET", "/v1/cells/" + encodeURIComponent(id));
    view.replaceChildren();
    const dl = document.createElement("dl");
    const rows = [
      ["cell", c.cell_id],
      ["risk", c.risk],
      ["single-failure safe", c.single_failure_safe ? "yes" : "no"],
      ["down", c.down ? "yes" : "no"],
      ["nodes", c.nodes.join(", ")],
      ["clients", c.clients.join(", ")],
      ["last move", c.last_move ? c.last_move.out + " → " + c.last_move.into + " (" + c.last_move.status + ")" : "none"],
    ];
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      dd.dataset.field = k;
      dl.append(dt, dd);
    }
    view.appendChild(dl);
    await markCellOnMap(c);
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
$("measure").addEventListener("change", () => { if (lastMap) drawMap(lastMap); });
$("autopilot-on").addEventListener("click", () => act("PUT", "/v1/autopilot", { enabled: true }));
$("autopilot-off").addEventListener("click", () => act("PUT", "/v1/autopilot", { enabled: false }));

start();
setInterval(() => { if (!$("console").hidden) refresh(); }, REFRESH_MS);
