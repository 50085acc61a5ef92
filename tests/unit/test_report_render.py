"""The report page as HTML: every section, escaping of what comes from Azure, a page that fetches
nothing (CSP, no URLs), chart bars equal to the data. Read back with the standard library's parser."""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from dataclasses import replace
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.report.assets import SCRIPT, STYLE
from shared.report.model import (
    BREACHED,
    KINDS,
    MET,
    NOT_PROTECTED,
    STATES,
    DayCount,
    Deletion,
    Failure,
    KindStatus,
    ReportData,
    RestoreRow,
    SummaryRow,
    VmRow,
)
from shared.report.render import render
from tests.report.sample import GENERATED, NASTY_NAME, sample_report

VOID = {"meta", "input", "br", "hr", "img", "link", "col", "wbr", "source"}
SECTIONS = ("summary", "vms", "points", "deletions", "failures", "restores")
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "time", "div", "strong", "ul",
    "li", "nav", "a", "main", "section", "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td",
    "span", "svg", "rect", "line", "text", "small", "details", "summary", "button", "label", "input", "script", "br",
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
    assert len(doc.find(id="failures-table").all("tbody")[0].all("tr")) == len(data.failures)
    assert len(doc.find(id="restores-table").all("tbody")[0].all("tr")) == len(data.restores)
    assert doc.find(id="points-chart").tag == "svg"
    assert doc.find(id="vm-count").text() == f"{len(data.vms)} of {len(data.vms)} VMs"
    assert doc.find(id="filter-state").tag == "div"
    assert [b.attrs["data-filter"] for b in doc.find(id="filter-state").all("button")] == ["all", *STATES]


def test_every_section_empty_says_so():
    doc = parse(render(EMPTY)).root
    said = {sid: doc.find(id=sid).text() for sid in SECTIONS}
    assert "No compliance results yet." in said["summary"]
    assert "No VMs evaluated yet." in said["vms"]
    assert "No recovery points in the last 30 days." in said["points"]
    assert "Retention deleted nothing." in said["deletions"]
    assert "No failed or poisoned jobs." in said["failures"]
    assert "No restores requested." in said["restores"]
    assert doc.find(id="evaluated").text() == "Last compliance evaluation: never evaluated"
    assert not doc.all("table") and not [n for n in doc.walk() if n.attrs.get("role") == "note"]


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
            KindStatus("copy", NOT_PROTECTED, 49.5),
        ),
    )
    row = parse(render(replace(EMPTY, vms=(vm,)))).root.find(id="vm-table").all("tbody")[0].all("tr")[0]
    assert row.attrs["data-state"] == BREACHED
    assert row.all("td")[0].attrs["title"] == vm.vm_id
    vault, snaps, points, copy = row.all("td")[7:]
    assert (vault.text(), vault.attrs["class"], vault.attrs["data-sort"]) == ("3.2 h / 25 h", "k k-met", "3.2")
    assert "newest 2026-11-28T06:48:00Z" in vault.attrs["title"] and "rp-1" in vault.attrs["title"]
    assert (snaps.text(), snaps.attrs["class"]) == ("30.2 h / 25 h", "k k-breached")
    assert (points.text(), points.attrs["class"], points.attrs["data-sort"]) == ("—", "k k-na", "")
    assert (copy.text(), copy.attrs["class"], copy.attrs["data-sort"]) == ("none / 49.5 h", "k k-not_protected", "Infinity")


def test_summary_counts_and_totals():
    rows = (SummaryRow("s1", "gold", met=3, breached=1), SummaryRow("s2", "(none)", opted_out=2))
    table = parse(render(replace(EMPTY, summary=rows))).root.find(id="summary-table")
    body = [[td.text() for td in tr.all("td")[:-1]] for tr in table.all("tbody")[0].all("tr")]
    assert body == [["s1", "gold", "1", "0", "3", "0", "4"], ["s2", "(none)", "0", "0", "0", "2", "2"]]
    foot = [td.text() for td in table.all("tfoot")[0].all("td")[:-1]]
    assert foot == ["All", "1", "0", "3", "2", "6"]
    bar = table.all("tbody")[0].all("tr")[0].all("svg")[0]
    assert [(r.attrs["class"], r.attrs["width"]) for r in bar.all("rect")] == [("f-breached", "25.000"), ("f-met", "75.000")]


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
        notes=(s[27],),
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(text, min_size=28, max_size=28))
def test_any_strings_stay_text(strings):
    page = render(_report(strings))
    tree = parse(page)
    benign = parse(render(_report(["x"] * 28)))
    assert tree.tags == benign.tags  # no value added or closed a tag
    doc = tree.root
    row = doc.find(id="vm-table").all("tbody")[0].all("tr")[0]
    assert row.attrs["data-state"] == strings[6]
    assert (row.all("td")[0].text(), row.all("td")[0].attrs["title"]) == (strings[1], strings[0])
    assert row.all("td")[6].text() == strings[7]
    assert doc.find(role="note").all("li")[0].text() == strings[27]
    restore = doc.find(id="restores-table").all("tbody")[0].all("tr")[0].all("td")
    assert (restore[0].text(), restore[-1].text()) == (strings[22], strings[26])
    assert doc.all("script")[0].text() == SCRIPT and doc.all("style")[0].text() == STYLE


day_or_kind = st.one_of(st.sampled_from(KINDS + STATES + ("2026-11-01",)), text)


@settings(max_examples=100, deadline=None)
@given(
    generated=text, evaluated=st.one_of(st.none(), text), day=day_or_kind, kind=day_or_kind,
    count=st.integers(-5, 10**6), strings=st.lists(text, min_size=28, max_size=28),
    age=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)  # fmt: skip
def test_any_report_parses(generated, evaluated, day, kind, count, strings, age):
    data = _report(strings)
    vm = replace(data.vms[0], kinds=(KindStatus("vault", strings[9], 25.0, None, age, None),))
    data = replace(data, generated=generated, evaluated=evaluated, points_per_day=(DayCount(day, kind, count),),
                   vms=(vm,), deletions=(replace(data.deletions[0], time=strings[0]),))  # fmt: skip
    tree = parse(render(data))
    assert set(tree.tags) <= ALLOWED_TAGS
    assert tree.tags.count("script") == 1 and tree.tags.count("style") == 1
    assert tree.root.all("script")[0].text() == SCRIPT
