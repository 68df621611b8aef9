// The dashboard: plain JavaScript over the documented JSON endpoints (docs/dashboard.md).
// Every value from the database is put in the page as text (textContent), never as HTML,
// so a workflow's input or name cannot inject markup or script.
"use strict";

const STATUSES = [
  "PENDING", "ENQUEUED", "DELAYED", "SUCCESS", "ERROR", "CANCELLED",
  "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
];
const COLORS = {
  SUCCESS: "#1f9d55", ERROR: "#d64545", PENDING: "#d08a0b", ENQUEUED: "#6b5bd6",
  CANCELLED: "#8a94a6", DELAYED: "#2a9fb0", MAX_RECOVERY_ATTEMPTS_EXCEEDED: "#9b1c1c",
};
const REFRESH_MS = 5000;
const TOKEN_KEY = "dbos-dashboard-token";

const state = { info: null, timer: null, generation: 0, carried: null };

// -- small helpers -------------------------------------------------------------------------

function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pad(n) { return String(n).padStart(2, "0"); }

function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === "") return "";
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(Math.floor(s % 60))}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function num(v) { return v === null || v === undefined ? null : Number(v); }

function badge(status) { return h("span", { class: `badge ${status}`, text: status }); }

function workflowLink(id) {
  return h("a", { href: `#/workflow/${encodeURIComponent(id)}`, class: "mono", text: id });
}

function pretty(text) {
  // Input, Output and Error arrive as JSON text; shown indented, or as they are.
  if (text === null || text === undefined) return h("span", { class: "muted", text: "none" });
  let shown = text;
  try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as stored */ }
  return h("pre", { text: shown });
}

function prettyValue(value) {
  return h("pre", { text: typeof value === "string" ? value : JSON.stringify(value, null, 2) });
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted", text: empty || "None." });
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((t) =>
      h("th", { class: t.endsWith("#") ? "num" : "", text: t.replace(/#$/, "") })))),
    h("tbody", {}, rows));
}

function notice(text, ok) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = ok ? "notice ok" : "notice";
  box.hidden = !text;
}

// -- the token and the API -----------------------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function takeTokenFromUrl() {
  // The command prints the page's URL with #token=...; keep it for this tab, then drop it
  // from the address bar (and so from history and screenshots).
  const match = location.hash.match(/^#token=([A-Za-z0-9_-]+)/);
  if (!match) return false;
  sessionStorage.setItem(TOKEN_KEY, match[1]);
  history.replaceState(null, "", location.pathname + "#/overview");
  return true;
}

async function api(method, path, body) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new Error(`${response.status}: ${data && data.error ? data.error : response.statusText}`);
  }
  return data;
}

function renderMode() {
  const info = state.info;
  const mode = document.getElementById("mode");
  mode.replaceChildren();
  if (!info) return;
  mode.append(info.actions ? "actions on" : "read-only");
  if (info.token_required === "none") return;
  if (token()) {
    mode.append(" · token set ", h("button", {
      type: "button", text: "Forget",
      onclick: () => { sessionStorage.removeItem(TOKEN_KEY); renderMode(); route(); },
    }));
    return;
  }
  // Without the token printed by the command, actions (or, with --require-token, every
  // request) are refused; it can be pasted here.
  const input = h("input", { type: "password", placeholder: "token", "aria-label": "token" });
  const save = h("button", {
    type: "button", text: "Use token",
    onclick: () => { sessionStorage.setItem(TOKEN_KEY, input.value.trim()); renderMode(); route(); },
  });
  mode.append(" · no token ", input, " ", save);
}

// -- routing -------------------------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  return { parts: path.split("/").map(decodeURIComponent), params: new URLSearchParams(query) };
}

function go(page, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) query.set(k, v);
  const text = query.toString();
  location.hash = `#/${page}${text ? "?" + text : ""}`;
}

