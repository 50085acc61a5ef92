"""The report page as HTML: every section, escaping of what comes from Azure, a page that fetches
nothing (CSP, no URLs), chart bars and drill marks equal to the data, each VM's last drill. Read back with the standard library's parser."""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.instants import format_instant, parse_instant
from shared.report.assets import SCRIPT, STYLE
from shared.report.drill_chart import MAX_TICKS, time_ticks
from shared.report.failures import group
from shared.report.model import (
    BREACHED,
    KINDS,
    MET,
    MISSING,
    STATES,
    DayCount,
    Deletion,
    DrillRow,
    Failure,
    KindStatus,
    ReportData,
    RestoreRow,
    SummaryRow,
    VmRow,
)
from shared.report.render import KIND_TITLES, render
from tests.report.sample import GENERATED, NASTY_NAME, sample_report

VOID = {"meta", "input", "br", "hr", "img", "link", "col", "wbr", "source"}
SECTIONS = ("actions", "summary", "vms", "points", "deletions", "failures", "leases", "restores", "drills", "cost")
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "time", "div", "strong", "ul",
    "li", "nav", "a", "main", "section", "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td",
    "span", "svg", "rect", "line", "text", "small", "details", "summary", "button", "label", "input", "script", "br",
    "g", "circle", "path", "polyline", "ol", "noscript",
}  # fmt: skip


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()

    def find(self, **attrs: str) -> Node:
        found = [n for n in self.walk() if all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]
        assert len(found) == 1, (attrs, len(found))
        return found[0]

    def all(self, tag: str) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag]


