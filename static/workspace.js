// The dashboard's workspace card: while a start or stop is in flight, shows
// its steps as /api/workspace/events reports them and reloads the page when
// it settles. The page works without it (forms and a reload).
(function () {
  "use strict";
  var card = document.querySelector("[data-workspace-state]");
  if (!card || !window.EventSource) return;
  var state = card.getAttribute("data-workspace-state");
  var busy = { starting: true, stopping: true, waking: true, migrating: true };
  if (!busy[state]) return;
  var list = card.querySelector(".workspace-steps");
  var labels = {
    "starting": "Starting",
    "creating-runtime": "Creating the Python runtime",
    "waiting-for-health": "Waiting for it to answer",
    "starting-editor": "Starting the editor",
    "restarting": "Restarting",
    "ready": "Ready",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "stopping": "Stopping",
    "stopped": "Stopped",
    "stop-failed": "Could not stop"
  };
  var final = { ready: true, failed: true, cancelled: true, stopped: true, "stop-failed": true };
  var source = new EventSource("/api/workspace/events");
  function settle() {
    source.close();
    window.setTimeout(function () { window.location.reload(); }, 250);
  }
  Object.keys(labels).forEach(function (name) {
    source.addEventListener(name, function (event) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { /* keep the label alone */ }
      var item = document.createElement("li");
      item.textContent = labels[name] + (data.container ? " (" + data.container + ")" : "") +
        (data.reason ? ": " + data.reason : "");
      list.appendChild(item);
      if (final[name]) settle();
    });
  });
  source.addEventListener("state", function (event) {
    var data = JSON.parse(event.data);
    if (data.state !== state && !busy[data.state]) settle();  // it settled before we listened
  });
})();