async function route() {
  clearTimeout(state.timer);
  const generation = ++state.generation;
  const { parts, params } = parseHash();
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.page === page ||
      (page === "workflow" && a.dataset.page === "workflows"));
  }
  const main = document.getElementById("main");
  const pages = { overview, workflows, workflow, queues, schedules };
  const render = pages[page] || overview;
  try {
    const content = await render(params, parts.slice(1), generation);
    if (generation !== state.generation) return;
    main.replaceChildren(...[content].flat());
  } catch (err) {
    if (generation !== state.generation) return;
    main.replaceChildren(h("h1", { text: "Could not load this page" }),
      h("p", { class: "notice", text: err.message }));
  }
}

// -- overview ------------------------------------------------------------------------------

async function overview() {
  const hourAgo = Date.now() - 3600 * 1000;
  const [perMinute, totals] = await Promise.all([
    api("POST", "/workflow-aggregates", {
      group_by: ["status"], bucket_ms: 60000, start_time: new Date(hourAgo).toISOString(),
    }),
    api("POST", "/workflow-aggregates", { group_by: ["status"] }),
  ]);
  const cards = h("div", { class: "cards" }, totals.map((row) =>
    h("a", { class: "card", href: `#/workflows?status=${row.group.status}` },
      h("div", { class: "n", text: row.count.toLocaleString() }),
      h("div", { class: "l" }, badge(row.group.status)))));
  const chart = h("div", { class: "chart", id: "overview-chart" });
  const lastHour = perMinute.reduce((n, r) => n + r.count, 0);
  setTimeout(() => drawPerMinute(chart, perMinute, hourAgo), 0);
  return [
    h("h1", { text: "Overview" }),
    h("h2", { text: "All workflows by status" }), cards,
    h("h2", { text: `Workflows per minute by status, last hour (${lastHour} created)` }), chart,
  ];
}

function minuteAxis(startMs) {
  const first = Math.floor(startMs / 60000) * 60000;
  const xs = [];
  for (let t = first; t <= Date.now(); t += 60000) xs.push(t / 1000);
  return xs;
}

function drawPerMinute(target, rows, startMs) {
  if (!window.uPlot || !target.isConnected) return;
  const xs = minuteAxis(startMs);
  const index = new Map(xs.map((x, i) => [x * 1000, i]));
  const present = STATUSES.filter((s) => rows.some((r) => r.group.status === s));
  const shown = present.length ? present : ["SUCCESS"];
  const series = shown.map(() => xs.map(() => 0));
  for (const row of rows) {
    const i = index.get(row.bucket_start_epoch_ms);
    const k = shown.indexOf(row.group.status);
    if (i !== undefined && k >= 0) series[k][i] = row.count;
  }
  const opts = {
    width: Math.max(400, target.clientWidth - 16), height: 260,
    series: [{}, ...shown.map((s) => ({
      label: s, stroke: COLORS[s], width: 2, fill: COLORS[s] + "22", points: { show: false },
    }))],
    axes: [{}, { label: "per minute", size: 50 }],
    scales: { x: { time: true } },
  };
  new uPlot(opts, [xs, ...series], target);
}

// -- workflows -----------------------------------------------------------------------------

function filterBody(params) {
  const body = { load_input: false, load_output: false };
  const statuses = (params.get("status") || "").split(",").filter(Boolean);
  if (statuses.length) body.status = statuses;
  if (params.get("name")) body.workflow_name = params.get("name");
  if (params.get("queue")) body.queue_name = params.get("queue");
  if (params.get("prefix")) body.workflow_id_prefix = params.get("prefix");
  if (params.get("from")) body.start_time = new Date(params.get("from")).toISOString();
  if (params.get("to")) body.end_time = new Date(params.get("to")).toISOString();
  return body;
}

function durationOf(row) {
  const created = num(row.CreatedAt);
  const done = num(row.CompletedAt);
  if (created === null) return "";
  if (done !== null) return fmtDuration(done - created);
  if (["PENDING", "ENQUEUED", "DELAYED"].includes(row.Status)) {
    return `${fmtDuration(Date.now() - created)} so far`;
  }
  return "";
}