class Tree(HTMLParser):
    """A small DOM from html.parser; it records every tag it opens, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.at = Node("#document", {}, None)
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.at)
        self.at.children.append(node)
        self.tags.append(tag)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag, attrs):
        self.at.children.append(Node(tag, dict(attrs), self.at))
        self.tags.append(tag)

    def handle_endtag(self, tag):
        node = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"</{tag}> closes nothing"
        self.at = node.parent

    def handle_data(self, data):
        self.at.children.append(data)


def parse(page: str) -> Tree:
    tree = Tree()
    tree.feed(page)
    tree.close()
    assert tree.at is tree.root, f"unclosed <{tree.at.tag}>"
    return tree


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


EMPTY = ReportData(generated=GENERATED, evaluated=None)


def test_every_section_with_data():
    data = sample_report()
    doc = parse(render(data)).root
    for sid in SECTIONS:
        assert doc.find(id=sid).tag == "section"
    assert "Generated 2026-11-28 10:00 UTC" in doc.find(id="generated").text()
    assert doc.find(id="evaluated").text() == "Last compliance evaluation: 2026-11-28 09:30 UTC"
    assert "AuthorizationPermissionMismatch" in doc.find(role="note").text()
    assert len(doc.find(id="vm-table").all("tbody")[0].all("tr")) == len(data.vms)
    assert len(doc.find(id="deletions-table").all("tbody")[0].all("tr")) == len(data.deletions)
    assert len(doc.find(id="failures-table").all("tbody")[0].all("tr")) == len(group(data.failures))
    assert len(doc.find(id="restores-table").all("tbody")[0].all("tr")) == len(data.restores)
    assert doc.find(id="points-chart").tag == "svg"
    assert doc.find(id="vm-count").text() == f"{len(data.vms)} of {len(data.vms)} VMs"
    assert doc.find(id="filter-state").tag == "div"
    assert [b.attrs["data-filter"] for b in doc.find(id="filter-state").all("button")] == ["all", *STATES]
    assert [a.attrs["href"] for a in doc.all("nav")[0].all("a")] == [f"#{sid}" for sid in SECTIONS]
    vms = {d.vm_id for d in data.drills}
    assert len(doc.find(id="drill-table").all("tbody")[0].all("tr")) == len(vms)
    assert len(doc.find(id="drill-all-table").all("tbody")[0].all("tr")) == len(data.drills)


def test_every_section_empty_says_so():
    doc = parse(render(EMPTY)).root
    said = {sid: doc.find(id=sid).text() for sid in SECTIONS}
    assert "No compliance results yet." in said["summary"]
    assert "No VMs evaluated yet." in said["vms"]
    assert "No recovery points in the last 30 days." in said["points"]
    assert "Retention deleted nothing." in said["deletions"]
    assert "No failed or poisoned jobs." in said["failures"]
    assert "No restores requested." in said["restores"]
    assert "No file recovery or export in flight." in said["leases"]
    assert said["drills"] == "DR drillsNo DR drill has run yet."
    assert doc.find(id="evaluated").text() == "Last compliance evaluation: never evaluated"
    assert not doc.all("table") and not [n for n in doc.walk() if n.attrs.get("role") == "note"]


def test_file_recoveries_and_exports_in_flight_say_what_where_and_until_when():
    data = sample_report()
    doc = parse(render(data)).root
    section = doc.find(id="leases")
    assert section.all("h2")[0].text() == "File recoveries and exports in flight"
    rows = section.find(id="leases-table").all("tbody")[0].all("tr")
    assert [r.attrs["data-restore"] for r in rows] == [x.id for x in data.leases]
    by_id = {r.attrs["data-restore"]: r for r in rows}
    for lease in data.leases:
        cells = by_id[lease.id].all("td")
        assert [c.text() for c in cells[:2]] == [lease.id, lease.vm_id.rsplit("/", 1)[-1]]
        assert cells[3].text() == lease.target_type and cells[6].text() == lease.state
        assert cells[5].all("time")[0].attrs["datetime"] == lease.expires_at  # the expiry, whole, for a machine
        if lease.target_type == "files":  # attached to the operator's VM, and what each LUN carries
            assert cells[4].text().startswith(f"attached to {lease.attached_to.rsplit('/', 1)[-1]}")
            assert [li.text() for li in cells[4].all("li")] == list(lease.luns)
        else:
            assert cells[4].text() == "export disk " + lease.disks[0].rsplit("/", 1)[-1]
    overdue = {r.attrs["data-restore"] for r in rows if "overdue" in r.all("td")[5].text()}
    assert overdue == {"r-0005"}  # ready past its expiry; an ending one is being ended already
    assert by_id["r-0004"].all("td")[2].text() == "rp-20261127"
    assert by_id["r-0005"].all("td")[2].text() == "snapshot set 0123456789abcdef"


def test_a_script_name_is_text():
    data = sample_report()
    page = render(data)
    assert NASTY_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    tree = parse(page)
    assert tree.tags.count("script") == 1 and "b" not in tree.tags  # the reason's <b> too
    row = tree.root.find(id="vm-table").all("tbody")[0].all("tr")[0]
    assert row.all("td")[0].text() == NASTY_NAME
    assert row.all("td")[6].text() == 'reason with "quotes" & <b>tags</b>'
    drills = tree.root.find(id="drill-all-table").all("tbody")[0].all("tr")
    nasty = [r for r in drills if r.attrs["data-drill"] == f"d-{NASTY_NAME}-1"]
    assert [r.all("td")[0].text() for r in nasty] == [NASTY_NAME]
    assert nasty[0].all("td")[-1].text() == 'agent said <b>"no"</b> & gave up'


def test_fetches_nothing():
    tree = parse(render(sample_report()))
    assert not {"img", "link", "iframe", "object", "embed", "audio", "video", "source", "form"} & set(tree.tags)
    for node in tree.root.walk():
        assert "src" not in node.attrs, node.tag
        for name in ("href", "xlink:href", "action", "formaction", "poster", "srcset"):
            value = node.attrs.get(name)
            assert value is None or value.startswith("#"), (node.tag, name, value)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*https?://""", render(sample_report()), re.I)


def test_csp_allows_only_the_inline_script_and_style():
    doc = parse(render(sample_report())).root
    metas = [m for m in doc.all("meta") if (m.attrs.get("http-equiv") or "").lower() == "content-security-policy"]
    assert len(metas) == 1
    head = doc.all("head")[0]
    assert head.children.index(metas[0]) < head.children.index(doc.all("style")[0])  # before what it governs
    policy = dict(d.strip().split(" ", 1) for d in metas[0].attrs["content"].split(";"))
    assert policy["default-src"] == "'none'"
    (script,), (style,) = doc.all("script"), doc.all("style")
    assert policy["script-src"] == csp_hash(script.text()) and script.text() == SCRIPT
    assert policy["style-src"] == csp_hash(style.text()) and style.text() == STYLE
    assert "unsafe" not in metas[0].attrs["content"]
    assert not [n.tag for n in doc.walk() if "style" in n.attrs or any(a.startswith("on") for a in n.attrs)]


