// The web UI: four views drawn from the JSON API (see agentic_orchestration/web/server.py).
// Plain JavaScript, no framework and no build step. Text from runs is always set with
// textContent, never parsed as HTML: a goal or an answer is data, not markup.
"use strict";

const STEP_EVENTS = ["run_started", "step_started", "step_finished", "step_failed",
  "step_skipped", "fallback", "run_finished", "progress", "cancel_requested", "exit"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = (body && body.error) || `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

function badge(status) {
  return el("span", { class: `badge status-${status || "unknown"}` }, status || "unknown");
}

function setBadge(node, status) {
  node.textContent = status || "unknown";
  node.className = `badge status-${status || "unknown"}`;
}

function localTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

function mount(templateId) {
  const view = document.getElementById("view");
  view.replaceChildren(document.getElementById(templateId).content.cloneNode(true));
  return view;
}

// --- home: new run and the runs list ---------------------------------------------------

const PAGE = 50;

async function showHome() {
  mount("tpl-home");
  document.title = "Runs · Agentic Orchestration";
  const form = document.getElementById("run-form");
  const errorBox = document.getElementById("form-error");
  try {
    const config = await api("/api/config");
    const backend = document.getElementById("backend");
    for (const name of config.backends) {
      const option = el("option", { value: name }, name);
      if (name === config.default_backend) option.selected = true;
      backend.append(option);
    }
    const workflow = document.getElementById("workflow");
    for (const wf of config.workflows) {
      workflow.append(el("option", { value: wf.name, title: wf.description || "" }, wf.name));
    }
    if (!config.stats_available) document.getElementById("nav-stats").hidden = true;
  } catch (err) {
    errorBox.textContent = `Cannot load the configuration: ${err.message}`;
    errorBox.hidden = false;
  }
  const formBody = () => ({
    goal: document.getElementById("goal").value,
    workflow: document.getElementById("workflow").value || null,
    backend: document.getElementById("backend").value || null,
  });
  document.getElementById("preview").addEventListener("click", () => previewPlan(formBody(), errorBox));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const body = formBody();
    const button = document.getElementById("start");
    button.disabled = true;
    try {
      const result = await api("/api/runs", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      navigate(`/runs/${encodeURIComponent(result.run.run_id)}`);
    } catch (err) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
      button.disabled = false;
    }
  });
  let offset = 0;
  const search = document.getElementById("search");
  const status = document.getElementById("status-filter");
  const load = async (reset) => {
    if (reset) offset = 0;
    const params = new URLSearchParams({ limit: PAGE, offset });
    if (search.value.trim()) params.set("q", search.value.trim());
    if (status.value) params.set("status", status.value);
    const data = await api(`/api/runs?${params}`);
    renderRuns(data.runs, reset);
    offset += PAGE;
    document.getElementById("more").hidden = offset >= data.total;
    document.getElementById("runs-empty").hidden = !(reset && data.runs.length === 0);
  };
  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => load(true), 250); });
  status.addEventListener("change", () => load(true));
  document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); load(true); });
  document.getElementById("more").addEventListener("click", () => load(false));
  await load(true);
}

// The plan --plan-only makes for the form's goal, workflow and backend; nothing runs.
async function previewPlan(body, errorBox) {
  const box = document.getElementById("plan-preview");
  const list = document.getElementById("plan-steps");
  const note = document.getElementById("plan-preview-note");
  const button = document.getElementById("preview");
  errorBox.hidden = true;
  box.hidden = false;
  delete box.dataset.ready;
  list.replaceChildren();
  note.textContent = "planning...";
  button.disabled = true;
  try {
    const { plan } = await api("/api/plan", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    note.textContent = `${plan.name}: ${(plan.steps || []).length} steps`;
    for (const step of plan.steps || []) {
      const mcps = (step.mcp_providers || []).length ? ` [tools: ${step.mcp_providers.join(", ")}]` : "";
      const after = step.depends_on ? ` (after: ${step.depends_on.join(", ") || "nothing"})` : "";
      list.append(el("li", { dataset: { stepId: step.id, agent: step.agent_provider } },
        el("b", {}, step.id), ` · ${step.agent_provider}${mcps}${after}: `, step.description));
    }
    box.dataset.ready = "ok";
  } catch (err) {
    box.hidden = true;
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function renderRuns(runs, reset) {
  const body = document.querySelector("#runs tbody");
  if (reset) body.replaceChildren();
  for (const run of runs) {
    const link = el("a", { href: `/runs/${encodeURIComponent(run.run_id)}` }, run.goal || "(no goal)");
    body.append(el("tr", { dataset: { runId: run.run_id, status: run.status || "" } },
      el("td", {}, localTime(run.created_at)),
      el("td", { class: "status" }, badge(run.status)),
      el("td", { class: "goal" }, link),
      el("td", {}, run.backend || ""),
      el("td", {}, run.step_count ?? ""),
      el("td", {}, el("code", {}, run.run_id))));
  }
}

// --- one run: live and after ------------------------------------------------------------

let source = null;

function stepRow(stepId, index) {
  const body = document.querySelector("#steps tbody");
  let row = body.querySelector(`tr[data-step-id="${CSS.escape(stepId)}"]`);
  if (!row) {
    row = el("tr", { dataset: { stepId } },
      el("td", { class: "index" }, index ?? ""), el("td", { class: "step" }, stepId),
      el("td", { class: "agent" }), el("td", { class: "status" }, badge("pending")),
      el("td", { class: "time" }));
    body.append(row);
  }
  return row;
}

function setStep(stepId, { index, agent, status, time }) {
  const row = stepRow(stepId, index);
  if (index !== undefined) row.querySelector(".index").textContent = index;
  if (agent) row.querySelector(".agent").textContent = agent;
  if (status) { row.dataset.status = status; row.querySelector(".status").replaceChildren(badge(status)); }
  if (time !== undefined) row.querySelector(".time").textContent = time;
}

function renderPlan(plan) {
  if (!plan) return;
  document.getElementById("plan").textContent = JSON.stringify(plan, null, 2);
  (plan.steps || []).forEach((step, i) => {
    const row = stepRow(step.id, i + 1);
    if (!row.querySelector(".agent").textContent) row.querySelector(".agent").textContent = step.agent_provider || "";
  });
}

function renderSession(run, session) {
  setBadge(document.getElementById("run-status"), run.status);
  document.getElementById("run-backend").textContent = run.backend || "";
  if (!session) return;
  renderPlan(session.plan);
  (session.steps || []).forEach((step, i) => {
    const seconds = step.timing && step.timing.duration_seconds;
    setStep(step.step_id, { index: i + 1, agent: step.agent_provider_id, status: step.status === "ok" ? "done" : step.status,
      time: seconds != null ? `${Number(seconds).toFixed(2)}s` : undefined });
  });
  renderTimeline(session.steps || []);
  const answer = document.getElementById("answer");
  if (session.result_text) answer.textContent = session.result_text;
  else if (run.live === false) answer.replaceChildren(el("i", {}, "no final answer"));
  const files = document.getElementById("artifacts");
  const listed = new Map();
  for (const step of session.steps || []) {
    for (const ref of step.artifacts || []) listed.set(ref.relative_path || ref, step.step_id);
  }
  for (const path of session.artifacts || []) if (!listed.has(path)) listed.set(path, "");
  if (listed.size) {
    files.replaceChildren(...[...listed].map(([path, stepId]) => el("li", {},
      el("a", { href: `/api/runs/${encodeURIComponent(run.run_id)}/artifacts/${path.split("/").map(encodeURIComponent).join("/")}`, download: "" }, path),
      stepId ? el("span", { class: "meta" }, ` (step ${stepId})`) : null)));
  }
  const outputs = document.getElementById("step-outputs");
  outputs.replaceChildren(...(session.steps || []).map((step) => el("div", { class: "step-output" },
    el("b", {}, `${step.step_id} `), badge(step.status), el("span", { class: "meta" }, ` ${step.agent_provider_id || ""}`),
    step.error ? el("p", { class: "error" }, step.error) : null,
    step.result_text ? el("pre", {}, step.result_text) : null)));
}

// One bar per step from its timing (started_at .. finished_at), on one time axis from
// the first start to the last finish: what ran when, and what ran at once.
function renderTimeline(steps) {
  const box = document.getElementById("timeline");
  const timed = steps.map((step) => ({
    step, start: Date.parse((step.timing || {}).started_at), end: Date.parse((step.timing || {}).finished_at),
  })).filter((t) => !isNaN(t.start) && !isNaN(t.end));
  if (!timed.length) return;
  const t0 = Math.min(...timed.map((t) => t.start));
  const span = Math.max(1, Math.max(...timed.map((t) => t.end)) - t0);
  box.replaceChildren(...timed.map(({ step, start, end }) => {
    const status = step.status === "ok" ? "done" : step.status;
    const bar = el("div", {
      class: `timeline-bar status-${status}`, title: `${step.step_id}: ${((end - start) / 1000).toFixed(2)}s`,
      style: `left: ${((start - t0) / span) * 100}%; width: ${((end - start) / span) * 100}%`,
    });
    return el("div", { class: "timeline-row", dataset: { stepId: step.step_id, status, startMs: start - t0, endMs: end - t0 } },
      el("span", {}, step.step_id), el("div", { class: "timeline-track" }, bar),
      el("span", { class: "meta" }, `${((end - start) / 1000).toFixed(2)}s`));
  }));
}

function showError(text) {
  const box = document.getElementById("run-error");
  if (!box) return;
  box.hidden = !text;
  box.textContent = text || "";
}

function applyEvent(event) {
  const shown = Date.now();
  document.getElementById("progress").append(el("li", {
    dataset: { kind: event.kind, eventId: event.id, tServer: Math.round(event.t * 1000), tShown: shown },
  }, event.line || (event.kind === "cancel_requested" ? "cancel requested" : `run ended: ${event.status}`)));
  const status = document.getElementById("run-status");
  switch (event.kind) {
    case "run_started":
      setBadge(status, "running");
      document.getElementById("run-backend").textContent = event.backend;
      break;
    case "step_started":
      setStep(event.step_id, { index: event.index, agent: event.provider_id, status: "running", time: "" });
      break;
    case "step_finished":
      setStep(event.step_id, { index: event.index, status: "done", time: `${event.seconds.toFixed(2)}s` });
      break;
    case "step_failed":
      setStep(event.step_id, { index: event.index, status: event.error.startsWith("cancelled") ? "cancelled" : "failed" });
      break;
    case "step_skipped":
      setStep(event.step_id, { index: event.index, status: "skipped" });
      break;
    case "cancel_requested":
      setBadge(status, "cancelling");
      document.getElementById("cancel").disabled = true;
      break;
    case "exit":
      setBadge(status, event.status);
      document.getElementById("cancel").hidden = true;
      if (event.error) showError(event.error);
      break;
    default:
      break;
  }
}

async function showRun(runId) {
  mount("tpl-run");
  document.getElementById("run-id").textContent = runId;
  let detail;
  try {
    detail = await api(`/api/runs/${encodeURIComponent(runId)}`);
  } catch (err) {
    document.getElementById("run-goal").textContent = "Run not found";
    showError(err.message);
    return;
  }
  const run = detail.run;
  document.title = `${run.goal || runId} · Agentic Orchestration`;
  document.getElementById("run-goal").textContent = run.goal || "(no goal)";
  document.getElementById("run-started").textContent = localTime(run.created_at);
  document.getElementById("log").textContent = (detail.log_tail || []).join("\n");
  renderSession(run, detail.session);
  if (run.error) showError(run.error);
  if (!run.live) return;

  const cancel = document.getElementById("cancel");
  cancel.hidden = false;
  cancel.disabled = run.cancel_requested;
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`/api/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST" });
    } catch (err) {
      showError(err.message);
    }
  });
  source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
  for (const kind of STEP_EVENTS) {
    source.addEventListener(kind, async (message) => {
      const event = JSON.parse(message.data);
      applyEvent(event);
      if (event.kind === "run_started") {
        const again = await api(`/api/runs/${encodeURIComponent(runId)}`);
        if (again.session) renderPlan(again.session.plan);
      }
      if (event.kind === "exit") {
        source.close();
        source = null;
        const final = await api(`/api/runs/${encodeURIComponent(runId)}`);
        renderSession({ ...final.run, status: event.status, live: false }, final.session);
        document.getElementById("log").textContent = (final.log_tail || []).join("\n");
        document.getElementById("run").dataset.finished = event.status;
      }
    });
  }
}