function current(params) {
  return Object.fromEntries(params.entries());
}

async function workflows(params, _, generation) {
  const size = Number(params.get("size") || 50);
  const pageNo = Number(params.get("page") || 0);
  const desc = params.get("sort") !== "asc";
  const body = filterBody(params);
  const countsBody = { ...body, group_by: ["status"] };
  delete countsBody.status;
  delete countsBody.load_input;
  delete countsBody.load_output;
  const [rows, counts] = await Promise.all([
    api("POST", "/workflows", { ...body, limit: size + 1, offset: pageNo * size, sort_desc: desc }),
    api("POST", "/workflow-aggregates", countsBody),
  ]);
  const more = rows.length > size;
  const shown = rows.slice(0, size);
  const selected = new Set((params.get("status") || "").split(",").filter(Boolean));
  const all = counts.reduce((n, r) => n + r.count, 0);

  const field = (label, name, attrs) => h("label", {}, label,
    h("input", { name, value: params.get(name) || "", ...attrs }));
  const statusSelect = h("select", { name: "status", "aria-label": "status" },
    h("option", { value: "", text: "any status" }),
    STATUSES.map((s) => h("option", { value: s, text: s, selected: params.get("status") === s })));
  const refresh = h("input", { type: "checkbox", name: "refresh", checked: params.get("refresh") === "1" });
  const form = h("form", {
    class: "filters panel",
    onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(form);
      go("workflows", {
        status: data.get("status"), name: data.get("name").trim(),
        queue: data.get("queue").trim(), prefix: data.get("prefix").trim(),
        from: data.get("from"), to: data.get("to"), sort: data.get("sort"),
        size: data.get("size"), refresh: data.get("refresh") ? "1" : "",
      });
    },
  },
  h("label", {}, "Status", statusSelect),
  field("Name", "name", { placeholder: "workflow name" }),
  field("Queue", "queue", { placeholder: "queue name" }),
  field("ID prefix", "prefix", { placeholder: "e.g. order-" }),
  field("Created from", "from", { type: "datetime-local", step: 1 }),
  field("Created to", "to", { type: "datetime-local", step: 1 }),
  h("label", {}, "Sort", h("select", { name: "sort" },
    h("option", { value: "desc", text: "newest first", selected: desc }),
    h("option", { value: "asc", text: "oldest first", selected: !desc }))),
  h("label", {}, "Page size", h("select", { name: "size" },
    [25, 50, 100, 200].map((n) => h("option", { value: n, text: n, selected: n === size })))),
  h("label", {}, "Auto-refresh", refresh),
  h("button", { type: "submit", class: "primary", text: "Apply" }),
  h("button", { type: "button", text: "Clear", onclick: () => go("workflows", {}) }));
  refresh.addEventListener("change", () => form.requestSubmit());

  const chips = h("div", { class: "counts", "aria-label": "counts by status" },
    h("a", { href: "#", class: selected.size ? "" : "on",
      onclick: (e) => { e.preventDefault(); go("workflows", { ...current(params), status: "", page: "" }); } },
    "all", h("b", { text: all.toLocaleString() })),
    counts.map((row) => h("a", {
      href: "#", class: selected.has(row.group.status) ? "on" : "",
      "data-status": row.group.status,
      onclick: (e) => {
        e.preventDefault();
        go("workflows", { ...current(params), status: row.group.status, page: "" });
      },
    }, badge(row.group.status), h("b", { text: row.count.toLocaleString() }))));

  const body_rows = shown.map((row) => h("tr", { "data-id": row.WorkflowUUID },
    h("td", {}, badge(row.Status)),
    h("td", { text: row.WorkflowName }),
    h("td", {}, workflowLink(row.WorkflowUUID)),
    h("td", {}, row.QueueName ? h("a", {
      href: `#/workflows?queue=${encodeURIComponent(row.QueueName)}`, text: row.QueueName,
    }) : ""),
    h("td", { text: fmtTime(row.CreatedAt) }),
    h("td", { class: "num", text: durationOf(row) }),
    h("td", { class: "mono", text: row.ExecutorID || "" }),
    h("td", { class: "mono", text: (row.ApplicationVersion || "").slice(0, 16) })));
  const first = pageNo * size;
  const pager = h("div", { class: "pager" },
    h("button", { type: "button", text: "← Newer" + (desc ? "" : " / previous"), disabled: pageNo === 0,
      onclick: () => go("workflows", { ...current(params), page: pageNo - 1 || "" }) }),
    h("span", { class: "muted", text: shown.length ? `rows ${first + 1}–${first + shown.length}` : "no rows" }),
    h("button", { type: "button", text: "Older →" + (desc ? "" : " / next"), disabled: !more,
      onclick: () => go("workflows", { ...current(params), page: pageNo + 1 }) }),
    h("span", { class: "muted", text: `updated ${fmtTime(Date.now())}` }));
  if (params.get("refresh") === "1") {
    state.timer = setTimeout(() => { if (generation === state.generation) route(); }, REFRESH_MS);
  }
  return [
    h("h1", { text: "Workflows" }), form, chips,
    table(["Status", "Name", "ID", "Queue", "Created", "Duration#", "Executor", "App version"],
      body_rows, "No workflow matches these filters."),
    pager,
  ];
}

