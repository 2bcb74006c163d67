// The demo page: the bridge's own JSON API from the same origin (the session cookie
// is sent by the browser), Socket.IO and EventSource for a creator's live events.
// Text goes in with textContent only: nothing from Patreon is ever parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_FEED_ITEMS = 50;

function show(id, visible = true) {
  $(id).hidden = !visible;
}

function fail(message) {
  $("error").textContent = message;
  show("error");
}

async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" }, ...options });
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  return { status: resp.status, body };
}

function money(cents) {
  return typeof cents === "number" ? `$${(cents / 100).toFixed(2)}` : "";
}

function day(iso) {
  return iso ? String(iso).slice(0, 10) : "";
}

function indexIncluded(doc) {
  const byKey = new Map();
  for (const item of doc.included || []) byKey.set(`${item.type}:${item.id}`, item);
  return (type, id) => byKey.get(`${type}:${id}`);
}

function linked(resource, name) {
  const rel = (resource.relationships || {})[name];
  return rel ? rel.data : null;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function renderUser(doc) {
  const user = doc.data;
  const attrs = user.attributes || {};
  const find = indexIncluded(doc);
  $("user-name").textContent = attrs.full_name || "(no name)";
  $("user-id").textContent = user.id;
  $("user-email").textContent = attrs.email ? `Email: ${attrs.email}` : "";
  const body = $("memberships").tBodies[0];
  body.replaceChildren();
  for (const ref of linked(user, "memberships") || []) {
    const member = find("member", ref.id);
    if (!member) continue;
    const m = member.attributes || {};
    const campaignRef = linked(member, "campaign");
    const campaign = campaignRef && find("campaign", campaignRef.id);
    const tiers = (linked(member, "currently_entitled_tiers") || [])
      .map((t) => find("tier", t.id))
      .filter(Boolean)
      .map((t) => `${t.attributes.title} (${money(t.attributes.amount_cents)})`);
    const row = document.createElement("tr");
    cell(row, campaign ? campaign.attributes.creation_name || campaign.id : "");
    cell(row, m.patron_status || "none");
    cell(row, tiers.join(", ") || "none");
    cell(row, money(m.currently_entitled_amount_cents));
    cell(row, day(m.pledge_relationship_start));
    body.appendChild(row);
  }
  show("memberships", body.rows.length > 0);
  show("no-memberships", body.rows.length === 0);
  show("me");
  return linked(user, "campaign");
}

async function renderCampaign() {
  const { status, body } = await api("/api/patreon/campaigns");
  if (status !== 200 || !body.data || body.data.length === 0) return false;
  const campaign = body.data[0];
  const c = campaign.attributes || {};
  const find = indexIncluded(body);
  $("campaign-name").textContent = c.creation_name || campaign.id;
  $("campaign-facts").textContent = `Campaign ${campaign.id} · ${c.patron_count ?? 0} patrons`;
  const tiers = $("tiers");
  tiers.replaceChildren();
  for (const ref of linked(campaign, "tiers") || []) {
    const tier = find("tier", ref.id);
    if (!tier) continue;
    const li = document.createElement("li");
    li.textContent = `${tier.attributes.title}: ${money(tier.attributes.amount_cents)}`;
    tiers.appendChild(li);
  }
  show("creator");
  return true;
}

function describe(event) {
  const resource = event.data || {};
  const a = resource.attributes || {};
  const who = a.full_name ? ` (${a.full_name})` : "";
  const status = a.patron_status ? ` ${a.patron_status}` : "";
  const amount = typeof a.currently_entitled_amount_cents === "number" ? ` ${money(a.currently_entitled_amount_cents)}` : "";
  const time = new Date().toLocaleTimeString();
  return `#${event.id} ${event.type} ${resource.type || ""} ${resource.id || ""}${who}${status}${amount} · ${time}`;
}

function addEvent(listId, event) {
  const list = $(listId);
  const li = document.createElement("li");
  li.textContent = describe(event);
  li.dataset.eventId = event.id;
  li.dataset.type = event.type;
  list.prepend(li);
  while (list.children.length > MAX_FEED_ITEMS) list.lastChild.remove();
}

function setStatus(id, text, state) {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${state || ""}`;
}

// The live program holds the live connections. Reached on web's own port, this page has
// no nginx in front: live is on its own port (LIVE_PORT). Otherwise a proxy serves the
// page, and deploy/nginx.conf routes live's paths on this same origin.
function liveUrl() {
  const { protocol, hostname, port, origin } = window.location;
  const { livePort, webPort } = document.documentElement.dataset;
  if (port !== webPort) return origin;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return `${protocol}//${host}:${livePort}`;
}

function liveSocketIo(url) {
  if (typeof io !== "function") {
    setStatus("sio-status", "no client", "down");
    return;
  }
  let lastId = null;
  // auth as a function: a reconnect resumes after the last event heard, without a gap.
  // WebSocket after a first long-poll; the session cookie goes along (same site).
  const socket = io(url, {
    withCredentials: true,
    auth: (cb) => cb(lastId === null ? {} : { since: lastId }),
  });
  socket.on("connect", () => setStatus("sio-status", "live", "live"));
  socket.on("disconnect", () => setStatus("sio-status", "reconnecting", "down"));
  socket.on("connect_error", (err) => setStatus("sio-status", `refused: ${err.message}`, "down"));
  socket.on("patreon:webhook", (event) => {
    lastId = event.id;
    addEvent("sio-events", event);
  });
}

function liveEventSource(url) {
  const source = new EventSource(`${url}/api/patreon/events`, { withCredentials: true });
  source.onopen = () => setStatus("sse-status", "live", "live");
  source.onerror = () =>
    setStatus("sse-status", source.readyState === EventSource.CLOSED ? "closed" : "reconnecting", "down");
  // EventSource resumes with Last-Event-ID on its own after a dropped stream.
  source.addEventListener("patreon:webhook", (message) => addEvent("sse-events", JSON.parse(message.data)));
}

async function main() {
  const status = await api("/api/patreon/status");
  if (status.status === 200 && status.body.status) {
    const mode = status.body.status.mode;
    $("mode").textContent = `${mode} mode`;
    if (mode === "sandbox") for (const el of document.querySelectorAll(".sandbox-only")) el.hidden = false;
  }

  const user = await api("/api/patreon/user");
  if (user.status === 401) {
    show("login");
    return;
  }
  if (user.status !== 200) {
    fail(`Could not read the user: ${user.status} ${user.body ? user.body.code : ""}`);
    show("login");
    return;
  }
  const ownCampaign = renderUser(user.body);
  $("logout").addEventListener("click", async () => {
    await api("/api/patreon/auth/logout", { method: "POST" });
    window.location.reload();
  });
  if (ownCampaign && (await renderCampaign())) {
    const url = liveUrl();
    liveSocketIo(url);
    liveEventSource(url);
  } else {
    show("not-creator");
  }
}

main().catch((err) => fail(`The demo page failed: ${err}`));