def test_chart_bars_are_the_data():
    data = sample_report()
    rects = [r for r in parse(render(data)).root.find(id="points-chart").all("rect")]
    assert all("data-count" in r.attrs for r in rects)
    got = Counter((r.attrs["data-day"], r.attrs["data-kind"], int(r.attrs["data-count"])) for r in rects)
    assert got == Counter((p.day, p.kind, p.count) for p in data.points_per_day)
    assert all(float(r.attrs["height"]) > 0 for r in rects)
    assert all(r.all("title")[0].text().endswith(f": {r.attrs['data-count']}") for r in rects)
    # the fallback table holds the same numbers
    table = parse(render(data)).root.find(id="points").all("details")[0].all("table")[0]
    day_rows = {tr.all("th")[0].text(): [int(td.text()) for td in tr.all("td")] for tr in table.all("tbody")[0].all("tr")}
    assert len(day_rows) == 30
    for p in data.points_per_day:
        assert day_rows[p.day][KINDS.index(p.kind)] == p.count


def test_points_chart_covers_30_days_and_sums_repeats():
    data = replace(EMPTY, points_per_day=(DayCount("2026-11-28", "vault", 2), DayCount("2026-11-28", "vault", 3)))
    doc = parse(render(data)).root
    (rect,) = doc.find(id="points-chart").all("rect")
    assert rect.attrs["data-count"] == "5"
    assert len(doc.find(id="points").all("details")[0].all("tbody")[0].all("tr")) == 30


def test_kind_cells_age_against_rpo():
    vm = VmRow(
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v", "v", "s", "g", "westeurope",
        "gold", BREACHED, "newest snapshot set 30.2 h old",
        (
            KindStatus("vault", MET, 25.0, "2026-11-28T06:48:00Z", 3.2, "rp-1"),
            KindStatus("snapshot_set", BREACHED, 25.0, "2026-11-27T03:48:00Z", 30.2, "ss-1"),
            KindStatus("snapshot_copy", MISSING, 49.5),
        ),
        ("snapshot_copy",),
    )
    row = parse(render(replace(EMPTY, vms=(vm,)))).root.find(id="vm-table").all("tbody")[0].all("tr")[0]
    assert row.attrs["data-state"] == BREACHED
    assert row.all("td")[0].attrs["title"] == vm.vm_id
    assert row.all("td")[5].text() == "breachedmissing snapshot set copy in the second region"  # the missing kind named
    vault, snaps, points, copy, rp_copy = row.all("td")[7:]
    assert (vault.text(), vault.attrs["class"], vault.attrs["data-sort"]) == ("3.2 h / 25 h", "k k-met c-vault", "3.2")
    assert "newest 2026-11-28T06:48:00Z" in vault.attrs["title"] and "rp-1" in vault.attrs["title"]
    assert (snaps.text(), snaps.attrs["class"]) == ("30.2 h / 25 h", "k k-breached c-snapshot_set")
    assert (points.text(), points.attrs["class"], points.attrs["data-sort"]) == ("—", "k k-na", "")
    assert (copy.text(), copy.attrs["class"], copy.attrs["data-sort"]) == ("none / 49.5 h", "k k-missing c-snapshot_copy", "Infinity")
    assert rp_copy.text() == "—"