// -- one workflow --------------------------------------------------------------------------

async function workflow(_, rest) {
  const id = rest.join("/");
  const path = `/workflows/${encodeURIComponent(id)}`;
  const [wf, steps, events, streams, messages, children] = await Promise.all([
    api("GET", path), api("GET", `${path}/steps`), api("GET", `${path}/events`),
    api("GET", `${path}/streams`), api("GET", `${path}/messages`),
    api("POST", "/workflows", {
      parent_workflow_id: id, load_input: false, load_output: false, limit: 200,
    }),
  ]);
  const meta = [
    ["Name", wf.WorkflowName], ["Status", badge(wf.Status)], ["Queue", wf.QueueName],
    ["Created", fmtTime(wf.CreatedAt)], ["Dequeued", fmtTime(wf.DequeuedAt)],
    ["Completed", fmtTime(wf.CompletedAt)], ["Duration", durationOf(wf)],
    ["Executor", wf.ExecutorID], ["App version", wf.ApplicationVersion],
    ["Application", wf.ApplicationName], ["Recovery attempts", wf.RecoveryAttempts],
    ["Parent", wf.ParentWorkflowID ? workflowLink(wf.ParentWorkflowID) : null],
    ["Forked from", wf.ForkedFrom ? workflowLink(wf.ForkedFrom) : null],
    ["Schedule", wf.ScheduleName], ["User", wf.AuthenticatedUser],
    ["Timeout", wf.WorkflowTimeoutMS ? fmtDuration(Number(wf.WorkflowTimeoutMS)) : null],
    ["Deadline", fmtTime(wf.WorkflowDeadlineEpochMS)],
    ["Deduplication ID", wf.DeduplicationID], ["Priority", wf.Priority],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  const details = h("dl", { class: "meta" },
    meta.map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));

  return [
    h("h1", {}, "Workflow ", h("span", { class: "mono", text: id }), " ", badge(wf.Status)),
    actionBar(wf, steps),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, details),
      h("div", {},
        h("h2", { text: "Input" }), pretty(wf.Input),
        wf.Error ? [h("h2", { text: "Error" }), pretty(wf.Error)]
          : [h("h2", { text: "Output" }), pretty(wf.Output)])),
    h("h2", { text: `Steps (${steps.length})` }), gantt(wf, steps),
    h("h2", { text: `Children (${children.length})` }),
    table(["Status", "Name", "ID", "Created", "Duration#"], children.map((c) => h("tr", {},
      h("td", {}, badge(c.Status)), h("td", { text: c.WorkflowName }),
      h("td", {}, workflowLink(c.WorkflowUUID)), h("td", { text: fmtTime(c.CreatedAt) }),
      h("td", { class: "num", text: durationOf(c) })))),
    h("h2", { text: `Events (${events.length})` }),
    table(["Key", "Value"], events.map((e) => h("tr", {},
      h("td", { class: "mono", text: e.key }), h("td", { class: "wrap" }, prettyValue(e.value))))),
    h("h2", { text: `Stream entries (${streams.length})` }),
    table(["Stream", "Offset#", "Step#", "Value"], streams.map((s) => h("tr", {},
      h("td", { class: "mono", text: s.key }), h("td", { class: "num", text: s.offset }),
      h("td", { class: "num", text: s.function_id }),
      h("td", { class: "wrap" }, s.closed
        ? h("span", { class: "muted", text: "(end of stream)" }) : prettyValue(s.value))))),
    h("h2", { text: `Messages (${messages.length})` }),
    table(["Sent", "Topic", "Consumed", "Message"], messages.map((m) => h("tr", {},
      h("td", { text: fmtTime(m.created_at_epoch_ms) }),
      h("td", { class: "mono", text: m.topic === null ? "(no topic)" : m.topic }),
      h("td", { text: m.consumed ? "yes" : "no" }),
      h("td", { class: "wrap" }, prettyValue(m.message))))),
  ];
}

