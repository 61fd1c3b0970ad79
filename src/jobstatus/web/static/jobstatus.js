// jobstatus pages: the dashboard and one job's page, live through EventSource.
// Every job value reaches the page through textContent, never as HTML.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "";
  const RESERVED = new Set(["status", "progress", "total", "exception", "serialized_job",
    "queued_at", "started_at", "finished_at", "updated_at", "attempts", "job_id"]);
  const ORDER = { failed: 0, working: 1, queued: 2, completed: 3 };
  // Staleness as Status.is_stale judges it, on the server's clock (the page says
  // what time it was there when it was made).
  const STALE_AFTER = parseFloat(body.dataset.staleAfter) || 60;
  const CLOCK_SKEW = (parseFloat(body.dataset.now) || Date.now() / 1000) - Date.now() / 1000;
  const RECHECK = 5000; // ms between two looks at which working jobs went quiet

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function finished(record) {
    return record.status === "completed" || record.status === "failed";
  }

  // Working, but silent for longer than stale_after: its worker probably died.
  function stale(record) {
    if (record.status !== "working" || typeof record.updated_at !== "string") return false;
    const updated = Date.parse(record.updated_at);
    if (isNaN(updated)) return false;
    return Date.now() / 1000 + CLOCK_SKEW - updated / 1000 > STALE_AFTER;
  }

  function staleBadge() {
    const badge = el("span", "stale-badge", "stale");
    badge.title = "no word from this job for over " + duration(STALE_AFTER) +
      ": its worker may have died";
    return badge;
  }

  // current / total in [0, 1]; a completed job without a total is whole.
  function ratio(record) {
    const current = isNumber(record.progress) ? record.progress : 0;
    if (isNumber(record.total) && record.total > 0) {
      return Math.min(Math.max(current / record.total, 0), 1);
    }
    return record.status === "completed" ? 1 : null;
  }

  // Seconds left at the rate seen between started_at and updated_at (both server clocks).
  function eta(record) {
    if (finished(record)) return 0;
    const started = Date.parse(record.started_at);
    const updated = Date.parse(record.updated_at);
    const current = isNumber(record.progress) ? record.progress : 0;
    if (!isNumber(record.total) || !(updated > started) || current <= 0) return null;
    const rate = current / ((updated - started) / 1000);
    return Math.max(record.total - current, 0) / rate;
  }

  function duration(seconds) {
    if (seconds === null) return "";
    if (seconds < 1) return "0s";
    if (seconds < 90) return Math.round(seconds) + "s";
    if (seconds < 5400) return Math.round(seconds / 60) + "m";
    return Math.round(seconds / 3600) + "h";
  }

  function detail(record) {
    if (record.status === "failed") {
      const exc = record.exception;
      if (exc && typeof exc === "object") {
        return (exc["class"] ? exc["class"] + ": " : "") + (exc.message || "");
      }
      return "failed";
    }
    const step = record.step;
    if (step === undefined || step === null) return "";
    return typeof step === "string" ? step : JSON.stringify(step);
  }

  function shortTime(iso) {
    const when = Date.parse(iso);
    return isNaN(when) ? "" : new Date(when).toLocaleTimeString();
  }

  function bar(record) {
    const outer = el("div", "bar");
    const fill = el("div", "fill");
    outer.setAttribute("role", "progressbar");
    outer.setAttribute("aria-valuemin", "0");
    outer.setAttribute("aria-valuemax", "100");
    setBar(outer, fill, record);
    outer.appendChild(fill);
    return outer;
  }

  function setBar(outer, fill, record) {
    const r = ratio(record);
    const percent = r === null ? 0 : Math.round(r * 100);
    outer.setAttribute("aria-valuenow", String(percent));
    outer.dataset.state = record.status || "";
    outer.classList.toggle("unknown", r === null && !finished(record));
    fill.style.width = percent + "%";
  }

  function jobUrl(jobId, suffix) {
    return base + "/jobs/" + encodeURIComponent(jobId) + suffix;
  }

  // -- the dashboard ------------------------------------------------------------------

  function dashboard() {
    const jobs = new Map();
    const tbody = document.querySelector("#jobs tbody");
    const refresh = (parseFloat(body.dataset.refresh) || 10) * 1000;
    let filter = "";
    let source = null;
    let watching = "";
    let timer = null;

    function row(jobId, record) {
      const tr = el("tr");
      tr.dataset.job = jobId;
      tr.dataset.state = record.status || "";
      const link = el("a", "job-link", jobId);
      link.href = jobUrl(jobId, "/view");
      const idCell = el("td", "job-id");
      idCell.appendChild(link);
      tr.appendChild(idCell);
      const state = el("span", "state", record.status || "unknown");
      state.dataset.state = record.status || "";
      const stateCell = el("td");
      stateCell.appendChild(state);
      if (stale(record)) {
        tr.dataset.stale = "true";
        stateCell.appendChild(staleBadge());
      }
      tr.appendChild(stateCell);
      const barCell = el("td", "bar-col");
      barCell.appendChild(bar(record));
      const r = ratio(record);
      barCell.appendChild(el("span", "percent", r === null ? "" : Math.round(r * 100) + "%"));
      tr.appendChild(barCell);
      const live = record.status === "working" && !stale(record); // a dead job has no ETA
      tr.appendChild(el("td", "eta", live ? duration(eta(record)) : ""));
      tr.appendChild(el("td", "detail", detail(record)));
      tr.appendChild(el("td", "updated muted", shortTime(record.updated_at)));
      return tr;
    }

    function render() {
      const entries = Array.from(jobs.entries());
      entries.sort(function (a, b) {
        const order = (ORDER[a[1].status] ?? 4) - (ORDER[b[1].status] ?? 4);
        if (order) return order;
        return String(b[1].updated_at || "").localeCompare(String(a[1].updated_at || ""));
      });
      tbody.replaceChildren(...entries.map(function (e) { return row(e[0], e[1]); }));
      document.getElementById("empty").hidden = entries.length > 0;
      const counts = {};
      for (const [, record] of entries) {
        counts[record.status] = (counts[record.status] || 0) + 1;
        if (stale(record)) counts.stale = (counts.stale || 0) + 1;
      }
      document.getElementById("summary").textContent = ["failed", "working", "stale", "queued", "completed"]
        .filter(function (s) { return counts[s]; })
        .map(function (s) { return counts[s] + " " + s; }).join(" · ");
    }

    // A job goes stale by not changing: look again now and then.
    setInterval(function () { if (jobs.size) render(); }, RECHECK);

    function watch() {
      const ids = [];
      for (const [jobId, record] of jobs) {
        if (!finished(record) && jobId.indexOf(",") < 0) ids.push(jobId);
      }
      const key = ids.join(",");
      if (key === watching) return;
      if (source) source.close();
      source = null;
      watching = key;
      if (!ids.length) return;
      source = new EventSource(base + "/events?ids=" + encodeURIComponent(key));
      source.onmessage = function (event) {
        const record = JSON.parse(event.data);
        const jobId = record.job_id;
        delete record.job_id;
        if (!jobs.has(jobId)) return;
        jobs.set(jobId, record);
        render();
        const open = Array.from(jobs.values()).some(function (r) { return !finished(r); });
        if (!open && source) { source.close(); source = null; watching = ""; }
      };
      source.onerror = function () {
        if (source) source.close();
        source = null;
        watching = "";
        schedule(2000);
      };
    }

    async function load() {
      const query = "?limit=100" + (filter ? "&status=" + encodeURIComponent(filter) : "");
      const error = document.getElementById("error");
      try {
        const response = await fetch(base + "/jobs" + query, { headers: { Accept: "application/json" } });
        const answer = await response.json();
        if (!response.ok) throw new Error(answer.error || response.statusText);
        jobs.clear();
        for (const record of answer.jobs) {
          const jobId = record.job_id;
          delete record.job_id;
          jobs.set(jobId, record);
        }
        error.hidden = true;
        render();
        watch();
      } catch (exc) {
        error.textContent = "Could not load jobs: " + exc.message;
        error.hidden = false;
      }
      schedule(refresh);
    }

    function schedule(delay) {
      if (timer) clearTimeout(timer);
      timer = setTimeout(load, delay);
    }

    for (const button of document.querySelectorAll("#filters button")) {
      button.addEventListener("click", function () {
        filter = button.dataset.status;
        for (const other of document.querySelectorAll("#filters button")) {
          other.setAttribute("aria-pressed", String(other === button));
        }
        load();
      });
    }
    load();
  }

  // -- one job's page -----------------------------------------------------------------

  function jobPage() {
    const jobId = body.dataset.job;
    const section = document.querySelector(".job");
    const outer = section.querySelector(".bar");
    const fill = section.querySelector(".fill");

    let last = null;

    function render(record) {
      last = record;
      const state = section.querySelector(".state");
      state.textContent = record.status || "unknown";
      state.dataset.state = record.status || "";
      const badge = section.querySelector(".stale-badge");
      if (stale(record) && !badge) state.after(staleBadge());
      if (!stale(record) && badge) badge.remove();
      setBar(outer, fill, record);
      const r = ratio(record);
      section.querySelector(".percent").textContent = r === null ? "" : Math.round(r * 100) + "%";
      const left = record.status === "working" && !stale(record) ? eta(record) : null;
      section.querySelector(".eta").textContent = left === null ? "" : "about " + duration(left) + " left";
      section.querySelector(".detail").textContent = detail(record);
      const fields = section.querySelector(".fields");
      const items = [];
      for (const key of Object.keys(record)) {
        if (RESERVED.has(key) || key === "step") continue;
        const value = record[key];
        items.push(el("dt", "", key), el("dd", "", typeof value === "string" ? value : JSON.stringify(value)));
      }
      fields.replaceChildren(...items);
    }

    setInterval(function () { if (last) render(last); }, RECHECK);

    const source = new EventSource(jobUrl(jobId, "/events"));
    source.onmessage = function (event) {
      const record = JSON.parse(event.data);
      render(record);
      if (finished(record)) source.close();
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        section.querySelector(".detail").textContent = "This job is no longer available.";
      }
    };
  }

  if (body.dataset.page === "dashboard") dashboard();
  if (body.dataset.page === "job") jobPage();
})();