def test_a_vm_missing_a_kind_says_which_and_an_older_rows_copy_keeps_its_column():
    vm = VmRow(
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v", "v", "s", "g", "westeurope",
        "gold", MISSING, "no complete restore point",
        (
            KindStatus("snapshot_set", MET, 25.0, "2026-11-28T06:48:00Z", 3.2, "ss-1"),
            KindStatus("restore_point", MISSING, 25.0),
            KindStatus("copy", MET, 25.0, "2026-11-28T06:48:00Z", 3.2, "ss-2"),  # recorded before kinds of copy
        ),
        ("restore_point",),
    )
    table = parse(render(replace(EMPTY, vms=(vm,)))).root.find(id="vm-table")
    row = table.all("tbody")[0].all("tr")[0]
    assert row.attrs["data-state"] == MISSING
    badge = row.all("td")[5]
    assert badge.all("span")[0].attrs["class"] == "badge s-missing" and badge.text() == "missingVM restore point"
    assert table.all("th")[-1].text() == "Copyage / RPO" and row.all("td")[-1].text() == "3.2 h / 25 h"
    assert [c.attrs["class"] for c in row.all("td")[7:]] == ["k k-na", "k k-met c-snapshot_set",
                                                            "k k-missing c-restore_point", "k k-na", "k k-na",
                                                            "k k-met c-copy"]


def test_summary_counts_and_totals():
    rows = (SummaryRow("s1", "gold", met=3, breached=1, missing=1), SummaryRow("s2", "(none)", opted_out=2))
    table = parse(render(replace(EMPTY, summary=rows))).root.find(id="summary-table")
    assert [th.text() for th in table.all("th")[2:8]] == ["Breached", "Not protected", "Missing", "Not supported", "Met",
                                                          "Opted out"]
    body = [[td.text() for td in tr.all("td")[:-1]] for tr in table.all("tbody")[0].all("tr")]
    assert body == [["s1", "gold", "1", "0", "1", "0", "3", "0", "5"], ["s2", "(none)", "0", "0", "0", "0", "0", "2", "2"]]
    foot = [td.text() for td in table.all("tfoot")[0].all("td")[:-1]]
    assert foot == ["All", "1", "0", "1", "0", "3", "2", "7"]
    bar = table.all("tbody")[0].all("tr")[0].all("svg")[0]
    assert [(r.attrs["class"], r.attrs["width"]) for r in bar.all("rect")] == [
        ("f-breached", "20.000"), ("f-missing", "20.000"), ("f-met", "60.000")]


# --- any strings ----------------------------------------------------------------------------------

TIME = "2026-11-27T08:00:00Z"
# Any text, leaning on what HTML treats specially, so a missing escape is found in few examples.
MARKUP = ["<", ">", "&", '"', "'", "<b>", "</td>", "<script>", "</script>", "<!--", "-->", "&amp;", "&lt", "\x00", "\r\n"]
text = st.lists(st.one_of(st.sampled_from(MARKUP), st.text(max_size=6)), max_size=8).map("".join)


def _report(s: list[str]) -> ReportData:
    """A report with every free-text field from ``s`` (times and days fixed: they shape the page)."""
    vm = VmRow(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
               (KindStatus(s[8], s[9], 25.0, s[10], 1.5, s[11]), KindStatus("vault", MET, 25.0, None, None, s[12])))
    return ReportData(
        generated=GENERATED,
        evaluated=TIME,
        summary=(SummaryRow(s[13], s[14], met=1),),
        vms=(vm,),
        points_per_day=(DayCount("2026-11-27", "vault", 3),),
        deletions=(Deletion(TIME, s[15], s[16], s[17], s[18]),),
        failures=(Failure(TIME, s[19], s[20], s[21]),),
        restores=(RestoreRow(s[22], s[23], s[24], s[25], TIME, TIME, s[26]),),
        drills=(DrillRow(s[28], s[29], TIME, s[30], 372.0, 11520.0, s[31], s[32], s[33]),),
        notes=(s[27],),
    )  # fmt: skip


N_STRINGS = 34


