// "Starting your workspace": follows the start's progress and reloads the
// page once the workspace is running. Without JavaScript, the page's meta
// refresh reloads it every few seconds instead.
(function () {
  "use strict";
  var status = document.getElementById("status");
  if (!window.EventSource || !status) return;
  var labels = {
    "creating-runtime": "Creating your Python runtime…",
    "starting-editor": "Starting your editor…",
    "waiting-for-health": "Waiting for everything to answer…",
    "waking": "Waking your workspace…",
    "ready": "Ready."
  };
  // On a workspace's own origin the page names that origin's event stream.
  var events = new EventSource(status.getAttribute("data-events") || "/api/workspace/events");
  function onStep(name, data) {
    if (name === "ready") {
      events.close();
      window.location.reload();
      return;
    }
    if (name === "failed") {
      events.close();
      var reason = "";
      try { reason = JSON.parse(data).reason || ""; } catch (e) { reason = data || ""; }
      status.textContent = "Your workspace could not start" + (reason ? ": " + reason : ".") +
        " Reload to try again.";
      return;
    }
    if (labels[name]) status.textContent = labels[name];
  }
  Object.keys(labels).concat(["failed"]).forEach(function (name) {
    events.addEventListener(name, function (e) { onStep(name, e.data); });
  });
  events.onmessage = function (e) {
    try { var m = JSON.parse(e.data); onStep(m.step || m.event || "", e.data); } catch (err) {}
  };
})();