function attemptsOf(step) {
  // Only a step that used up its retries records how many attempts it made.
  const match = step.error_name === "MaxStepRetriesExceededError" &&
    /after (\d+) attempts/.exec(step.error || "");
  return match ? Number(match[1]) - 1 : null;
}

function gantt(wf, steps) {
  if (!steps.length) return h("p", { class: "muted", text: "No step recorded." });
  const starts = steps.map((s) => num(s.started_at_epoch_ms)).filter((v) => v !== null);
  const ends = steps.map((s) => num(s.completed_at_epoch_ms)).filter((v) => v !== null);
  const created = num(wf.CreatedAt);
  const t0 = Math.min(...starts, ...(created !== null ? [created] : []), ...ends);
  const finished = num(wf.CompletedAt);
  const t1 = Math.max(...ends, ...starts, finished !== null ? finished : Date.now());
  const span = Math.max(t1 - t0, 1);
  const pct = (t) => `${((t - t0) / span) * 100}%`;
  const ticks = h("div", { class: "ticks" },
    [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const tick = h("span", { text: `+${fmtDuration(span * f)}` });
      tick.style.left = `${f * 100}%`;
      // The end labels stay inside the track: the first starts at 0, the last ends at 100%.
      if (f === 0) tick.style.transform = "none";
      if (f === 1) tick.style.transform = "translateX(-100%)";
      return tick;
    }));
  const rows = steps.map((s) => {
    const start = num(s.started_at_epoch_ms);
    const end = num(s.completed_at_epoch_ms);
    const kind = s.error ? "error" : s.child_workflow_id ? "child" :
      s.function_name.startsWith("DBOS.") ? "internal" : "";
    const bar = h("div", { class: `bar ${kind}`, title: `${s.function_name}: ${s.error || "ok"}` });
    const from = start !== null ? start : end;
    if (from !== null) {
      bar.style.left = pct(from);
      bar.style.width = `${(Math.max((end !== null ? end : t1) - from, 0) / span) * 100}%`;
    }
    const retries = attemptsOf(s);
    const took = start !== null && end !== null ? fmtDuration(end - start) : "";
    const info = h("div", { class: "info" },
      took, retries !== null ? ` · ${retries} retries` : "",
      s.child_workflow_id ? [" · child ", workflowLink(s.child_workflow_id)] : "",
      s.error ? [" · ", h("span", { class: "err", text: `${s.error_name || "error"}: ${s.error}` })] : "");
    info.title = s.error || "";
    return h("div", { class: "row step", "data-step": s.function_id },
      h("div", { class: "label" }, h("span", { class: "muted", text: `#${s.function_id} ` }),
        h("span", { class: "name", text: s.function_name })),
      h("div", { class: "track" }, bar), info);
  });
  return h("div", { class: "gantt", "aria-label": "step timeline" },
    h("div", { class: "row axis" }, h("div", { text: `start ${fmtTime(t0)}` }), ticks,
      h("div", { text: "duration · retries · error" })),
    rows);
}