@settings(max_examples=150, deadline=None)
@given(st.lists(text, min_size=N_STRINGS, max_size=N_STRINGS))
def test_any_strings_stay_text(strings):
    page = render(_report(strings))
    tree = parse(page)
    benign_strings = ["x"] * N_STRINGS
    benign_strings[32] = strings[32] and "x"  # an empty cleanup is said as "not yet" (its own <span>)
    benign = parse(render(_report(benign_strings)))
    assert tree.tags == benign.tags  # no value added or closed a tag
    doc = tree.root
    row = doc.find(id="vm-table").all("tbody")[0].all("tr")[0]
    assert row.attrs["data-state"] == strings[6]
    assert (row.all("td")[0].text(), row.all("td")[0].attrs["title"]) == (strings[1], strings[0])
    assert row.all("td")[6].text() == strings[7]
    assert doc.find(role="note").all("li")[0].text() == strings[27]
    restore = doc.find(id="restores-table").all("tbody")[0].all("tr")[0].all("td")
    assert (restore[0].text(), restore[-1].text()) == (strings[22], strings[26])
    drill = doc.find(id="drill-table").all("tbody")[0].all("tr")[0]
    assert (drill.attrs["data-drill"], drill.attrs["data-result"]) == (strings[28], strings[30])
    assert drill.all("td")[0].attrs["title"] == strings[29]
    assert [td.text() for td in drill.all("td")[2:]] == [strings[30], "6 min 12 s", "3.2 h",
                                                         KIND_TITLES.get(strings[31], strings[31]),
                                                         strings[32] or "not yet", strings[33]]  # fmt: skip
    (mark,) = [n for n in doc.find(id="drill-chart").walk() if "data-drill" in n.attrs]
    assert (mark.attrs["data-drill"], mark.attrs["data-result"], mark.parent.attrs["data-vm"]) == (
        strings[28], strings[30], strings[29])
    assert doc.all("script")[0].text() == SCRIPT and doc.all("style")[0].text() == STYLE


day_or_kind = st.one_of(st.sampled_from(KINDS + STATES + ("2026-11-01",)), text)


@settings(max_examples=100, deadline=None)
@given(
    generated=text, evaluated=st.one_of(st.none(), text), day=day_or_kind, kind=day_or_kind,
    count=st.integers(-5, 10**6), strings=st.lists(text, min_size=N_STRINGS, max_size=N_STRINGS),
    age=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    rto=st.one_of(st.none(), st.floats()), rpo=st.one_of(st.none(), st.floats()),
    started=st.lists(st.one_of(text, st.datetimes(timezones=st.just(UTC)).map(format_instant)), min_size=1, max_size=4),
)  # fmt: skip
def test_any_report_parses(generated, evaluated, day, kind, count, strings, age, rto, rpo, started):
    data = _report(strings)
    vm = replace(data.vms[0], kinds=(KindStatus("vault", strings[9], 25.0, None, age, None),))
    drills = tuple(DrillRow(f"d{i}", strings[i % 3], when, ("passed", "failed", strings[5])[i % 3], rto, rpo,
                            strings[6], "", "") for i, when in enumerate(started))  # fmt: skip
    data = replace(data, generated=generated, evaluated=evaluated, points_per_day=(DayCount(day, kind, count),),
                   vms=(vm,), deletions=(replace(data.deletions[0], time=strings[0]),), drills=drills)  # fmt: skip
    tree = parse(render(data))
    assert set(tree.tags) <= ALLOWED_TAGS
    assert tree.tags.count("script") == 1 and tree.tags.count("style") == 1
    assert tree.root.all("script")[0].text() == SCRIPT


# --- DR drills ------------------------------------------------------------------------------------


def _drill_marks(doc: Node) -> list[Node]:
    return [n for n in doc.find(id="drill-chart").walk() if "data-drill" in n.attrs]


