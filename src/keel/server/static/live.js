// Keel dashboard: live updates. When the store changes, the server says so over server-sent events and this script
// refetches the current page's content (rendered and escaped on the server) in place. No templates, no framework.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var badge = document.getElementById("live-status");
  if (!main || !window.EventSource || !window.fetch) return;

  var busy = false, again = false;

  function typing() {
    var el = document.activeElement;
    return el && main.contains(el) && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }

  function refresh() {
    if (busy) { again = true; return; }
    if (typing()) { setTimeout(refresh, 1500); return; }  // never swap a form away while someone types in it
    busy = true;
    var open = Array.prototype.map.call(main.querySelectorAll("details[id]"), function (d) { return [d.id, d.open]; });
    fetch(location.href, { headers: { "X-Keel-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        main.innerHTML = html;
        open.forEach(function (pair) {
          var d = document.getElementById(pair[0]);
          if (d) d.open = pair[1];
        });
        main.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource("/live");
  source.onopen = function () { if (badge) { badge.setAttribute("data-state", "open"); badge.textContent = "live"; } };
  source.onerror = function () { if (badge) { badge.setAttribute("data-state", "closed"); badge.textContent = "reconnecting"; } };
  source.addEventListener("unavailable", function () {
    if (badge) { badge.setAttribute("data-state", "closed"); badge.textContent = "store unavailable"; }
  });
  source.onmessage = refresh;
})();
