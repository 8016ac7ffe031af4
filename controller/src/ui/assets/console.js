// Rotor console: the only script. Served from /ui/static/ under a CSP without inline script.
// It refreshes a running fleet rotation's progress block from the server (which renders it),
// and does nothing else; every page works without it (reload to refresh).
"use strict";

(function () {
  var POLL_MS = 1500;

  function runState(container) {
    var run = container.querySelector("#run");
    return run ? run.getAttribute("data-state") : "";
  }

  function poll(container) {
    var url = container.getAttribute("data-progress-url");
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("progress answered " + response.status); }
        return response.text();
      })
      .then(function (fragment) {
        // The fragment is HTML the server rendered with every value escaped.
        container.innerHTML = fragment;
        if (runState(container) === "running") {
          window.setTimeout(function () { poll(container); }, POLL_MS);
        } else {
          // Finished: reload once so the stop button goes and the page is whole.
          window.location.reload();
        }
      })
      .catch(function () {
        window.setTimeout(function () { poll(container); }, POLL_MS * 4);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var container = document.getElementById("progress");
    if (container && container.getAttribute("data-progress-url") && runState(container) === "running") {
      window.setTimeout(function () { poll(container); }, POLL_MS);
    }
  });
})();
