// "My exports": plain JavaScript, no build step. The bearer token lives in sessionStorage and
// travels only in the Authorization header of requests to this origin, never in a URL.
// Everything shown is written with textContent (never innerHTML): names come from users.
"use strict";

(function () {
  const TOKEN_KEY = "durable-export.token";
  const POLL_MS = 1000;
  const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
  const details = new Map(); // export id -> last GET /exports/{id} answer
  let pollTimer = null;
  let explainedBody = null; // the request body `Explain` accepted (Start sends exactly this)

  const $ = (id) => document.getElementById(id);

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function say(message, isError) {
    const status = $("status");
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ Authorization: "Bearer " + token() }, extraHeaders || {});
    const init = { method: method, headers: headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : "HTTP " + response.status;
      if (response.status === 401) signOut("Signed out: " + message);
      throw new ApiError(response.status, message);
    }
    return data;
  }

  function el(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function formatBytes(n) {
    if (n === undefined || n === null) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let value = n;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
  }

  function formatTime(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
  }

  // -- sign-in ----------------------------------------------------------------------------------

  async function signIn(value) {
    sessionStorage.setItem(TOKEN_KEY, value.trim());
    try {
      await api("GET", "/exports?limit=1");
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      say("Sign-in failed: " + e.message, true);
      return;
    }
    showApp();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
    details.clear();
    $("app").hidden = true;
    $("whoami").hidden = true;
    $("sign-in").hidden = false;
    $("export-rows").replaceChildren();
    $("schedule-rows").replaceChildren();
    say(message || "Signed out.");
    $("token").focus();
  }

  function identity() {
    try {
      const payload = token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(payload));
      return claims.sub + " (" + claims.tenant + ")";
    } catch (e) {
      return "signed in";
    }
  }

  function showApp() {
    $("sign-in").hidden = true;
    $("app").hidden = false;
    $("whoami").hidden = false;
    $("whoami-text").textContent = "Signed in as " + identity();
    say("Signed in.");
    refresh();
  }

  // -- exports ----------------------------------------------------------------------------------

  function progressCell(view) {
    const progress = el("progress", { max: "1", "aria-label": "Progress of " + view.export_id });
    if (view.status === "COMPLETED") {
      progress.value = 1;
    } else if (TERMINAL.has(view.status)) {
      progress.value = 0;
    } // else: no value, an indeterminate bar while rows come in (the total is not known)
    const cell = el("td", { "data-label": "Progress" });
    cell.append(progress);
    return cell;
  }

  function exportRow(summary) {
    const view = Object.assign({}, summary, details.get(summary.export_id) || {});
    const row = el("tr", { "data-export-id": view.export_id, "data-status": view.status });
    const idCell = el("td", { "data-label": "Export" });
    idCell.append(el("code", {}, view.export_id));
    row.append(idCell);
    row.append(el("td", { "data-label": "Status", class: "export-status" }, view.status));
    row.append(progressCell(view));
    row.append(el("td", { "data-label": "Rows", class: "export-rows" }, (view.rows || 0).toLocaleString()));
    row.append(el("td", { "data-label": "Size", class: "export-bytes" }, formatBytes(view.bytes || 0)));
    row.append(el("td", { "data-label": "Started" }, formatTime(view.started_at)));
    const actions = el("td", { "data-label": "Actions", class: "actions" });
    if (view.status === "COMPLETED") {
      const button = el("button", { type: "button", "aria-label": "Download " + view.export_id }, "Download");
      button.addEventListener("click", () => download(view.export_id));
      actions.append(button);
    } else if (!TERMINAL.has(view.status) && view.status !== "COMPLETING") {
      const button = el("button", { type: "button", "aria-label": "Cancel " + view.export_id }, "Cancel");
      button.addEventListener("click", () => cancel(view.export_id));
      actions.append(button);
    }
    if (view.error) actions.append(el("p", { class: "error" }, view.error));
    row.append(actions);
    return row;
  }

  async function loadExports() {
    const page = await api("GET", "/exports?limit=50");
    const items = page.items.slice();
    items.sort((a, b) => (b.started_at || "").localeCompare(a.started_at || ""));
    await Promise.all(
      items
        .filter((item) => {
          const known = details.get(item.export_id);
          return !known || !TERMINAL.has(known.status) || known.status !== item.status;
        })
        .map(async (item) => {
          try {
            details.set(item.export_id, await api("GET", "/exports/" + encodeURIComponent(item.export_id)));
          } catch (e) {
            if (e.status === 401) throw e;
          }
        })
    );
    const rows = items.map(exportRow);
    // Keep keyboard focus on the button it was on across a refresh.
    const focused = document.activeElement;
    const focusedLabel = focused && focused.closest("#export-rows") ? focused.getAttribute("aria-label") : null;
    $("export-rows").replaceChildren(...rows);
    $("no-exports").hidden = rows.length > 0;
    $("exports").hidden = rows.length === 0;
    if (focusedLabel) {
      const again = document.querySelector('#export-rows [aria-label="' + CSS.escape(focusedLabel) + '"]');
      if (again) again.focus();
    }
  }

  async function cancel(exportId) {
    try {
      await api("DELETE", "/exports/" + encodeURIComponent(exportId));
      say("Cancelling " + exportId + ".");
    } catch (e) {
      say("Could not cancel " + exportId + ": " + e.message, true);
    }
    refresh();
  }

  async function download(exportId) {
    // The API presigns a fresh link; the browser then leaves for it (an attachment: it saves
    // the file and stays on this page). The bearer token never goes to the storage.
    try {
      const link = await api("GET", "/exports/" + encodeURIComponent(exportId) + "/download", undefined, {
        Accept: "application/json",
      });
      say("Downloading " + exportId + ".");
      window.location.assign(link.download_url);
    } catch (e) {
      say("Could not download " + exportId + ": " + e.message, true);
    }
  }

  // -- starting an export ------------------------------------------------------------------------

  function formBody() {
    const body = { collection: $("collection").value.trim(), format: $("format").value };
    let pipeline;
    try {
      pipeline = JSON.parse($("pipeline").value || "[]");
    } catch (e) {
      throw new Error("the pipeline is not valid JSON: " + e.message);
    }
    if (!Array.isArray(pipeline)) throw new Error("the pipeline must be a JSON array of stages");
    body.pipeline = pipeline;
    const columns = $("columns").value.split(",").map((c) => c.trim()).filter((c) => c);
    if (columns.length) {
      body.columns = columns.map((c) => {
        const at = c.indexOf(":");
        return at < 0 ? { path: c } : { path: c.slice(0, at), header: c.slice(at + 1) };
      });
    }
    return body;
  }

  function formChanged() {
    explainedBody = null;
    $("start").disabled = true;
  }

  async function explain() {
    let body;
    try {
      body = formBody();
    } catch (e) {
      say(e.message, true);
      return;
    }
    try {
      const answer = await api("POST", "/exports/explain", body);
      $("explain-strategy").textContent = answer.explanation;
      $("explain-pipeline").textContent = JSON.stringify(answer.pipeline, null, 2);
      $("explanation").hidden = false;
      explainedBody = body;
      $("start").disabled = false;
      say("Explained: review it, then start the export.");
    } catch (e) {
      formChanged();
      $("explanation").hidden = true;
      say("Refused: " + e.message, true);
    }
  }

  async function start(event) {
    event.preventDefault();
    if (explainedBody === null) {
      say("Explain the export first.", true);
      return;
    }
    try {
      const accepted = await api("POST", "/exports", explainedBody);
      say("Started " + accepted.export_id + ".");
      formChanged();
      refresh();
    } catch (e) {
      say("Could not start the export: " + e.message, true);
    }
  }

  // -- schedules ---------------------------------------------------------------------------------

  function scheduleRow(view) {
    const row = el("tr", { "data-schedule-id": view.schedule_id });
    const idCell = el("td", { "data-label": "Schedule" });
    idCell.append(el("code", {}, view.schedule_id));
    row.append(idCell);
    row.append(el("td", { "data-label": "Collection" }, view.export.collection));
    const when = view.cron ? view.cron + " (" + view.timezone + ")" : "every " + view.interval_seconds + " s";
    row.append(el("td", { "data-label": "When" }, when));
    row.append(el("td", { "data-label": "State", class: "schedule-state" }, view.paused ? "Paused" : "Active"));
    row.append(el("td", { "data-label": "Next run" }, view.paused ? "–" : formatTime(view.next_runs[0])));
    const actions = el("td", { "data-label": "Actions", class: "actions" });
    const verb = view.paused ? "resume" : "pause";
    const label = (view.paused ? "Resume " : "Pause ") + view.schedule_id;
    const button = el("button", { type: "button", "aria-label": label }, view.paused ? "Resume" : "Pause");
    button.addEventListener("click", async () => {
      try {
        await api("POST", "/schedules/" + encodeURIComponent(view.schedule_id) + "/" + verb);
        say((view.paused ? "Resumed " : "Paused ") + view.schedule_id + ".");
      } catch (e) {
        say("Could not " + verb + " " + view.schedule_id + ": " + e.message, true);
      }
      await loadSchedules();
      const again = document.querySelector('#schedule-rows [data-schedule-id="' + CSS.escape(view.schedule_id) + '"] button');
      if (again) again.focus();
    });
    actions.append(button);
    row.append(actions);
    return row;
  }

  async function loadSchedules() {
    const listed = await api("GET", "/schedules");
    const rows = listed.items.map(scheduleRow);
    $("schedule-rows").replaceChildren(...rows);
    $("no-schedules").hidden = rows.length > 0;
    $("schedules").hidden = rows.length === 0;
  }

  // -- polling -----------------------------------------------------------------------------------

  let schedulesLoadedAt = 0;

  async function refresh() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
    if (!token()) return;
    try {
      await loadExports();
      if (Date.now() - schedulesLoadedAt > 10000) {
        schedulesLoadedAt = Date.now();
        await loadSchedules();
      }
    } catch (e) {
      if (e.status === 401) return;
      say("Could not refresh: " + e.message, true);
    }
    if (token()) pollTimer = setTimeout(refresh, POLL_MS);
  }

  // -- wiring ------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      signIn($("token").value);
      $("token").value = "";
    });
    const devForm = $("dev-form");
    if (devForm) {
      devForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const response = await fetch("/ui/dev-login", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ sub: $("dev-sub").value, tenant: $("dev-tenant").value }),
          credentials: "omit",
        });
        const data = await response.json();
        if (!response.ok) {
          say("Development sign-in failed: " + (data.error ? data.error.message : response.status), true);
          return;
        }
        signIn(data.token);
      });
    }
    $("sign-out").addEventListener("click", () => signOut());
    $("explain").addEventListener("click", explain);
    $("start-form").addEventListener("submit", start);
    for (const id of ["collection", "pipeline", "columns", "format"]) {
      $(id).addEventListener("input", formChanged);
    }
    if (token()) showApp();
  });
})();