def test_drill_chart_marks_are_the_data():
    data = sample_report()
    assert {d.result for d in data.drills} == {"passed", "failed", "running"}
    doc = parse(render(data)).root
    marks = _drill_marks(doc)
    got = Counter((m.attrs["data-drill"], m.parent.attrs["data-vm"], m.attrs["data-result"], m.attrs["data-rto"],
                   m.attrs["data-started"]) for m in marks)  # fmt: skip
    assert got == Counter((d.id, d.vm_id, d.result, "" if d.rto_seconds is None else repr(d.rto_seconds), d.started)
                          for d in data.drills)  # fmt: skip
    assert all(m.all("title") for m in marks)
    # passed drills are series markers placed by RTO (a longer RTO higher up: a smaller y); the rest in the lane
    def y(m: Node) -> float:  # the marker's centre: a circle's, a 7-unit square's, a diamond's (from its top)
        if m.tag == "circle":
            return float(m.attrs["cy"])
        if m.tag == "rect":
            return float(m.attrs["y"]) + 3.5
        return float(m.attrs["d"].split()[1].split("L")[0]) + 5

    passed = sorted((m for m in marks if m.attrs["data-result"] == "passed"), key=lambda m: float(m.attrs["data-rto"]))
    assert {m.attrs["class"] for m in passed} == {"pt"}
    ys = [y(m) for m in passed]
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]
    failed = [m for m in marks if m.attrs["data-result"] == "failed"]
    assert failed and {(m.tag, m.attrs["class"]) for m in failed} == {("path", "fail")}
    (running,) = [m for m in marks if m.attrs["data-result"] == "running"]
    assert (running.tag, running.attrs["class"]) == ("circle", "ring")
    assert float(running.attrs["cy"]) < min(ys)  # the lane is above the plot
    # one series and one legend entry per VM, the name from the VM table when it has the VM
    series = [g for g in doc.find(id="drill-chart").all("g") if "series" in g.attrs["class"]]
    assert sorted(g.attrs["data-vm"] for g in series) == sorted({d.vm_id for d in data.drills})
    names = {v.vm_id: v.name for v in data.vms}
    legend = {li.attrs["title"]: li.text() for li in doc.find(id="drill-legend").all("li")}
    assert legend == {d.vm_id: names.get(d.vm_id, d.vm_id.rsplit("/", 1)[-1]) for d in data.drills}
    assert "legacy-erp" in legend.values() and NASTY_NAME in legend.values()
    # 13 VMs: ten colours, then the colours again with another shape
    classes = [g.attrs["class"] for g in series]
    assert len(set(classes)) == 10 and len(classes) == 13


def test_drill_series_lines_join_passed_drills_in_time_order():
    vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/app"
    rows = (
        DrillRow("d3", vm, "2026-11-20T06:00:00Z", "passed", 600.0, 3600.0, "copy", "removed"),
        DrillRow("d2", vm, "2026-11-13T06:00:00Z", "failed", None, 3600.0, "copy", "removed", "agent not Ready"),
        DrillRow("d1", vm, "2026-11-06T06:00:00Z", "passed", 300.0, 3600.0, "copy", "removed"),
    )
    chart = parse(render(replace(EMPTY, drills=rows))).root.find(id="drill-chart")
    (line,) = chart.all("polyline")
    points = [tuple(map(float, p.split(","))) for p in line.attrs["points"].split()]
    by_id = {m.attrs["data-drill"]: m for m in _drill_marks(parse(render(replace(EMPTY, drills=rows))).root)}
    assert points == [(float(by_id[i].attrs["cx"]), float(by_id[i].attrs["cy"])) for i in ("d1", "d3")]
    assert points[0][1] > points[1][1]  # 5 min below 10 min
    assert "agent not Ready" in by_id["d2"].all("title")[0].text()


def test_last_drill_per_vm_is_the_newest():
    a = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/alpha"
    b = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/beta"
    rows = (  # not in order, one id in another case: ARM ids are one VM in any case
        DrillRow("a1", a, "2026-11-01T06:00:00Z", "passed", 100.0, 60.0, "copy", "removed"),
        DrillRow("b2", b, "2026-11-27T06:00:00Z", "failed", None, 11520.0, "snapshot_set", "kept",
                 "VM agent not Ready within 30 minutes"),
        DrillRow("a3", a.upper(), "2026-11-20T06:00:00Z", "passed", 372.0, 11520.0, "restore_point", ""),
        DrillRow("b1", b, "2026-11-26T06:00:00Z", "passed", 3780.0, 2520.0, "copy", "removed"),
        DrillRow("a2", a, "not a time", "passed", 50.0, 30.0, "copy", "removed"),
    )  # fmt: skip
    doc = parse(render(replace(EMPTY, drills=rows))).root
    table = doc.find(id="drill-table").all("tbody")[0].all("tr")
    assert [r.attrs["data-drill"] for r in table] == ["b2", "a3"]
    cells = [[td.text() for td in r.all("td")] for r in table]
    assert cells == [
        ["beta", "2026-11-27 06:00 UTC", "failed", "—", "3.2 h", "Snapshot set", "kept",
         "VM agent not Ready within 30 minutes"],
        ["ALPHA", "2026-11-20 06:00 UTC", "passed", "6 min 12 s", "3.2 h", "Restore point", "not yet", ""],
    ]  # fmt: skip
    assert table[0].all("td")[0].attrs["title"] == b
    assert [s.attrs["class"] for r in table for s in r.all("span") if "badge" in s.attrs.get("class", "")] == [
        "badge d-failed", "badge d-passed"]  # fmt: skip
    assert doc.find(id="drill-count").text() == "5 drills of 2 VMs in this report: 4 passed, 1 failed, 0 running."
    every = doc.find(id="drill-all-table").all("tbody")[0].all("tr")
    assert [r.attrs["data-drill"] for r in every] == [d.id for d in rows]  # as the data gives them
    other = [[td.text() for td in r.all("td")] for r in every]
    assert other[3][3:5] == ["1 h 3 min", "42 min"] and other[0][3:5] == ["1 min 40 s", "1 min"]
    assert other[4][1:4] == ["not a time", "passed", "50 s"]
    # the drill whose start is no instant is in the tables, not on the time axis
    assert sorted(m.attrs["data-drill"] for m in _drill_marks(doc)) == ["a1", "a3", "b1", "b2"]


