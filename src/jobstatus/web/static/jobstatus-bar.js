// jobstatus drop-in bar: a live progress bar for one job, on any page of your own.
//
//   <div id="bar"></div>
//   <script src="https://your.app/status/static/jobstatus-bar.js"></script>
//   <script>
//     JobStatusBar.initProgressBar("https://your.app/status/jobs/JOB_ID", {
//       element: "#bar",
//       onProgress(job) {}, onSuccess(job) {}, onFailure(job) {}, onCancel(job) {},
//       onError(error) {},   // the job is unknown, or cannot be read from this page
//     });
//   </script>
//
// It follows the job through /events (EventSource) and falls back to reading the
// job every `pollInterval` ms where EventSource is missing or its stream cannot
// be opened. Theme it with CSS variables on the element or any ancestor:
// --jobstatus-height, --jobstatus-radius, --jobstatus-track, --jobstatus-queued,
// --jobstatus-working, --jobstatus-completed, --jobstatus-failed,
// --jobstatus-cancelled, --jobstatus-label-color, --jobstatus-font. Job values
// reach the page only as text. No build step, no dependencies.
(function (global) {
  "use strict";

  var FINISHED = { completed: "onSuccess", failed: "onFailure", cancelled: "onCancel" };
  var COLORS = {
    queued: "var(--jobstatus-queued, #a16207)",
    working: "var(--jobstatus-working, #2563eb)",
    completed: "var(--jobstatus-completed, #15803d)",
    failed: "var(--jobstatus-failed, #c81e1e)",
    cancelled: "var(--jobstatus-cancelled, #6b7280)",
  };

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function span(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + String(seconds % 60).padStart(2, "0") + "s";
    return Math.floor(seconds / 3600) + "h " + String(Math.floor(seconds % 3600 / 60)).padStart(2, "0") + "m";
  }

  // What the label says when the page does not say otherwise.
  function describe(job) {
    var parts = [job.status || "unknown"];
    if (job.status === "failed" && job.exception && typeof job.exception === "object") {
      parts = ["failed: " + (job.exception["class"] ? job.exception["class"] + ": " : "") + (job.exception.message || "")];
    }
    if (isNumber(job.percent) && job.status !== "failed") parts.push(Math.floor(job.percent) + "%");
    if (job.status === "working" && isNumber(job.eta) && job.eta >= 0.5) parts.push("about " + span(job.eta) + " left");
    return parts.join(" · ");
  }

  function build(element, styled) {
    var track = document.createElement("div");
    var fill = document.createElement("div");
    var label = document.createElement("div");
    track.className = "jobstatus-bar";
    fill.className = "jobstatus-bar-fill";
    label.className = "jobstatus-bar-label";
    track.setAttribute("role", "progressbar");
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "100");
    track.appendChild(fill);
    if (styled) {
      // Set through the CSSOM, which a page's Content-Security-Policy allows.
      track.style.height = "var(--jobstatus-height, 0.75rem)";
      track.style.borderRadius = "var(--jobstatus-radius, 999px)";
      track.style.background = "var(--jobstatus-track, #e8ebf0)";
      track.style.overflow = "hidden";
      fill.style.height = "100%";
      fill.style.width = "0";
      fill.style.borderRadius = "inherit";
      fill.style.transition = "width 0.3s ease";
      label.style.font = "var(--jobstatus-font, inherit)";
      label.style.marginTop = "0.3em";
      label.style.color = "var(--jobstatus-label-color, inherit)";
    }
    element.replaceChildren(track, label);
    return { track: track, fill: fill, label: label };
  }

  function initProgressBar(url, options) {
    options = options || {};
    var element = options.element || "#jobstatus-bar";
    if (typeof element === "string") element = document.querySelector(element);
    if (!element) throw new Error("jobstatus-bar: no element " + String(options.element || "#jobstatus-bar"));
    var jobUrl = String(url).split("?")[0].replace(/\/+$/, "");
    var pollInterval = options.pollInterval || 1000;
    var parts = build(element, options.styled !== false);
    var source = null;
    var timer = null;
    var stopped = false;
    var failing = false;

    function call(name, value) {
      if (typeof options[name] === "function") {
        try { options[name](value); } catch (exc) { setTimeout(function () { throw exc; }); }
      }
    }

    function show(job) {
      var percent = isNumber(job.percent) ? Math.min(Math.max(job.percent, 0), 100) :
        job.status === "completed" ? 100 : 0;
      parts.track.dataset.state = job.status || "";
      parts.track.setAttribute("aria-valuenow", String(Math.floor(percent)));
      parts.fill.style.width = percent + "%";
      if (options.styled !== false) parts.fill.style.background = COLORS[job.status] || COLORS.working;
      var text = typeof options.label === "function" ? options.label(job) : describe(job);
      if (options.label !== false) parts.label.textContent = text;
    }

    function take(job) {
      if (stopped || !job || typeof job !== "object") return;
      failing = false;
      show(job);
      var ending = FINISHED[job.status];
      if (ending) {
        stop();
        call(ending, job);
      } else {
        call("onProgress", job);
      }
    }

    function fail(error) {
      if (failing) return; // once per run of failures
      failing = true;
      parts.track.dataset.state = "error";
      if (options.label !== false) parts.label.textContent = error.message;
      call("onError", error);
    }

    function poll() {
      if (stopped) return;
      fetch(jobUrl, { headers: { Accept: "application/json" }, credentials: options.credentials || "same-origin" })
        .then(function (response) {
          if (response.status === 404) {
            stop();
            fail({ status: 404, message: "no such job" });
            return null;
          }
          if (!response.ok) throw { status: response.status, message: "the status endpoint answered " + response.status };
          return response.json();
        })
        .then(function (job) { if (job) take(job); })
        .catch(function (error) {
          fail({ status: error.status || 0, message: error.message || "the status endpoint cannot be reached" });
        })
        .then(function () { if (!stopped) timer = setTimeout(poll, pollInterval); });
    }

    function follow() {
      source = new global.EventSource(jobUrl + "/events");
      source.onmessage = function (event) {
        try { take(JSON.parse(event.data)); } catch (exc) { /* not a job: wait for the next */ }
      };
      source.onerror = function () {
        // Closed for good (a 404, a refused CORS request, or no stream before any
        // event): read the job by polling instead, which also tells a 404 apart.
        if (source && source.readyState === global.EventSource.CLOSED && !stopped) {
          source = null;
          poll();
        }
      };
    }

    function stop() {
      stopped = true;
      if (source) source.close();
      source = null;
      if (timer) clearTimeout(timer);
      timer = null;
    }

    if (options.poll || typeof global.EventSource !== "function") poll();
    else follow();
    return { stop: stop, element: element };
  }

  global.JobStatusBar = { initProgressBar: initProgressBar };
})(window);
