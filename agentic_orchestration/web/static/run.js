// The run page (see agentic_orchestration/web/server.py): live from the run's typed events
// (agentic_orchestration/orchestration/events.py, as server-sent events replayed on
// reconnect), then from its session once it has ended. Loaded before app.js, which owns
// the helpers (el, api, badge...) and the routing; both are classic scripts sharing globals.
"use strict";

// Every kind the server may send (an EventSource only delivers the named ones it listens to).
const RUN_EVENTS = ["run_started", "plan", "step_started", "step_finished", "step_failed",
  "step_retried", "step_skipped", "step_not_run", "step_waits", "running_at_once", "replan",
  "budget", "run_finished", "cancel_requested", "exit"];

let source = null;
// step id + "#" + attempt -> {stepId, attempt, provider, status, start, end, output, error, tokens}
let attempts = new Map();

const shownStatus = (status) => (status === "ok" ? "done" : status);

function stepRow(stepId, index) {
  const body = document.querySelector("#steps tbody");
  let row = body.querySelector(`tr[data-step-id="${CSS.escape(stepId)}"]`);
  if (!row) {
    row = el("tr", { dataset: { stepId } },
      el("td", { class: "index" }, index ?? ""), el("td", { class: "step" }, stepId),
      el("td", { class: "agent" }), el("td", { class: "status" }, badge("pending")),
      el("td", { class: "time" }), el("td", { class: "tries" }), el("td", { class: "excerpt" }));
    body.append(row);
  }
  return row;
}

function setStep(stepId, { index, agent, status, time, tries, excerpt }) {
  const row = stepRow(stepId, index);
  if (index !== undefined) row.querySelector(".index").textContent = index;
  if (agent) row.querySelector(".agent").textContent = agent;
  if (status) { row.dataset.status = status; row.querySelector(".status").replaceChildren(badge(status)); }
  if (time !== undefined) row.querySelector(".time").textContent = time;
  if (tries !== undefined) row.querySelector(".tries").textContent = tries > 1 ? tries : "";
  if (excerpt !== undefined) row.querySelector(".excerpt").textContent = excerpt.slice(0, 160);
}

function renderPlan(plan) {
  if (!plan) return;
  document.getElementById("plan").textContent = JSON.stringify(plan, null, 2);
  (plan.steps || []).forEach((step, i) => {
    const row = stepRow(step.id, i + 1);
    if (!row.querySelector(".agent").textContent) row.querySelector(".agent").textContent = step.agent_provider || "";
  });
}

// The attempts of a session's step: its attempt_log (distributed runs, and in-process
// runs whose fallback retried it), else the step itself as its only attempt.
function sessionAttempts(step) {
  const log = (step.attempt_log || []).length ? step.attempt_log : [{ ...step, attempt: 1 }];
  return log.map((a, i) => ({
    stepId: step.step_id, attempt: a.attempt || i + 1, provider: a.agent_provider_id,
    status: shownStatus(a.status || (a.exit_code === 0 ? "ok" : "failed")),
    start: Date.parse((a.timing || {}).started_at), end: Date.parse((a.timing || {}).finished_at),
    error: a.error, output: i === log.length - 1 ? step.result_text : null,
    tokens: (a.usage || {}).total_tokens,
  }));
}

function renderSession(run, session) {
  setBadge(document.getElementById("run-status"), run.status);
  document.getElementById("run-backend").textContent = run.backend || "";
  if (!session) return;
  renderPlan(session.plan);
  const fromSession = [];
  (session.steps || []).forEach((step, i) => {
    const seconds = step.timing && step.timing.duration_seconds;
    const tries = sessionAttempts(step);
    fromSession.push(...tries);
    setStep(step.step_id, { index: i + 1, agent: step.agent_provider_id, status: shownStatus(step.status),
      time: seconds != null ? `${Number(seconds).toFixed(2)}s` : undefined, tries: tries.length,
      excerpt: step.result_text || step.error || "" });
  });
  // The live view may know more attempts than an older session recorded: keep the richer one.
  if (fromSession.length >= attempts.size) {
    attempts = new Map(fromSession.map((a) => [`${a.stepId}#${a.attempt}`, a]));
  }
  renderTimeline();
  renderOutputs(session.steps || []);
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
}

// Each step's attempts (provider, status, time, tokens, error) and its output: from the
// events while the run goes on (an excerpt), from the session once it has ended (all of it).
function renderOutputs(sessionSteps) {
  const byStep = new Map();
  for (const a of attempts.values()) {
    if (!byStep.has(a.stepId)) byStep.set(a.stepId, []);
    byStep.get(a.stepId).push(a);
  }
  const final = new Map((sessionSteps || []).map((s) => [s.step_id, s]));
  const ids = [...new Set([...final.keys(), ...byStep.keys()])];
  document.getElementById("step-outputs").replaceChildren(...ids.map((stepId) => {
    const tries = (byStep.get(stepId) || []).sort((x, y) => x.attempt - y.attempt);
    const step = final.get(stepId);
    const last = tries[tries.length - 1] || {};
    const output = step ? step.result_text : last.output;
    return el("div", { class: "step-output", dataset: { stepId } },
      el("b", {}, `${stepId} `), badge(step ? step.status : last.status),
      el("ol", { class: "attempts" }, ...tries.map((a) => el("li", {
        class: "attempt", dataset: { attempt: a.attempt, status: a.status, provider: a.provider || "" },
      }, `attempt ${a.attempt} on ${a.provider || "?"}: `, badge(a.status),
        isNaN(a.end) || isNaN(a.start) ? "" : ` ${((a.end - a.start) / 1000).toFixed(2)}s`,
        a.tokens ? ` · ${a.tokens} tokens` : "",
        a.error ? el("span", { class: "error" }, ` ${a.error}`) : null))),
      output ? el("pre", {}, output) : null);
  }));
}

