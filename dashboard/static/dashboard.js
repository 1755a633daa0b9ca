// pollable dashboard: follow the request log live. Vanilla JS, same origin only; the page
// works without it (a reload shows the newest entries).
"use strict";
(function () {
  var log = document.getElementById("log");
  if (!log || !log.dataset.follow) {
    return;
  }
  var every = Number(log.dataset.follow) || 2000;
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("log-rows");
        var rows = document.getElementById("log-rows");
        if (fresh && rows) { rows.replaceWith(fresh); }
      })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