// --- providers: the learning statistics -------------------------------------------------

async function showStats() {
  mount("tpl-stats");
  document.title = "Providers · Agentic Orchestration";
  const body = document.querySelector("#stats-table tbody");
  let data;
  try {
    data = await api("/api/stats");
  } catch (err) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "error" }, err.message)));
    return;
  }
  document.getElementById("stats-empty").hidden = data.stats.length > 0;
  const num = (v, digits = 2) => (v === null || v === undefined ? "" : Number(v).toFixed(digits));
  for (const row of data.stats) {
    const rate = Math.round(row.success_rate * 100);
    body.append(el("tr", { dataset: { provider: row.provider, kind: row.kind || "" } },
      el("td", {}, row.kind ? "" : el("b", {}, row.provider)),
      el("td", {}, row.kind || "all"),
      el("td", {}, row.runs),
      el("td", { class: "rate" }, `${rate}%`),
      el("td", {}, el("div", { class: "bar", title: `${rate}%` }, el("span", { style: `width: ${rate}%` }))),
      el("td", {}, num(row.p50_seconds)), el("td", {}, num(row.p90_seconds)),
      el("td", {}, row.recoverable_failures), el("td", {}, row.total_tokens)));
  }
}

// --- catalog: agents and MCP servers, available or filtered out and why --------------