// One bar per attempt (started .. ended; a running one reaches the latest time known), on
// one time axis from the first start: what ran when, what ran at once, what was retried.
function renderTimeline() {
  const box = document.getElementById("timeline");
  const timed = [...attempts.values()].filter((a) => !isNaN(a.start));
  if (!timed.length) return;
  const latest = Math.max(...timed.map((a) => (isNaN(a.end) ? a.start : a.end)));
  timed.sort((x, y) => x.start - y.start || x.attempt - y.attempt);
  const t0 = timed[0].start;
  const span = Math.max(1, latest - t0);
  box.replaceChildren(...timed.map((a) => {
    const end = isNaN(a.end) ? latest : a.end;
    const label = a.attempt > 1 ? `${a.stepId} (attempt ${a.attempt})` : a.stepId;
    const bar = el("div", {
      class: `timeline-bar status-${a.status}`, title: `${label} on ${a.provider || "?"}: ${((end - a.start) / 1000).toFixed(2)}s`,
      style: `left: ${((a.start - t0) / span) * 100}%; width: ${((end - a.start) / span) * 100}%`,
    });
    return el("div", { class: "timeline-row", dataset: {
      stepId: a.stepId, attempt: a.attempt, status: a.status, startMs: a.start - t0, endMs: end - t0 } },
    el("span", {}, label), el("div", { class: "timeline-track" }, bar),
    el("span", { class: "meta" }, isNaN(a.end) ? "running" : `${((end - a.start) / 1000).toFixed(2)}s`));
  }));
}

function showError(text) {
  const box = document.getElementById("run-error");
  if (!box) return;
  box.hidden = !text;
  box.textContent = text || "";
}

function attemptOf(event) {
  const key = `${event.step_id}#${event.attempt || 1}`;
  if (!attempts.has(key)) attempts.set(key, { stepId: event.step_id, attempt: event.attempt || 1, start: NaN, end: NaN });
  return attempts.get(key);
}

function applyEvent(event) {
  const label = event.line || (event.kind === "cancel_requested" ? "cancel requested"
    : event.kind === "exit" ? `run ended: ${event.status}` : null);
  if (label) {
    document.getElementById("progress").append(el("li", {
      dataset: { kind: event.kind, eventId: event.id, tServer: Math.round(event.t * 1000),
        tEmit: Math.round((event.t_emit || event.t) * 1000), tShown: Date.now() },
    }, label));
  }
  const status = document.getElementById("run-status");
  switch (event.kind) {
    case "run_started":
      setBadge(status, "running");
      document.getElementById("run-backend").textContent = event.backend;
      break;
    case "plan": {  // the first plan, or a revision of it (iterative runs)
      const ids = new Set((event.steps || []).map((step) => step.id));
      for (const row of document.querySelectorAll("#steps tbody tr")) {
        if (!ids.has(row.dataset.stepId) && !row.dataset.status) setStep(row.dataset.stepId, { status: "removed" });
      }
      for (const step of event.steps || []) setStep(step.id, { index: step.index, agent: step.provider });
      break;
    }
    case "step_started": {
      Object.assign(attemptOf(event), { provider: event.provider, status: "running", start: Date.parse(event.started_at) });
      setStep(event.step_id, { index: event.index, agent: event.provider, status: "running", time: "", tries: event.attempt });
      break;
    }
    case "step_finished":
    case "step_failed": {
      const status = shownStatus(event.status || (event.kind === "step_finished" ? "ok" : "failed"));
      Object.assign(attemptOf(event), { provider: event.provider, status, start: Date.parse(event.started_at),
        end: Date.parse(event.ended_at), output: event.output, error: event.error, tokens: (event.tokens || {}).total });
      setStep(event.step_id, { index: event.index, status,
        time: event.seconds != null ? `${Number(event.seconds).toFixed(2)}s` : undefined,
        excerpt: event.output || event.error || "" });
      break;
    }
    case "step_skipped":
    case "step_not_run":
      setStep(event.step_id, { index: event.index, status: event.status || "skipped" });
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
  if (event.step_id && ["step_started", "step_finished", "step_failed"].includes(event.kind)) {
    renderTimeline();
    renderOutputs(null);
  }
}

async function showRun(runId) {
  mount("tpl-run");
  attempts = new Map();
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
  if (!run.live) {
    renderSession(run, detail.session);
    if (run.error) showError(run.error);
    return;
  }
  if (detail.session) renderPlan(detail.session.plan);
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
  // Every event comes through the stream (from the first: it replays them), so the page
  // draws the same whether it opened at the start of the run or in the middle.
  source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
  for (const kind of RUN_EVENTS) {
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
