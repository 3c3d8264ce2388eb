// Ops dashboard: re-fetch the body fragment every few seconds and swap it in.
// Without JavaScript the page refreshes itself through a <noscript> meta refresh.
(function () {
  "use strict";
  document.documentElement.classList.add("ps-js");

  function start() {
    var root = document.getElementById("ps-ops");
    if (!root) { return; }
    var url = root.getAttribute("data-body-url");
    var seconds = parseInt(root.getAttribute("data-refresh-seconds"), 10) || 15;
    var problem = document.getElementById("ps-ops-error");
    var updated = document.getElementById("ps-ops-updated");
    var busy = false;
    var stopped = false;

    function say(text) {
      problem.textContent = text ? " · " + text : "";
    }

    function refresh() {
      // A hidden tab does not poll; it refreshes as soon as it is shown again.
      if (busy || stopped || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
        .then(function (response) {
          if (response.redirected || response.status === 403) {
            stopped = true;
            say("session ended: reload the page to log in again");
            return null;
          }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          root.innerHTML = html;
          var body = root.querySelector(".ps-ops-body");
          if (updated && body) {
            updated.textContent = body.getAttribute("data-updated-label");
            updated.setAttribute("datetime", body.getAttribute("data-updated"));
          }
          say("");
        })
        .catch(function (error) {
          say("refresh failed (" + error.message + "), retrying");
        })
        .finally(function () { busy = false; });
    }

    window.setInterval(refresh, seconds * 1000);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { refresh(); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