async function showCatalog() {
  mount("tpl-catalog");
  document.title = "Catalog · Agentic Orchestration";
  const select = document.getElementById("catalog-backend");
  const errorBox = document.getElementById("catalog-error");
  const fail = (err) => { errorBox.textContent = err.message; errorBox.hidden = false; };
  const status = (entry) => el("td", { class: entry.available ? "available" : "filtered" },
    entry.available ? "available" : "filtered out");
  const load = async () => {
    errorBox.hidden = true;
    let data;
    try {
      data = await api(`/api/catalog?backend=${encodeURIComponent(select.value)}`);
    } catch (err) { fail(err); return; }
    document.querySelector("#catalog-agents tbody").replaceChildren(...data.agents.map((a) =>
      el("tr", { dataset: { id: a.id, available: String(a.available) } },
        el("td", {}, el("code", {}, a.id)), el("td", {}, a.type), el("td", {}, a.model || ""),
        status(a), el("td", { class: "detail" }, a.available ? a.role : a.reason))));
    document.querySelector("#catalog-mcps tbody").replaceChildren(...data.mcps.map((m) =>
      el("tr", { dataset: { id: m.id, available: String(m.available) } },
        el("td", {}, el("code", {}, m.id)), el("td", {}, m.transport), status(m),
        el("td", { class: "detail" }, m.available ? m.description : m.reason))));
    document.getElementById("catalog").dataset.backend = data.backend;
  };
  try {
    const config = await api("/api/config");
    for (const name of config.backends) {
      select.append(el("option", { value: name }, name));
    }
    select.value = config.default_backend;
  } catch (err) { fail(err); return; }
  select.addEventListener("change", load);
  await load();
}

// --- routing ------------------------------------------------------------------------------

function route() {
  if (source) { source.close(); source = null; }
  const path = location.pathname;
  const match = path.match(/^\/runs\/([^/]+)$/);
  if (match) return showRun(decodeURIComponent(match[1]));
  if (path === "/stats") return showStats();
  if (path === "/catalog") return showCatalog();
  return showHome();
}

function navigate(path) {
  history.pushState(null, "", path);
  route();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/']");
  if (!link || link.hasAttribute("download") || link.getAttribute("href").startsWith("/api/")) return;
  if (event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", route);
route();
