// jobstatus pages: the dashboard and one job's page, live through EventSource.
// Every job value reaches the page through textContent, never as HTML; a value
// that is an http(s) URL becomes a link whose href the URL parser checked.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "";
  // Keys the pages show in their own places, not among a job's own fields.
  const RESERVED = new Set(["status", "progress", "total", "exception", "serialized_job",
    "queued_at", "started_at", "finished_at", "updated_at", "attempts", "job_id", "name",
    "cancel", "parent", "children", "history", "percent", "eta", "step"]);
  const FINISHED = new Set(["completed", "failed", "cancelled"]);
  const ORDER = { failed: 0, working: 1, queued: 2, cancelled: 3, completed: 4 };
  const STATES = ["queued", "working", "completed", "failed", "cancelled"];
  // Staleness as Status.is_stale judges it, on the server's clock (the page says
  // what time it was there when it was made).
  const STALE_AFTER = parseFloat(body.dataset.staleAfter) || 60;
  const CLOCK_SKEW = (parseFloat(body.dataset.now) || Date.now() / 1000) - Date.now() / 1000;
  const RECHECK = 5000; // ms between two looks at which working jobs went quiet
  const PAGE = 50; // jobs per page of the dashboard
  const CHILDREN_PAGE = 20; // children per page under a group

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
    return FINISHED.has(record.status);
  }

  function isGroup(record) {
    return record.children !== null && typeof record.children === "object" && !Array.isArray(record.children);
  }

  function serverNow() {
    return Date.now() / 1000 + CLOCK_SKEW;
  }

  function epoch(iso) {
    const when = Date.parse(iso);
    return isNaN(when) ? null : when / 1000;
  }

  // Working, but silent for longer than stale_after: its worker probably died.
  function stale(record) {
    if (record.status !== "working") return false;
    const updated = epoch(record.updated_at);
    return updated !== null && serverNow() - updated > STALE_AFTER;
  }

  function cancelling(record) {
    return !finished(record) && record.cancel !== null && typeof record.cancel === "object";
  }

  function staleBadge() {
    const badge = el("span", "stale-badge", "stale");
    badge.title = "no word from this job for over " + span(STALE_AFTER) +
      ": its worker may have died";
    return badge;
  }

  function cancellingBadge(record) {
    const badge = el("span", "badge cancelling", "cancelling");
    const reason = record.cancel && record.cancel.reason;
    badge.title = "a cancel was requested" + (typeof reason === "string" ? ": " + reason : "");
    return badge;
  }

  // current / total in [0, 1] (the server's percent when it sent one); a completed
  // job without a total is whole.
  function ratio(record) {
    if (isNumber(record.percent)) return Math.min(Math.max(record.percent / 100, 0), 1);
    const current = isNumber(record.progress) ? record.progress : 0;
    if (isNumber(record.total) && record.total > 0) {
      return Math.min(Math.max(current / record.total, 0), 1);
    }
    return record.status === "completed" ? 1 : null;
  }

  function percentText(record) {
    const r = ratio(record);
    return r === null ? "" : Math.floor(r * 100) + "%";
  }

  // Seconds left at the rate seen between started_at and updated_at (both server clocks).
  function eta(record) {
    if (finished(record)) return 0;
    const started = epoch(record.started_at);
    const updated = epoch(record.updated_at);
    const current = isNumber(record.progress) ? record.progress : 0;
    if (!isNumber(record.total) || started === null || !(updated > started) || current <= 0) return null;
    const rate = current / (updated - started);
    return Math.max(Math.max(record.total - current, 0) / rate - (serverNow() - updated), 0);
  }

  // What the pages show of eta(): nothing for a dead job, nor for under a second.
  function timeLeft(record) {
    const left = record.status === "working" && !stale(record) ? eta(record) : null;
    return left !== null && left >= 0.5 ? left : null;
  }

  // A length of time, short: 45s, 4m 05s, 2h 03m, 3d 4h.
  function span(seconds) {
    if (seconds === null || !isFinite(seconds)) return "";
    seconds = Math.max(0, Math.round(seconds));
    const two = function (n) { return String(n).padStart(2, "0"); };
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + two(seconds % 60) + "s";
    if (seconds < 172800) return Math.floor(seconds / 3600) + "h " + two(Math.floor(seconds % 3600 / 60)) + "m";
    return Math.floor(seconds / 86400) + "d " + Math.floor(seconds % 86400 / 3600) + "h";
  }

  // From the start of the job's (last) attempt to its end, or to now while it runs.
  function runTime(record) {
    const started = epoch(record.started_at);
    if (started === null) return null;
    // A group that went back to working keeps the finished_at of its last end.
    const finishedAt = finished(record) ? epoch(record.finished_at) : null;
    if (finishedAt !== null && finishedAt >= started) return finishedAt - started;
    if (record.status === "working") {
      const until = stale(record) ? epoch(record.updated_at) : serverNow();
      return until === null ? null : Math.max(until - started, 0);
    }
    return null;
  }

  function reason(record) {
    const exc = record.exception;
    if (exc && typeof exc === "object") {
      return (exc["class"] ? exc["class"] + ": " : "") + (exc.message || "");
    }
    return null;
  }

  function detail(record) {
    if (record.status === "failed") return reason(record) || "failed";
    if (record.status === "cancelled") {
      const why = record.cancel && typeof record.cancel.reason === "string" ? record.cancel.reason : "";
      return why ? "cancelled: " + why : "cancelled";
    }
    const step = record.step;
    if (step === undefined || step === null) return "";
    return typeof step === "string" ? step : JSON.stringify(step);
  }

  function timeText(iso) {
    const when = Date.parse(iso);
    if (isNaN(when)) return "";
    const date = new Date(when);
    const today = new Date().toDateString() === date.toDateString();
    return today ? date.toLocaleTimeString() : date.toLocaleString();
  }

  function timeNode(iso) {
    const node = el("time", "", timeText(iso));
    if (typeof iso === "string") {
      node.dateTime = iso;
      node.title = iso;
    }
    return node;
  }

  // A job's own value: an http(s) URL becomes a link, anything else is text.
  function valueNode(value) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (typeof value === "string" && /^https?:\/\//i.test(value)) {
      try {
        const url = new URL(value);
        if (url.protocol === "http:" || url.protocol === "https:") {
          const link = el("a", "", text);
          link.href = url.href;
          link.rel = "noopener noreferrer nofollow";
          return link;
        }
      } catch (exc) { /* not a URL after all: text */ }
    }
    return document.createTextNode(text);
  }

  function bar(record) {
    const outer = el("div", "bar");
    const fill = el("div", "fill");
    outer.setAttribute("role", "progressbar");
    outer.setAttribute("aria-valuemin", "0");
    outer.setAttribute("aria-valuemax", "100");
    outer.appendChild(fill);
    setBar(outer, fill, record);
    return outer;
  }

  function setBar(outer, fill, record) {
    const r = ratio(record);
    const percent = r === null ? 0 : Math.floor(r * 100);
    outer.setAttribute("aria-valuenow", String(percent));
    outer.dataset.state = record.status || "";
    outer.classList.toggle("unknown", r === null && !finished(record));
    fill.style.width = percent + "%";
  }

  function stateCell(record) {
    const cell = el("td", "status");
    cell.dataset.label = "Status";
    const state = el("span", "state", record.status || "unknown");
    state.dataset.state = record.status || "";
    cell.appendChild(state);
    if (stale(record)) cell.appendChild(staleBadge());
    if (cancelling(record)) cell.appendChild(cancellingBadge(record));
    return cell;
  }

  function progressCell(record) {
    const cell = el("td", "bar-col");
    cell.dataset.label = "Progress";
    cell.appendChild(bar(record));
    cell.appendChild(el("span", "percent", percentText(record)));
    const left = timeLeft(record);
    cell.appendChild(el("span", "eta muted", left === null ? "" : " · " + span(left) + " left"));
    if (isGroup(record)) {
      const counts = record.children;
      const done = (counts.completed || 0) + (counts.failed || 0) + (counts.cancelled || 0);
      const total = STATES.reduce(function (sum, s) { return sum + (counts[s] || 0); }, 0);
      const parts = [done + "/" + total + " done"];
      if (counts.failed) parts.push(counts.failed + " failed");
      cell.appendChild(el("div", "muted", parts.join(", ")));
    }
    return cell;
  }

  function labelled(className, label, content) {
    const cell = el("td", className);
    cell.dataset.label = label;
    if (content instanceof Node) cell.appendChild(content);
    else if (content !== undefined && content !== null && content !== "") cell.textContent = String(content);
    return cell;
  }

  function jobUrl(jobId, suffix) {
    return base + "/jobs/" + encodeURIComponent(jobId) + suffix;
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const answer = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      const error = new Error(answer.error || response.statusText);
      error.status = response.status;
      throw error;
    }
    return answer;
  }

  // A same-origin POST with a JSON body: what the changing routes require.
  async function act(jobId, action, payload) {
    const response = await fetch(jobUrl(jobId, "/" + action), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload || {}),
      credentials: "same-origin",
    });
    const answer = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer;
  }

  function actionButtons(jobId, record, allowed, onDone) {
    const buttons = [];
    if (allowed.indexOf("cancel") >= 0 && !finished(record) && !cancelling(record)) {
      const cancel = el("button", "cancel", "Cancel");
      cancel.type = "button";
      cancel.title = "ask this job to stop at its next step";
      cancel.addEventListener("click", async function () {
        cancel.disabled = true;
        try {
          const answer = await act(jobId, "cancel");
          onDone(answer.cancelled ? "cancel requested" : "already finished", answer.job);
        } catch (exc) {
          cancel.disabled = false;
          onDone("could not cancel: " + exc.message, null);
        }
      });
      buttons.push(cancel);
    }
    if (allowed.indexOf("delete") >= 0) {
      const remove = el("button", "delete danger", "Delete");
      remove.type = "button";
      remove.addEventListener("click", async function () {
        if (!window.confirm("Delete the record of job " + jobId + "?")) return;
        remove.disabled = true;
        try {
          await act(jobId, "delete");
          onDone("deleted", null, true);
        } catch (exc) {
          remove.disabled = false;
          onDone("could not delete: " + exc.message, null);
        }
      });
      buttons.push(remove);
    }
    return buttons;
  }

  // -- the dashboard ------------------------------------------------------------------

  function dashboard() {
    const tbody = document.querySelector("#jobs tbody");
    const refresh = (parseFloat(body.dataset.refresh) || 10) * 1000;
    const records = new Map(); // every job on screen, groups' children too
    const expanded = new Map(); // group id -> {ids, next, total}
    let order = []; // the page's job ids, in the server's order
    let actions = {};
    let filter = "";
    let search = null;
    let cursor = null;
    let next = null;
    let pageNumber = 1;
    let counts = null;
    let countsServed = true;
    let countsKnown = false; // until the first answer, the summary waits for it
    let source = null;
    let watching = "";
    let timer = null;
    let notice = "";

    function done(message, record, gone) {
      notice = message;
      if (record && record.job_id) records.set(record.job_id, record);
      if (gone) load();
      else render();
    }

    function row(jobId, record, child) {
      const tr = el("tr", child ? "child" : "");
      tr.dataset.job = jobId;
      tr.dataset.state = record.status || "";
      if (stale(record)) tr.dataset.stale = "true";
      const jobCell = el("td", "job");
      if (typeof record.name === "string") jobCell.appendChild(el("div", "name", record.name));
      const link = el("a", "job-link job-id", jobId);
      link.href = jobUrl(jobId, "/view");
      jobCell.appendChild(link);
      if (typeof record.parent === "string" && !child) {
        const inGroup = el("div", "in-group muted", "in ");
        const groupLink = el("a", "group-link", record.parent);
        groupLink.href = jobUrl(record.parent, "/view");
        inGroup.appendChild(groupLink);
        jobCell.appendChild(inGroup);
      }
      if (isGroup(record) && !child) jobCell.appendChild(expandButton(jobId, record));
      tr.appendChild(jobCell);
      tr.appendChild(stateCell(record));
      tr.appendChild(progressCell(record));
      tr.appendChild(labelled("started", "Started", record.started_at ? timeNode(record.started_at) : ""));
      tr.appendChild(labelled("duration", "Duration", span(runTime(record))));
      tr.appendChild(labelled("attempts", "Attempts", isNumber(record.attempts) ? record.attempts : ""));
      tr.appendChild(labelled("detail", "Reason / step", detail(record)));
      tr.appendChild(labelled("updated muted", "Updated", record.updated_at ? timeNode(record.updated_at) : ""));
      const cell = el("td", "actions");
      for (const button of actionButtons(jobId, record, actions[jobId] || [], done)) cell.appendChild(button);
      tr.appendChild(cell);
      return tr;
    }

    function expandButton(jobId, record) {
      const open = expanded.has(jobId);
      const total = STATES.reduce(function (sum, s) { return sum + (record.children[s] || 0); }, 0);
      const button = el("button", "expand", (open ? "▾ hide " : "▸ ") + total + " children");
      button.type = "button";
      button.setAttribute("aria-expanded", String(open));
      button.addEventListener("click", async function () {
        if (expanded.has(jobId)) {
          expanded.delete(jobId);
          render();
          return;
        }
        await loadChildren(jobId, CHILDREN_PAGE, null);
      });
      return button;
    }

    async function loadChildren(groupId, limit, after) {
      const query = "?limit=" + limit + (after ? "&after=" + encodeURIComponent(after) : "");
      try {
        const answer = await getJson(jobUrl(groupId, "/children") + query);
        const known = after && expanded.has(groupId) ? expanded.get(groupId).ids : [];
        const ids = known.slice();
        for (const job of answer.jobs) {
          records.set(job.job_id, job);
          if (ids.indexOf(job.job_id) < 0) ids.push(job.job_id);
        }
        Object.assign(actions, answer.actions || {});
        expanded.set(groupId, { ids: ids, next: answer.next_after, total: answer.total });
      } catch (exc) {
        notice = "could not list the children of " + groupId + ": " + exc.message;
      }
      render();
      watch();
    }

    function moreRow(groupId, entry) {
      const tr = el("tr", "child more");
      const cell = el("td", "", "");
      cell.colSpan = 9;
      const button = el("button", "", "Show more children (" + (entry.total - entry.ids.length) + " more)");
      button.type = "button";
      button.addEventListener("click", function () { loadChildren(groupId, CHILDREN_PAGE, entry.next); });
      cell.appendChild(button);
      tr.appendChild(cell);
      return tr;
    }

    function shownOrder() {
      const ids = order.filter(function (jobId) { return records.has(jobId); });
      if (filter || search) return ids; // newest first, as paged
      // "all": what needs a look first, then newest first, on this page.
      return ids.sort(function (a, b) {
        const ra = records.get(a), rb = records.get(b);
        const rank = (ORDER[ra.status] ?? 5) - (ORDER[rb.status] ?? 5);
        if (rank) return rank;
        return String(rb.updated_at || "").localeCompare(String(ra.updated_at || ""));
      });
    }

    function render() {
      // A child of a group opened on this page shows under its group only.
      const under = new Set();
      for (const entry of expanded.values()) for (const childId of entry.ids) under.add(childId);
      const ids = shownOrder().filter(function (jobId) { return !under.has(jobId); });
      const lines = [];
      for (const jobId of ids) {
        const record = records.get(jobId);
        lines.push(row(jobId, record, false));
        const entry = expanded.get(jobId);
        if (!entry) continue;
        for (const childId of entry.ids) {
          if (records.has(childId)) lines.push(row(childId, records.get(childId), true));
        }
        if (entry.next) lines.push(moreRow(jobId, entry));
      }
      tbody.replaceChildren(...lines);
      document.getElementById("empty").hidden = ids.length > 0;
      renderCounts(ids);
      renderPages(ids.length);
    }

    function renderCounts(ids) {
      for (const node of document.querySelectorAll("#filters .count")) {
        const value = counts ? counts[node.dataset.count] : undefined;
        node.textContent = isNumber(value) ? " " + value.toLocaleString() : "";
      }
      const shown = counts || {};
      if (!counts) { // counted on this page only
        for (const jobId of ids) {
          const record = records.get(jobId);
          shown[record.status] = (shown[record.status] || 0) + 1;
          if (stale(record)) shown.stale = (shown.stale || 0) + 1;
        }
      }
      const parts = ["failed", "working", "stale", "queued", "completed", "cancelled"]
        .filter(function (s) { return shown[s]; })
        .map(function (s) { return shown[s].toLocaleString() + " " + s; });
      let text = countsKnown ? parts.join(" · ") : "";
      if (counts) text += (text ? " — " : "") + counts.total.toLocaleString() + " jobs in all";
      else if (parts.length && countsKnown) text += " on this page";
      if (notice) text += (text ? " · " : "") + notice;
      document.getElementById("summary").textContent = text;
    }

    function renderPages(shown) {
      document.getElementById("older").hidden = !next;
      document.getElementById("newest").hidden = cursor === null;
      const first = (pageNumber - 1) * PAGE + 1;
      let text = shown ? first.toLocaleString() + "–" + (first + shown - 1).toLocaleString() : "";
      const of = counts && !search ? (filter ? counts[filter] : counts.total) : null;
      if (text && isNumber(of)) text += " of " + of.toLocaleString() + (filter ? " " + filter : "");
      document.getElementById("range").textContent = text;
    }

    // A job goes stale by not changing: look again now and then.
    setInterval(function () { if (records.size) render(); }, RECHECK);

    function watch() {
      const ids = [];
      for (const [jobId, record] of records) {
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
        if (!records.has(record.job_id)) return;
        const before = records.get(record.job_id);
        records.set(record.job_id, record);
        render();
        // Streams never carry reasons: read the listing again for the new failure's.
        if (record.status === "failed" && before.status !== "failed") schedule(500);
        const open = Array.from(records.values()).some(function (r) { return !finished(r); });
        if (!open && source) { source.close(); source = null; watching = ""; }
      };
      source.onerror = function () {
        if (source) source.close();
        source = null;
        watching = "";
        schedule(2000);
      };
    }

    async function loadCounts() {
      if (!countsServed) return null;
      try {
        return await getJson(base + "/counts");
      } catch (exc) {
        if (exc.status === 404 || exc.status === 501) countsServed = false; // not for this reader
        return null;
      }
    }

    async function load() {
      const params = new URLSearchParams({ limit: String(PAGE) });
      if (filter) params.set("status", filter);
      if (search) params.set(search.by, search.q);
      if (cursor) params.set("cursor", cursor);
      const error = document.getElementById("error");
      // The rows are drawn as soon as they come; the counts (a read of the store's
      // indexes) follow when they do.
      const counting = loadCounts().then(function (found) {
        counts = found;
        countsKnown = true;
        if (records.size || found) render();
      });
      try {
        const answer = await getJson(base + "/jobs?" + params);
        records.clear();
        order = [];
        for (const record of answer.jobs) {
          records.set(record.job_id, record);
          order.push(record.job_id);
        }
        actions = answer.actions || {};
        next = answer.next;
        const groups = Array.from(expanded.entries()).filter(function (e) { return records.has(e[0]); });
        expanded.clear();
        await Promise.all(groups.map(function (e) {
          return loadChildren(e[0], Math.min(Math.max(e[1].ids.length, CHILDREN_PAGE), 500), null);
        }));
        error.hidden = true;
        render();
        watch();
      } catch (exc) {
        error.textContent = "Could not load jobs: " + exc.message;
        error.hidden = false;
      }
      await counting;
      schedule(refresh);
    }

    function schedule(delay) {
      if (timer) clearTimeout(timer);
      timer = setTimeout(load, delay);
    }

    function restart() {
      cursor = null;
      pageNumber = 1;
      notice = "";
      load();
    }

    for (const button of document.querySelectorAll("#filters button")) {
      button.addEventListener("click", function () {
        filter = button.dataset.status;
        for (const other of document.querySelectorAll("#filters button")) {
          other.setAttribute("aria-pressed", String(other === button));
        }
        restart();
      });
    }
    document.getElementById("search").addEventListener("submit", function (event) {
      event.preventDefault();
      const form = event.target;
      const q = form.elements.q.value.trim();
      search = q ? { by: form.elements.by.value, q: q } : null;
      restart();
    });
    document.getElementById("older").addEventListener("click", function () {
      if (!next) return;
      cursor = next;
      pageNumber += 1;
      load();
    });
    document.getElementById("newest").addEventListener("click", restart);
    load();
  }

  // -- one job's page -----------------------------------------------------------------

  function jobPage() {
    const jobId = body.dataset.job;
    const allowed = (body.dataset.actions || "").split(" ").filter(Boolean);
    const section = document.querySelector(".job-section");
    const outer = section.querySelector(".bar");
    const fill = section.querySelector(".fill");
    const result = section.querySelector(".action-result");
    const children = { section: document.querySelector("section.children"), ids: [], next: null, due: 0, timer: null };
    if (body.dataset.listing === "true") document.querySelector("nav.back").hidden = false;

    let last = null;
    let gone = false;

    function fact(list, label, value) {
      if (value === null || value === undefined || value === "") return;
      const dd = el("dd");
      dd.appendChild(value instanceof Node ? value : document.createTextNode(String(value)));
      list.push(el("dt", "", label), dd);
    }

    function render(record) {
      last = record;
      const title = typeof record.name === "string" ? record.name : jobId;
      section.querySelector(".title").textContent = title;
      document.title = title + " · " + (record.status || "unknown");
      const state = section.querySelector(".state");
      state.textContent = record.status || "unknown";
      state.dataset.state = record.status || "";
      for (const badge of section.querySelectorAll(".stale-badge, .badge")) badge.remove();
      if (cancelling(record)) state.after(cancellingBadge(record));
      if (stale(record)) state.after(staleBadge());
      setBar(outer, fill, record);
      section.querySelector(".percent").textContent = percentText(record);
      const left = timeLeft(record);
      section.querySelector(".eta").textContent = left === null ? "" : "about " + span(left) + " left";
      section.querySelector(".detail").textContent = detail(record);
      renderButtons(record);
      renderFacts(record);
      renderHistory(record);
      if (isGroup(record)) groupChanged(record);
    }

    function renderButtons(record) {
      const cancel = section.querySelector("button.cancel");
      cancel.hidden = gone || allowed.indexOf("cancel") < 0 || finished(record) || cancelling(record);
      section.querySelector("button.delete").hidden = gone || allowed.indexOf("delete") < 0;
    }

    function renderFacts(record) {
      const facts = [];
      fact(facts, "Task", typeof record.name === "string" ? record.name : null);
      fact(facts, "Queued", record.queued_at ? timeNode(record.queued_at) : null);
      fact(facts, "Started", record.started_at ? timeNode(record.started_at) : null);
      fact(facts, "Finished", finished(record) && record.finished_at ? timeNode(record.finished_at) : null);
      fact(facts, "Duration", span(runTime(record)));
      fact(facts, "Attempts", isNumber(record.attempts) ? record.attempts : null);
      if (typeof record.parent === "string") {
        const link = el("a", "group-link job-id", record.parent);
        link.href = jobUrl(record.parent, "/view");
        fact(facts, "Group", link);
      }
      if (record.cancel && typeof record.cancel === "object") {
        const why = typeof record.cancel.reason === "string" ? record.cancel.reason : "";
        fact(facts, "Cancel requested", timeText(record.cancel.requested_at) + (why ? " — " + why : ""));
      }
      section.querySelector(".facts").replaceChildren(...facts);
      const fields = [];
      for (const key of Object.keys(record)) {
        if (RESERVED.has(key)) continue;
        fact(fields, key, valueNode(record[key]));
      }
      section.querySelector(".fields").replaceChildren(...fields);
    }

    function renderHistory(record) {
      const history = Array.isArray(record.history) ? record.history : [];
      const list = document.querySelector("ol.timeline");
      const items = history.filter(function (entry) { return entry && typeof entry === "object"; }).map(function (entry) {
        const item = el("li");
        item.dataset.state = String(entry.status || "");
        let text = String(entry.status || "?").replace("_", " ");
        if (isNumber(entry.attempt) && entry.attempt >= 1 && entry.status === "working") {
          text += " (attempt " + entry.attempt + ")";
        }
        item.appendChild(el("span", "", text));
        item.appendChild(timeNode(entry.at));
        return item;
      });
      list.replaceChildren(...items);
      document.querySelector("section.history").hidden = items.length === 0;
    }

    // The children of a group: loaded a page at a time, and read again (at most every
    // two seconds) while the group's record changes, since each change is a child's.
    function groupChanged(record) {
      children.section.hidden = false;
      const total = STATES.reduce(function (sum, s) { return sum + (record.children[s] || 0); }, 0);
      children.section.querySelector(".count").textContent = total.toLocaleString();
      if (children.timer) return;
      children.timer = setTimeout(function () {
        children.timer = null;
        loadChildren(Math.min(Math.max(children.ids.length, CHILDREN_PAGE), 500), null);
      }, Math.max(children.due - Date.now(), 0));
    }

    async function loadChildren(limit, after) {
      children.due = Date.now() + 2000;
      const query = "?limit=" + limit + (after ? "&after=" + encodeURIComponent(after) : "");
      try {
        const answer = await getJson(jobUrl(jobId, "/children") + query);
        const rows = children.section.querySelector("tbody");
        const lines = after ? Array.from(rows.children) : [];
        if (!after) children.ids = [];
        for (const job of answer.jobs) {
          children.ids.push(job.job_id);
          lines.push(childRow(job));
        }
        rows.replaceChildren(...lines);
        children.next = answer.next_after;
        const more = children.section.querySelector("button.more");
        more.hidden = !children.next;
        more.textContent = "More children (" + (answer.total - children.ids.length).toLocaleString() + " more)";
      } catch (exc) {
        children.section.querySelector(".count").textContent = "(" + exc.message + ")";
      }
    }

    function childRow(record) {
      const tr = el("tr");
      tr.dataset.job = record.job_id;
      tr.dataset.state = record.status || "";
      const cell = el("td", "job");
      if (typeof record.name === "string") cell.appendChild(el("div", "name", record.name));
      const link = el("a", "job-link job-id", record.job_id);
      link.href = jobUrl(record.job_id, "/view");
      cell.appendChild(link);
      tr.appendChild(cell);
      tr.appendChild(stateCell(record));
      tr.appendChild(progressCell(record));
      tr.appendChild(labelled("detail", "Reason / step", detail(record)));
      return tr;
    }

    children.section.querySelector("button.more").addEventListener("click", function () {
      loadChildren(CHILDREN_PAGE, children.next);
    });

    function acted(message, record, deleted) {
      result.textContent = message;
      if (deleted) {
        gone = true;
        source.close();
        section.querySelector(".detail").textContent = "This job's record was deleted.";
      }
      if (record) render(record);
      else if (last) renderButtons(last);
    }

    section.querySelector("button.cancel").addEventListener("click", async function (event) {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        const answer = await act(jobId, "cancel");
        acted(answer.cancelled ? "Cancel requested: the job stops at its next step." :
          "The job had already finished.", answer.job);
      } catch (exc) {
        acted("Could not cancel: " + exc.message, null);
      }
      button.disabled = false;
    });
    section.querySelector("button.delete").addEventListener("click", async function () {
      if (!window.confirm("Delete the record of job " + jobId + "?")) return;
      try {
        await act(jobId, "delete");
        acted("Deleted.", null, true);
      } catch (exc) {
        acted("Could not delete: " + exc.message, null);
      }
    });

    setInterval(function () { if (last && !gone) render(last); }, RECHECK);

    const source = new EventSource(jobUrl(jobId, "/events"));
    source.onmessage = function (event) {
      const record = JSON.parse(event.data);
      render(record);
      if (finished(record)) source.close();
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED && !gone) {
        section.querySelector(".detail").textContent = "This job is no longer available.";
      }
    };
  }

  if (body.dataset.page === "dashboard") dashboard();
  if (body.dataset.page === "job") jobPage();
})();
