//! The pages' style sheet and script: small, written here, served by the
//! binary itself (nothing fetched at run time).

pub const CSS: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #fafbfc; }
nav { display: flex; gap: 1em; align-items: center; padding: .6em 1em; background: #1d2330; }
nav a { color: #cfd6e4; text-decoration: none; }
nav a.active { color: #fff; font-weight: 600; border-bottom: 2px solid #6cb2ff; }
nav .brand { color: #6cb2ff; font-weight: 700; margin-right: 1em; }
nav .json { margin-left: auto; font-size: 12px; }
main { padding: 1em 1.5em; }
h1 { font-size: 20px; margin: .2em 0 .6em; }
h2 { font-size: 15px; margin: 1.2em 0 .3em; }
form.filters { display: flex; flex-wrap: wrap; gap: .6em 1em; align-items: end; margin-bottom: .8em; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
form.filters input, form.filters select { font: inherit; padding: 2px 4px; }
#time-slider { width: 280px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
th a { color: inherit; }
code { font: 12px/1.3 ui-monospace, monospace; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: .4em .8em; }
.error { background: #ffe3e3; border-left: 4px solid #d33; padding: .4em .8em; }
.state.following { color: #137333; } .state.lagging { color: #b06000; }
.state.unreachable { color: #c5221f; font-weight: 600; } .state.waiting { color: #777; }
.gaps { color: #c5221f; } li.here { font-weight: 600; }
.count { color: #555; }
svg.timeline { width: 100%; max-height: 420px; background: #fff; margin: .5em 0; }
svg.timeline text { font: 10px ui-monospace, monospace; }
svg.timeline .v0 { fill: #6cb2ff; } svg.timeline .v1 { fill: #2a6fc0; } svg.timeline .gap { fill: #f28b82; }
.by { font: 12px ui-monospace, monospace; } .reason { color: #555; }
tr.fresh { animation: fresh 2s; }
@keyframes fresh { from { background: #d7f5dd; } to { background: transparent; } }
"#;

pub const JS: &str = r##"
"use strict";
(function () {
  // The JSON twin of this very page: the same URL with format=json.
  var twin = document.getElementById("json-twin");
  if (twin) {
    var u = new URL(location.href);
    u.searchParams.set("format", "json");
    twin.href = u.pathname + u.search;
  }
  // The time slider moves the page's moment: the field follows while it
  // slides, the page reloads when it is let go.
  var slider = document.getElementById("time-slider");
  if (slider) {
    var at = slider.form.elements["at"];
    slider.addEventListener("input", function () {
      at.value = new Date(slider.value * 1000).toISOString().replace(".000Z", "Z");
    });
    slider.addEventListener("change", function () {
      at.value = new Date(slider.value * 1000).toISOString().replace(".000Z", "Z");
      var after = slider.form.elements["after"];
      if (after) after.disabled = true;
      slider.form.submit();
    });
  }
  // Live: each change the server sends becomes a row.
  if (document.body.dataset.page === "live") {
    var state = document.getElementById("live-state");
    var body = document.querySelector("#live tbody");
    var skip = ["time", "host", "action", "origin", "seq", "stream_id", "netns", "key", "object", "family",
                "changed_by", "reason"];
    // Who made the change, as the pages show it: ip[4242], kernel.
    var byText = function (b, reason) {
      var s = "";
      if (b && b.kernel) s = "kernel";
      else if (b && b.comm && b.pid) s = b.comm + "[" + b.pid + "]" + (b.pod_uid ? " pod " + b.pod_uid : "");
      else if (b && b.port_id !== undefined) s = "port " + b.port_id + (b.how === "exited" ? " (exited)" : "");
      if (reason) s += (s ? " " : "") + "(" + reason + ")";
      return s;
    };
    var source = new EventSource("/live/events" + location.search);
    source.onopen = function () { state.textContent = "following: new changes appear below as they are stored"; };
    source.onerror = function () { state.textContent = "disconnected; retrying…"; };
    source.addEventListener("change", function (e) {
      var c = JSON.parse(e.data);
      var words = [];
      Object.keys(c).forEach(function (k) {
        var v = c[k];
        if (skip.indexOf(k) >= 0 || v === null || (Array.isArray(v) && v.length === 0)) return;
        words.push(k + " " + (typeof v === "string" ? v : JSON.stringify(v)));
      });
      var tr = document.createElement("tr");
      tr.className = "fresh";
      [c.time, c.host, c.action, byText(c.changed_by, c.reason)].forEach(function (t) {
        var td = document.createElement("td");
        td.textContent = t || "";
        tr.appendChild(td);
      });
      var td = document.createElement("td");
      var code = document.createElement("code");
      code.textContent = words.join(" ");
      td.appendChild(code);
      tr.appendChild(td);
      body.appendChild(tr);
    });
    source.addEventListener("problem", function (e) { state.textContent = e.data; });
  }
})();
"##;