function actionBar(wf, steps) {
  const info = state.info;
  if (!info || !info.actions) {
    return h("p", { class: "muted", text: info && info.actions_refused
      ? "Read-only: " + info.actions_refused + "." : "Read-only." });
  }
  const id = wf.WorkflowUUID;
  const base = `/workflows/${encodeURIComponent(id)}`;
  const live = ["PENDING", "ENQUEUED", "DELAYED"].includes(wf.Status);
  const finished = ["SUCCESS", "ERROR"].includes(wf.Status);
  const act = async (title, text, path, body, extra) => {
    if (!(await confirmAction(title, text, extra))) return;
    try {
      const answer = await api("POST", path, body ? body() : undefined);
      if (answer && answer.workflow_id) {
        // The fork's own page, with the notice kept across the navigation.
        state.carried = `Forked as ${answer.workflow_id}`;
        location.hash = `#/workflow/${encodeURIComponent(answer.workflow_id)}`;
      } else {
        notice(`${title}: done`, true);
        route();
      }
    } catch (err) {
      notice(`${title} failed: ${err.message}`);
    }
  };
  const stepSelect = h("select", { id: "fork-step", "aria-label": "first step to run again" },
    h("option", { value: 0, text: "from the start (step 0)" }),
    steps.map((s) => h("option", { value: s.function_id, text: `from step ${s.function_id}: ${s.function_name}` })));
  return h("div", { class: "actions" },
    h("button", { type: "button", class: "danger", text: "Cancel", disabled: !live,
      onclick: () => act("Cancel workflow", `Cancel ${id}? It stops at its next step.`, `${base}/cancel`) }),
    h("button", { type: "button", text: "Resume", disabled: finished,
      onclick: () => act("Resume workflow", `Resume ${id} from its last completed step?`, `${base}/resume`) }),
    h("button", { type: "button", text: "Fork…",
      onclick: () => act("Fork workflow", `Run a copy of ${id}, reusing the steps before the one chosen:`,
        `${base}/fork`, () => ({ start_step: Number(stepSelect.value) }), h("label", {}, stepSelect)) }));
}

function confirmAction(title, text, extra) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-extra").replaceChildren(...(extra ? [extra] : []));
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// -- queues --------------------------------------------------------------------------------

async function queues() {
  const hourAgo = Date.now() - 3600 * 1000;
  const [settings, backlog, perMinute] = await Promise.all([
    api("GET", "/dbos-workflow-queues-metadata"),
    api("POST", "/workflow-aggregates", { group_by: ["queue_name", "status"], queues_only: true }),
    api("POST", "/workflow-aggregates", {
      group_by: ["queue_name"], bucket_ms: 60000, queues_only: true, status: STATUSES,
      start_time: new Date(hourAgo).toISOString(),
    }),
  ]);
  const names = new Set(settings.map((q) => q.name));
  for (const row of [...backlog, ...perMinute]) if (row.group.queue_name) names.add(row.group.queue_name);
  const byName = new Map(settings.map((q) => [q.name, q]));
  const sparks = [];
  const rows = [...names].sort().map((name) => {
    const q = byName.get(name) || {};
    const count = (status) => {
      const row = backlog.find((r) => r.group.queue_name === name && r.group.status === status);
      return row ? row.count : 0;
    };
    const waiting = backlog.filter((r) => r.group.queue_name === name &&
      (r.group.status === "ENQUEUED" || r.group.status === "DELAYED"));
    const oldest = waiting.length ? Math.min(...waiting.map((r) => r.first_created_epoch_ms)) : null;
    const concurrency = [
      q.concurrency !== undefined ? `${q.concurrency} global` : null,
      q.workerConcurrency !== undefined ? `${q.workerConcurrency} per worker` : null,
    ].filter(Boolean).join(", ") || "unlimited";
    const rate = q.rateLimit ? `${q.rateLimit.limit} per ${q.rateLimit.period} s` : "none";
    const spark = h("div", { class: "spark" });
    sparks.push([spark, perMinute.filter((r) => r.group.queue_name === name)]);
    return h("tr", { "data-queue": name },
      h("td", {}, h("a", { href: `#/workflows?queue=${encodeURIComponent(name)}`, text: name })),
      h("td", { class: "num", text: count("ENQUEUED") }),
      h("td", { class: "num", text: count("PENDING") }),
      h("td", { class: "num", text: count("DELAYED") }),
      h("td", { class: "num", text: oldest === null ? "" : fmtDuration(Date.now() - oldest) }),
      h("td", { text: concurrency }), h("td", { text: rate }),
      h("td", { text: q.priorityEnabled ? "yes" : "" }),
      h("td", { text: q.partitionQueue ? "yes" : "" }),
      h("td", {}, spark));
  });
  setTimeout(() => sparks.forEach(([el, data]) => drawSpark(el, data, hourAgo)), 0);
  return [
    h("h1", { text: "Queues" }),
    table(["Queue", "Enqueued#", "Pending#", "Delayed#", "Oldest waiting#", "Concurrency",
      "Rate limit", "Priority", "Partitioned", "Enqueued per minute, last hour"], rows,
    "No queue declared and no queued workflow."),
  ];
}

