"""The report page's stylesheet and script, inlined by render.py (the page fetches nothing) and allowed
by their SHA-256 in the page's Content-Security-Policy, so no other script or style can run."""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--panel:#f6f8fa;--line:#d1d9e0;
--breached:#c62828;--not_protected:#c25100;--missing:#9a6700;--met:#2e7d32;--opted_out:#6e7781;--unknown:#8250df;
--not_supported:#6f42c1;
--vault:#1565c0;--snapshot_set:#00897b;--restore_point:#8e24aa;--copy:#e0a100;--snapshot_copy:#4db6ac;
--restore_point_copy:#ce93d8;
--v0:#1f77b4;--v1:#ff7f0e;--v2:#2ca02c;--v3:#9467bd;--v4:#8c564b;--v5:#e377c2;--v6:#17becf;--v7:#a5a61b;
--v8:#5254a3;--v9:#7f7f7f}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--panel:#151b23;
--line:#3d444d;--breached:#f85149;--not_protected:#f0883e;--missing:#d29922;--met:#3fb950;--opted_out:#8b949e;
--not_supported:#a371f7;
--v0:#4fa3e0;--v1:#ffa54f;--v2:#5cd65c;--v3:#b99be0;--v4:#c49c94;--v5:#f7b6d2;--v6:#5fd9e6;--v7:#dbdb5c;
--v8:#9c9ede;--v9:#b0b0b0}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0 auto;max-width:1440px;padding:1rem clamp(.5rem,2.5vw,2rem);color:var(--fg);background:var(--bg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
h1{font-size:1.5rem;margin:.2rem 0 .3rem}
h2{font-size:1.15rem;margin:0 0 .6rem}
p,li,summary{overflow-wrap:anywhere}
a{color:inherit}
.meta{margin:.2rem 0;color:var(--muted)}
nav ul{display:flex;flex-wrap:wrap;gap:.2rem 1rem;list-style:none;margin:.5rem 0 0;padding:0}
.notes{margin:.8rem 0;padding:.5rem .8rem;border-left:4px solid var(--not_protected);background:var(--panel)}
.notes ul{margin:.3rem 0 0;padding-left:1.2rem}
section{margin:1rem 0;padding:1rem;border:1px solid var(--line);border-radius:8px;background:var(--panel);
min-width:0}
.empty{color:var(--muted);font-style:italic;margin:0}
.scroll{overflow-x:auto;max-width:100%}
.vm-scroll{max-height:75vh;overflow:auto}
table{border-collapse:collapse;width:100%;font-size:.875rem;background:var(--bg)}
caption{text-align:left;color:var(--muted);padding:.3rem 0}
th,td{padding:.35rem .55rem;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
th{white-space:nowrap;font-weight:600}
thead th{background:var(--panel)}
#vm-table thead th{position:sticky;top:0;z-index:1}
#vm-table .id{min-width:0;white-space:nowrap}
#vm-table .long{min-width:9rem;max-width:22rem}
#vm-table{font-size:.84rem}
#vm-table th,#vm-table td{padding:.3rem .4rem}
#vm-table th{white-space:normal}
tfoot td{font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.long{min-width:14rem;max-width:36rem}
.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.8rem;min-width:12rem;
max-width:28rem;overflow-wrap:anywhere}
.when{white-space:nowrap}
.none{color:var(--muted)}
tr[hidden]{display:none}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.78rem;font-weight:600;
color:#fff;white-space:nowrap}
.s-breached{background:var(--breached)}.s-not_protected{background:var(--not_protected)}
.s-missing{background:var(--missing)}small.missing{color:var(--missing);font-weight:600}small.immutable{font-weight:600}
.s-met{background:var(--met)}.s-opted_out{background:var(--opted_out)}.s-unknown{background:var(--unknown)}
.s-not_supported{background:var(--not_supported)}
.k{white-space:nowrap;font-variant-numeric:tabular-nums}
.k-breached{color:var(--breached);font-weight:600}.k-missing{color:var(--missing);font-weight:600}
.k-na,.k-unknown{color:var(--muted)}.k-initial_replication{color:var(--vault);font-style:italic}small.health{font-weight:600}
.f-breached{fill:var(--breached)}.f-not_protected{fill:var(--not_protected)}.f-missing{fill:var(--missing)}
.f-met{fill:var(--met)}
.f-opted_out{fill:var(--opted_out)}.f-unknown{fill:var(--unknown)}.f-not_supported{fill:var(--not_supported)}
.f-vault{fill:var(--vault)}.f-snapshot_set{fill:var(--snapshot_set)}.f-restore_point{fill:var(--restore_point)}
.f-copy{fill:var(--copy)}.f-snapshot_copy{fill:var(--snapshot_copy)}
.f-restore_point_copy{fill:var(--restore_point_copy)}
.b-vault{background:var(--vault)}.b-snapshot_set{background:var(--snapshot_set)}
.b-restore_point{background:var(--restore_point)}.b-copy{background:var(--copy)}
.b-snapshot_copy{background:var(--snapshot_copy)}.b-restore_point_copy{background:var(--restore_point_copy)}.b-unknown{background:var(--unknown)}
svg.bar{display:block;width:100%;min-width:8rem;height:.9rem;margin-top:.2rem;background:var(--line);border-radius:3px}
.chart-wrap{overflow-x:auto;max-width:100%;background:var(--bg);border-radius:6px}
svg.chart{display:block;width:100%;min-width:540px;height:auto}
.chart text{fill:var(--muted);font-size:11px}
.chart .grid{stroke:var(--line)}.chart .axis{stroke:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:.2rem 1rem;list-style:none;padding:0;margin:.5rem 0}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;vertical-align:-.05em}
.v0{--sc:var(--v0)}.v1{--sc:var(--v1)}.v2{--sc:var(--v2)}.v3{--sc:var(--v3)}.v4{--sc:var(--v4)}
.v5{--sc:var(--v5)}.v6{--sc:var(--v6)}.v7{--sc:var(--v7)}.v8{--sc:var(--v8)}.v9{--sc:var(--v9)}
.drill-chart .ln{fill:none;stroke:var(--sc);stroke-width:1.2;opacity:.7}
.drill-chart .pt,.key .pt{fill:var(--sc);stroke:var(--bg);stroke-width:.8}
.drill-chart .fail{fill:none;stroke:var(--breached);stroke-width:2.4;stroke-linecap:round}
.drill-chart .ring{fill:var(--bg);stroke:var(--sc);stroke-width:1.8;stroke-dasharray:2.5 1.5}
.drill-chart .lane{stroke:var(--line);stroke-dasharray:3 3}.drill-chart .tick{stroke:var(--muted)}
.drill-chart:has(.series:hover) .series:not(:hover){opacity:.15}
.drill-chart .series:hover .ln{stroke-width:2.4;opacity:1}
svg.key{width:.9em;height:.9em;margin-right:.35em;vertical-align:-.1em;overflow:visible}
.d-passed{background:var(--met)}.d-failed{background:var(--breached)}.d-running{background:var(--vault)}
.d-unknown{background:var(--unknown)}
details{margin-top:.6rem}
summary{cursor:pointer}
.controls{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin-bottom:.6rem}
.controls[hidden]{display:none}
#filter-state{display:flex;flex-wrap:wrap;gap:.3rem}
.controls button{font:inherit;font-size:.85rem;padding:.25rem .6rem;border:1px solid var(--line);
border-radius:999px;background:var(--bg);color:var(--fg);cursor:pointer}
.controls button[aria-pressed=true]{background:var(--fg);color:var(--bg);border-color:var(--fg)}
.controls label{display:flex;gap:.4rem;align-items:center;min-width:0}
.controls input{font:inherit;padding:.25rem .5rem;min-width:0;width:14rem;max-width:100%;
border:1px solid var(--line);border-radius:4px;background:var(--bg);color:var(--fg)}
#vm-count{margin:0 0 .4rem;color:var(--muted)}
th button{all:unset;cursor:pointer}
th button:focus-visible{outline:2px solid var(--fg);outline-offset:2px}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
@media (max-width:600px){body{font-size:14px}section{padding:.6rem}h1{font-size:1.25rem}}
.verdict{font-size:1.2rem;font-weight:600;margin:.3rem 0 .5rem;padding:.5rem .8rem;border-radius:6px;
border-left:6px solid var(--breached);background:var(--panel);overflow-wrap:anywhere}
.v-met{border-left-color:var(--met)}
.actions{margin:0;padding-left:1.6rem}.actions li{margin:.35rem 0;overflow-wrap:anywhere}
.actions small{color:var(--muted)}
.code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:nowrap}
/* A phone: each VM a card (name, state, reason, then each kind that applies, labelled), no sideways scroll. */
@media (max-width:700px){
.vm-scroll{overflow-x:hidden}
#vm-table,#vm-table tbody{display:block}
#vm-table thead{display:none}
#vm-table caption{display:block}
#vm-table tr{display:flex;flex-wrap:wrap;align-items:baseline;gap:.1rem .7rem;padding:.45rem .2rem;
border-bottom:1px solid var(--line)}
#vm-table tr[hidden]{display:none}
#vm-table td{display:block;border:0;padding:0}
#vm-table td:first-child{font-weight:600;overflow-wrap:anywhere;min-width:0}
#vm-table td:nth-child(2),#vm-table td:nth-child(4),#vm-table td.k-na{display:none}
#vm-table td:nth-child(3)::before{content:"rg "}#vm-table td:nth-child(5)::before{content:"policy "}
#vm-table td:nth-child(3)::before,#vm-table td:nth-child(5)::before,#vm-table td.k::before{color:var(--muted);
font-weight:400}
#vm-table .long{flex-basis:100%;min-width:0;max-width:none}
#vm-table td.k{white-space:normal}
.c-vault::before{content:"vault "}.c-snapshot_set::before{content:"snapshot "}
.c-restore_point::before{content:"restore point "}.c-snapshot_copy::before{content:"snapshot copy "}
.c-restore_point_copy::before{content:"restore point copy "}.c-copy::before{content:"copy "}
.c-replica::before{content:"replica "}
}
"""

# The VM table's filters and sorting. Works on a row list read once: filtering toggles `hidden` only
# on rows that change, sorting is one sort of precomputed keys and one re-append (no O(n²) DOM work).
# A big fleet's rows come as data (#vm-data, shared/report/vm_data.py): the list is that data, and only the first
# LIMIT rows that match are drawn (as one innerHTML), every value escaped here.
SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("vm-table");
  var controls = document.getElementById("vm-controls");
  var count = document.getElementById("vm-count");
  if (!table || !controls || !count) return;
  var tbody = table.tBodies[0], more = document.getElementById("vm-more");
  var source = document.getElementById("vm-data"), data = null, LIMIT = 200, items;
  var ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"};
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  if (source) {
    data = JSON.parse(source.textContent);
    items = data.v.map(function (v) {
      return {v: v, state: data.t[v[6]], name: v[0].toLowerCase(), shown: true};
    });
  } else {
    items = Array.prototype.map.call(tbody.rows, function (row) {
      return {row: row, state: row.getAttribute("data-state"),
              name: row.cells[0].textContent.toLowerCase(), shown: !row.hidden};
    });
  }
  function hours(h) { return Number.isInteger(h) ? String(h) : h.toFixed(1); }
  function kindCell(c, kind) {
    if (c === 0) return '<td class="k k-na" data-sort="">\u2014</td>';
    var cls = esc(data.t[c[0]]);
    if (kind === "replica") {
      var mark = c[3] && c[3] !== "Normal" ? '<small class="health">' + esc(c[3]) + "</small> " : "";
      return '<td class="k k-' + cls + ' c-replica" data-sort="' + esc(c[2]) + '" data-health="' + esc(c[3]) + '"' +
        (c.length > 4 ? ' title="' + esc(c[4]) + '"' : "") + ">" + mark + esc(c[1]) + "</td>";
    }
    var age = c[1];
    var text = (age === null ? "none" : age.toFixed(1) + " h") + " / " + hours(c[2]) + " h";
    return '<td class="k k-' + cls + " c-" + esc(kind) + '" data-sort="' + (age === null ? "Infinity" : age) + '"' +
      (c.length > 3 ? ' title="' + esc(c[3]) + '"' : "") + ">" + esc(text) + "</td>";
  }
  function rowHtml(v) {
    var t = data.t, state = t[v[6]], sub = data.s[v[2]];
    var id = v[1] || "/subscriptions/" + sub + "/resourceGroups/" + t[v[3]] +
      "/providers/Microsoft.Compute/virtualMachines/" + v[0];
    var cls = data.st.indexOf(state) >= 0 ? state : "unknown";
    var h = '<tr data-state="' + esc(state) + '"><td title="' + esc(id) + '">' + esc(v[0]) + '</td><td class="id">' +
      data.sh[v[2]] + "</td><td>" + esc(t[v[3]]) + "</td><td>" + esc(t[v[4]]) + "</td><td>" +
      (v[5] < 0 ? '<span class="none">(none)</span>' : esc(t[v[5]])) + '</td><td data-sort="' + v[7] +
      '"><span class="badge s-' + cls + '">' + esc(state.replace(/_/g, " ")) + "</span>" + (v[9] || "") +
      '</td><td class="long">' + esc(t[v[8]]) + "</td>";
    for (var i = 0; i < data.c.length; i++) h += kindCell(v[10 + i], data.c[i]);
    return h + "</tr>";
  }
  var total = items.length, wanted = "all", needle = "";
  function apply() {
    var shown = 0, html = [];
    for (var i = 0; i < total; i++) {
      var it = items[i];
      var ok = (wanted === "all" || it.state === wanted) &&
               (needle === "" || it.name.indexOf(needle) !== -1);
      if (data) {
        if (ok && shown < LIMIT) html.push(rowHtml(it.v));
      } else if (ok !== it.shown) { it.row.hidden = !ok; it.shown = ok; }
      if (ok) shown++;
    }
    if (data) {
      tbody.innerHTML = html.join("");
      more.hidden = shown <= LIMIT;
      more.textContent = "The first " + LIMIT + " of " + shown + " shown: filter by state or name to find the others.";
    }
    count.textContent = shown + " of " + total + " VMs";
  }
  var buttons = controls.querySelectorAll("#filter-state button");
  Array.prototype.forEach.call(buttons, function (b) {
    b.addEventListener("click", function () {
      wanted = b.getAttribute("data-filter");
      Array.prototype.forEach.call(buttons, function (o) {
        o.setAttribute("aria-pressed", o === b ? "true" : "false");
      });
      apply();
    });
  });
  var input = document.getElementById("filter-name");
  input.addEventListener("input", function () {
    needle = input.value.trim().toLowerCase();
    apply();
  });
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  var heads = table.tHead.rows[0].cells, sortedBy = -1, dir = 1;
  function dataKey(v, col) {
    var t = data.t;
    if (col < 7) return [v[0], data.s[v[2]], t[v[3]], t[v[4]], v[5] < 0 ? "(none)" : t[v[5]], v[7], t[v[8]]][col];
    var c = v[10 + col - 7];
    if (c === 0) return NaN;
    if (data.c[col - 7] === "replica") return Number(c[2]);
    return c[1] === null ? Infinity : c[1];
  }
  function key(it, col, numeric) {
    if (data) { var k = dataKey(it.v, col); return numeric ? Number(k) : String(k); }
    var cell = it.row.cells[col];
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    if (!numeric) return raw;
    return raw === "" ? NaN : Number(raw);
  }
  function sortBy(col, numeric) {
    dir = col === sortedBy ? -dir : 1;
    sortedBy = col;
    var keyed = items.map(function (it) { return {it: it, k: key(it, col, numeric)}; });
    keyed.sort(function (a, b) {
      if (!numeric) return dir * collator.compare(a.k, b.k);
      var an = a.k !== a.k, bn = b.k !== b.k;  // NaN: the kind does not apply, last either way
      if (an || bn) return an === bn ? 0 : (an ? 1 : -1);
      return a.k === b.k ? 0 : (a.k < b.k ? -dir : dir);
    });
    items = keyed.map(function (x) { return x.it; });
    if (data) apply();
    else {
      var frag = document.createDocumentFragment();
      items.forEach(function (it) { frag.appendChild(it.row); });
      tbody.appendChild(frag);
    }
    for (var i = 0; i < heads.length; i++) {
      if (i === col) heads[i].setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      else heads[i].removeAttribute("aria-sort");
    }
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    var button = document.createElement("button");
    button.type = "button";
    while (th.firstChild) button.appendChild(th.firstChild);
    th.appendChild(button);
    button.addEventListener("click", function () {
      sortBy(col, th.getAttribute("data-type") === "num");
    });
  });
  controls.hidden = false;
  apply();
})();
"""


def sha256_source(text: str) -> str:
    """A CSP hash source for an inline <script> or <style> whose content is exactly ``text``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


# The page's policy: nothing may be fetched (default-src 'none'), only these two inline blocks run.
CSP = "; ".join(
    [
        "default-src 'none'",
        f"style-src {sha256_source(STYLE)}",
        f"script-src {sha256_source(SCRIPT)}",
        "img-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
