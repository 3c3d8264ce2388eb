// The catalog import page follows the read: its progress is polled and shown, and
// the page reloads (to show the result) once the import is no longer running.
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("ps-catalog-import");
    if (!root || root.getAttribute("data-done") === "1") { return; }
    var url = root.getAttribute("data-progress-url");
    var seconds = parseInt(root.getAttribute("data-refresh-seconds"), 10) || 2;
    var bar = document.getElementById("ps-import-bar");
    function set(id, text) {
      var node = document.getElementById(id);
      if (node) { node.textContent = text; }
    }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (state) {
          if (state.done) { window.location.reload(); return; }
          set("ps-import-count", state.items_read);
          set("ps-import-pages", state.pages);
          set("ps-import-calls", state.calls);
          if (state.total !== null) { set("ps-import-total", "of " + state.total); }
          if (state.percent !== null && bar) {
            bar.setAttribute("max", "100");
            bar.setAttribute("value", state.percent);
          }
        })
        .catch(function () { /* the next poll tries again */ });
    }
    window.setInterval(poll, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", start);
})();
