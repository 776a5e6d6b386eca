// The web UI: four views drawn from the JSON API (see agentic_orchestration/web/server.py);
// the run view is in run.js.
// Plain JavaScript, no framework and no build step. Text from runs is always set with
// textContent, never parsed as HTML: a goal or an answer is data, not markup.
"use strict";

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
    renderWorkflows(data.workflows || []);
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

// Each static workflow: its steps, and per backend whether it can run there (notes on
// what is substituted or dropped) or why not.
function renderWorkflows(workflows) {
  const table = document.getElementById("catalog-workflows");
  const backends = [...new Set(workflows.flatMap((w) => Object.keys(w.backends)))];
  table.querySelector("thead tr").replaceChildren(el("th", {}, "Name"), el("th", {}, "Steps"),
    ...backends.map((b) => el("th", {}, b)));
  table.querySelector("tbody").replaceChildren(...workflows.map((w) => el("tr", { dataset: { name: w.name } },
    el("td", {}, el("code", {}, w.name), el("div", { class: "meta" }, w.description || "")),
    el("td", { class: "steps" }, el("ol", {}, ...w.steps.map((s) => el("li", { dataset: { stepId: s.id } },
      el("b", {}, s.id), ` · ${s.agent_provider}`, s.mcp_providers.length ? ` [tools: ${s.mcp_providers.join(", ")}]` : "")))),
    ...backends.map((b) => {
      const v = w.backends[b];
      return el("td", { class: `backend ${v.runnable ? "available" : "filtered"}`, dataset: { backend: b, runnable: String(v.runnable) } },
        v.runnable ? "runnable" : "not runnable",
        el("div", { class: "detail meta" }, v.runnable ? v.notes.join("; ") : v.reason));
    }))));
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