function drawSpark(target, rows, startMs) {
  if (!window.uPlot || !target.isConnected) return;
  const xs = minuteAxis(startMs);
  const index = new Map(xs.map((x, i) => [x * 1000, i]));
  const ys = xs.map(() => 0);
  for (const row of rows) {
    const i = index.get(row.bucket_start_epoch_ms);
    if (i !== undefined) ys[i] += row.count;
  }
  new uPlot({
    width: 220, height: 46, legend: { show: false }, cursor: { show: false },
    axes: [{ show: false }, { show: false }], scales: { x: { time: true } },
    series: [{}, { stroke: "#2f6fde", fill: "#2f6fde22", width: 1.5, points: { show: false } }],
  }, [xs, ys], target);
}

// -- schedules -----------------------------------------------------------------------------

async function schedules() {
  const found = await api("GET", "/schedules");
  const now = Date.now();
  const rows = found.map((s) => h("tr", { "data-schedule": s.schedule_name },
    h("td", { class: "mono", text: s.schedule_name }),
    h("td", { text: s.workflow_name }),
    h("td", { class: "mono", text: s.schedule + (s.cron_timezone ? ` (${s.cron_timezone})` : "") }),
    h("td", {}, badge(s.paused ? "PAUSED" : "ACTIVE")),
    h("td", { text: s.next_tick_epoch_ms === null ? "" :
      `${fmtTime(s.next_tick_epoch_ms)} (in ${fmtDuration(s.next_tick_epoch_ms - now)})` }),
    h("td", { text: fmtTime(s.last_fired_at_epoch_ms) }),
    h("td", { class: "wrap" }, s.recent_runs.length ? s.recent_runs.map((r) =>
      h("div", {}, badge(r.Status), " ", workflowLink(r.WorkflowUUID))) : h("span", { class: "muted", text: "none" })),
    h("td", { text: s.queue_name || "" })));
  return [
    h("h1", { text: "Schedules" }),
    table(["Name", "Workflow", "Cron", "State", "Next tick", "Last fired", "Last runs", "Queue"],
      rows, "No schedule."),
  ];
}

// -- start ---------------------------------------------------------------------------------

async function start() {
  takeTokenFromUrl();
  try {
    state.info = await api("GET", "/dbos-dashboard-info");
  } catch (err) {
    notice(`Cannot reach the server: ${err.message}`);
  }
  renderMode();
  window.addEventListener("hashchange", () => {
    if (takeTokenFromUrl()) renderMode();
    notice(state.carried || "", true);
    state.carried = null;
    route();
  });
  route();
}

start();