def test_drills_without_a_start_time_have_no_chart():
    rows = (DrillRow("d", "vm", "someday", "running", None, None, "copy", ""),)
    section = parse(render(replace(EMPTY, drills=rows))).root.find(id="drills")
    assert not section.all("svg")
    assert [r.attrs["data-drill"] for r in section.find(id="drill-table").all("tr")[1:]] == ["d"]
    assert "1 drill of 1 VM in this report" in section.find(id="drill-count").text()


def test_no_drills_no_chart_no_table():
    section = parse(render(replace(sample_report(), drills=()))).root.find(id="drills")
    assert section.all("p")[0].text() == "No DR drill has run yet."
    assert not section.all("svg") and not section.all("table")


def test_drill_time_axis_ticks_are_round():
    def ts(text: str) -> float:
        return parse_instant(text).timestamp()

    weeks = time_ticks(ts("2026-10-05T08:12:00Z"), ts("2026-11-28T09:48:00Z"))
    assert [label for _, label in weeks] == ["10-12", "10-19", "10-26", "11-02", "11-09", "11-16", "11-23"]  # Mondays
    hours = time_ticks(ts("2026-11-28T01:10:00Z"), ts("2026-11-28T09:48:00Z"))
    assert [label for _, label in hours] == ["11-28 02:00", "11-28 04:00", "11-28 06:00", "11-28 08:00"]
    months = time_ticks(ts("2026-01-15T00:00:00Z"), ts("2026-11-28T00:00:00Z"))
    assert [label for _, label in months] == ["2026-03", "2026-05", "2026-07", "2026-09", "2026-11"]
    for lo, hi in [("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"), ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")]:
        assert len(time_ticks(ts(lo), ts(hi))) <= MAX_TICKS


def test_a_big_fleets_rows_are_data_that_cannot_end_their_block():
    """Over ``inline_rows`` VMs the table's rows go as JSON in a data block (drawn by the script): a name like
    ``</script>`` cannot close the block, and the data holds every VM with its state, reason and kinds."""
    import json

    data = sample_report()
    page = render(data, inline_rows=len(data.vms) - 1)
    start = page.index('<script type="application/json" id="vm-data">') + len('<script type="application/json" id="vm-data">')
    block = page[start:page.index("</script>", start)]
    assert "<" not in block and NASTY_NAME not in block
    doc = json.loads(block)
    assert [v[0] for v in doc["v"]] == [v.name for v in data.vms]  # NASTY_NAME among them, as text
    assert [doc["t"][v[6]] for v in doc["v"]] == [v.state for v in data.vms]
    assert [doc["t"][v[8]] for v in doc["v"]] == [v.reason for v in data.vms]
    assert len(parse(render(data)).root.find(id="vm-table").all("tbody")[0].all("tr")) == len(data.vms)  # inline
    assert len(parse(page).root.find(id="vm-table").all("tbody")[0].all("tr")) == 1  # the no-script note only
