// The flow table of the csaudit HTML report: decode the rows, filter, sort, page. Hand-written and
// small on purpose: the page loads nothing from anywhere (see csaudit/report/htmlpage.py).
(function () {
  "use strict";
  var PAGE = 1000;
  var SHOWN = ["status", "zone", "rule", "source", "target", "port", "expect", "vantage", "detail", "id"];
  var FILTERS = ["status", "zone", "rule", "vantage"];
  var data = JSON.parse(document.getElementById("flow-data").textContent);
  var columns = data.columns, strings = [], flows = [];
  data.rows.forEach(function (row) {
    // a text cell is the text the first time it appears, then its index (htmlpage._Strings)
    var flow = {};
    for (var i = 1; i < columns.length; i++) {
      var cell = row[i];
      if (typeof cell === "string") { strings.push(cell); } else { cell = strings[cell]; }
      flow[columns[i]] = cell;
    }
    flow.id = row[0] === 0 ? flow.rule + ":" + flow.source + "->" + flow.target + ":" + flow.port : row[0];
    flows.push(flow);
  });
  data = null;

  var table = document.getElementById("flow-table"), body = table.tBodies[0];
  var shown = document.getElementById("shown"), text = document.getElementById("filter-text");
  var view = flows, start = 0, sortKey = null, sortDir = 1;

  FILTERS.forEach(function (name) {
    var select = document.getElementById("filter-" + name), counts = {};
    flows.forEach(function (f) { counts[f[name]] = (counts[f[name]] || 0) + 1; });
    Object.keys(counts).sort().forEach(function (value) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = (value || "(none)") + " (" + counts[value].toLocaleString() + ")";
      select.appendChild(option);
    });
    select.addEventListener("change", update);
  });
  text.addEventListener("input", update);

  function portNumber(port) { return parseInt(port, 10) || 0; }
  function compare(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (sortKey === "port") { x = portNumber(x); y = portNumber(y); }
    if (sortKey === "source" || sortKey === "target") { x += "\u0001" + a[sortKey + "_address"]; y += "\u0001" + b[sortKey + "_address"]; }
    return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
  }
  function update() {
    var wanted = {}, needle = text.value.toLowerCase();
    FILTERS.forEach(function (name) { wanted[name] = document.getElementById("filter-" + name).value; });
    view = flows.filter(function (f) {
      for (var name in wanted) { if (wanted[name] && f[name] !== wanted[name]) { return false; } }
      return !needle || (f.id + " " + f.source_address + " " + f.target_address + " " + f.detail).toLowerCase().indexOf(needle) >= 0;
    });
    if (sortKey) { view.sort(compare); }
    start = 0;
    render();
  }
  function endpoint(name, address) { return address && address !== name ? name + " (" + address + ")" : name; }
  function render() {
    var rows = document.createDocumentFragment();
    view.slice(start, start + PAGE).forEach(function (f) {
      var tr = document.createElement("tr");
      tr.dataset.id = f.id;
      tr.dataset.status = f.status;
      var values = {status: f.status, zone: f.zone, rule: f.rule + " " + f.title, source: endpoint(f.source, f.source_address),
                    target: endpoint(f.target, f.target_address), port: f.port, expect: f.expect, vantage: f.vantage,
                    detail: f.detail, id: f.id};
      SHOWN.forEach(function (name) {
        var td = document.createElement("td");
        td.className = name === "status" ? "s-" + f.status : name;
        td.textContent = values[name];
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
    shown.dataset.count = view.length;
    shown.textContent = view.length ? "flows " + (start + 1).toLocaleString() + "–" +
      Math.min(start + PAGE, view.length).toLocaleString() + " of " + view.length.toLocaleString() +
      " shown (" + flows.length.toLocaleString() + " in the report)" : "no flow matches (" + flows.length.toLocaleString() + " in the report)";
    document.getElementById("previous").disabled = start === 0;
    document.getElementById("next").disabled = start + PAGE >= view.length;
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    function sort() {
      sortDir = sortKey === th.dataset.sort ? -sortDir : 1;
      sortKey = th.dataset.sort;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      update();
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (event) { if (event.key === "Enter") { sort(); } });
  });
  document.getElementById("previous").addEventListener("click", function () { start = Math.max(0, start - PAGE); render(); });
  document.getElementById("next").addEventListener("click", function () { start += PAGE; render(); });
  Array.prototype.forEach.call(document.querySelectorAll("button.show"), function (button) {
    button.addEventListener("click", function () {
      FILTERS.forEach(function (name) { document.getElementById("filter-" + name).value = ""; });
      document.getElementById("filter-status").value = button.dataset.status;
      document.getElementById("filter-rule").value = button.dataset.rule;
      text.value = "";
      update();
      document.getElementById("flows").scrollIntoView();
    });
  });
  update();
}());
