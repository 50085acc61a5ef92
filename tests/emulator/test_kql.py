"""The emulator's KQL subset for Resource Graph: each operator, the null and case rules of KQL, and
the promise that anything outside the subset is an error rather than a wrong answer."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.resourcegraph.kql import KqlError, parse, run_query

VM = "microsoft.compute/virtualmachines"
DISK = "microsoft.compute/disks"


def resource(name: str, type_: str = VM, **extra) -> dict:
    row = {
        "id": f"/subscriptions/sub1/resourceGroups/rg1/providers/{type_}/{name}",
        "name": name,
        "type": type_,
        "tenantId": "tenant1",
        "kind": "",
        "location": "westeurope",
        "resourceGroup": "rg1",
        "subscriptionId": "sub1",
        "managedBy": "",
        "sku": None,
        "plan": None,
        "properties": {},
        "tags": None,
        "identity": None,
        "zones": None,
        "extendedLocation": None,
    }
    row.update(extra)
    return row


ROWS = [
    resource(
        "vmA",
        location="westeurope",
        tags={"env": "Prod", "backup": "true"},
        properties={
            "storageProfile": {"osDisk": {"name": "osA"}, "dataDisks": [{"lun": 0}, {"lun": 1}]},
            "priority": 5,
        },
    ),
    resource("vmB", location="eastus", tags=None, properties={"priority": 1}),
    resource("diskC", DISK, location="eastus", tags={"env": "dev"}, properties={"diskSizeGB": 128}),
    resource("VMD", location="northeurope", tags={}, properties={"storageProfile": {"dataDisks": []}}),
]


def names(query: str, rows: list[dict] = ROWS) -> list[str]:
    return [r["name"] for r in run_query(query, rows)]


def error(query: str) -> KqlError:
    with pytest.raises(KqlError) as info:
        parse(query)
    return info.value


# --- the source table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["Resources", "resources", "RESOURCES", "  Resources  // all of it", "where true", "| where true"],
)
def test_every_spelling_of_the_source_returns_all_rows(query):
    assert names(query) == ["vmA", "vmB", "diskC", "VMD"]


def test_bare_table_returns_the_schema_columns_with_strings_never_null():
    out = run_query("Resources", [{"id": "x", "name": "n", "kind": None, "tags": None}])
    assert list(out[0]) == parse("Resources").columns
    assert out[0]["kind"] == "" and out[0]["location"] == ""  # KQL strings have no null
    assert out[0]["tags"] is None and out[0]["properties"] is None  # dynamic values do


def test_columns_are_known_after_parse_and_follow_projection_order():
    q = parse("Resources | project name, id, loc = location")
    assert q.columns == ["name", "id", "loc"]
    assert list(q.run(ROWS)[0]) == ["name", "id", "loc"]
    assert q.column_types == {"name": "string", "id": "string", "loc": "string"}


# --- where: comparisons and string operators --------------------------------------------------


def test_double_equals_is_case_sensitive_and_tilde_equals_is_not():
    assert names("Resources | where name == 'vma'") == []
    assert names("Resources | where name == 'vmA'") == ["vmA"]
    assert names("Resources | where name =~ 'VMA'") == ["vmA"]
    assert names("Resources | where type =~ 'Microsoft.Compute/VirtualMachines'") == ["vmA", "vmB", "VMD"]
    assert names("Resources | where name !~ 'vma'") == ["vmB", "diskC", "VMD"]
    assert names("Resources | where name != 'vmA'") == ["vmB", "diskC", "VMD"]
    assert names("Resources | where name <> 'vmA'") == ["vmB", "diskC", "VMD"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name contains 'VM'", ["vmA", "vmB", "VMD"]),
        ("name !contains 'vm'", ["diskC"]),
        ("name startswith 'DISK'", ["diskC"]),
        ("name !startswith 'disk'", ["vmA", "vmB", "VMD"]),
        ("name endswith 'D'", ["VMD"]),
        ("name endswith 'd'", ["VMD"]),
        ("name !endswith 'd'", ["vmA", "vmB", "diskC"]),
        ("type has 'COMPUTE'", ["vmA", "vmB", "diskC", "VMD"]),
        ("type has 'microsoft.compute'", ["vmA", "vmB", "diskC", "VMD"]),
        ("type has 'virtualmachines'", ["vmA", "vmB", "VMD"]),
        ("type has 'virtual'", []),  # a whole term only, unlike contains
        ("type has 'machines'", []),
        ("type has 'COMPUTE/VIRTUALMACHINES'", ["vmA", "vmB", "VMD"]),
        ("name has 'vm'", []),
        ("type !has 'disks'", ["vmA", "vmB", "VMD"]),
        ("name in ('vmA', 'VMD', 'nope')", ["vmA", "VMD"]),
        ("name in ('vma')", []),
        ("name !in ('vmA', 'VMD')", ["vmB", "diskC"]),
        ("name in~ ('VMA', 'vmd')", ["vmA", "VMD"]),
        ("name !in~ ('VMA', 'vmd')", ["vmB", "diskC"]),
        ("location == 'eastus' and type =~ 'microsoft.compute/disks'", ["diskC"]),
        ("location == 'eastus' or name == 'vmA'", ["vmA", "vmB", "diskC"]),
        ("not(location == 'eastus')", ["vmA", "VMD"]),
        ("(name == 'vmA' or name == 'vmB') and location == 'eastus'", ["vmB"]),
        ("properties.priority > 2", ["vmA"]),
        ("properties.priority <= 1", ["vmB"]),
        ("properties.priority >= -1 and properties.priority < 5.5", ["vmA", "vmB"]),
    ],
)
def test_string_and_logical_operators(query, expected):
    assert names(f"Resources | where {query}") == expected


def test_string_literals_in_either_quote_with_escapes():
    rows = [resource("it's"), resource('say "hi"'), resource("back\\slash")]
    assert names("where name == 'it\\'s'", rows) == ["it's"]
    assert names('where name == "it\'s"', rows) == ["it's"]
    assert names('where name == "say \\"hi\\""', rows) == ['say "hi"']
    assert names("where name == 'back\\\\slash'", rows) == ["back\\slash"]
    assert names("where name == @'back\\slash'", rows) == ["back\\slash"]


# --- nulls and dynamic values -------------------------------------------------------------------


def test_dynamic_access_by_dot_and_bracket():
    assert names("Resources | where tags.env == 'Prod'") == ["vmA"]
    assert names("Resources | where tags['env'] == 'Prod'") == ["vmA"]
    assert names('Resources | where tags["env"] =~ "prod"') == ["vmA"]
    assert names("Resources | where properties.storageProfile.osDisk.name == 'osA'") == ["vmA"]
    assert names("Resources | where properties.storageProfile.dataDisks[1].lun == 1") == ["vmA"]
    assert names("Resources | where properties.storageProfile.dataDisks[-1].lun == 1") == ["vmA"]


def test_access_into_null_or_missing_keys_is_null():
    out = run_query(
        "Resources | project name, a = tags.env, b = properties.storageProfile.dataDisks[5], c = tags.env.deeper",
        ROWS,
    )
    assert [r["a"] for r in out] == ["Prod", None, "dev", None]
    assert all(r["b"] is None and r["c"] is None for r in out)


def test_equality_with_null_is_false_and_inequality_true_as_kql_documents():
    # vmB has tags null, VMD has no env tag: == never matches them, != always does.
    assert names("Resources | where tags.env == 'Prod'") == ["vmA"]
    assert names("Resources | where tags.env != 'Prod'") == ["vmB", "diskC", "VMD"]
    # Ordering against null is null, so neither side of a comparison keeps the row.
    assert names("Resources | where properties.diskSizeGB > 0") == ["diskC"]
    assert names("Resources | where not(properties.diskSizeGB > 0)") == []


def test_string_operators_read_null_dynamic_as_empty_string():
    assert names("Resources | where tags.env =~ ''") == ["vmB", "VMD"]
    assert names("Resources | where tags.env !~ 'prod'") == ["vmB", "diskC", "VMD"]
    assert names("Resources | where tags.env in ('Prod', 'dev')") == ["vmA", "diskC"]
    assert names("Resources | where tags.env !in ('Prod')") == ["vmB", "diskC", "VMD"]


def test_equality_between_different_kinds_of_dynamic_value_is_false():
    rows = [
        resource("n", properties={"x": 5}),
        resource("s", properties={"x": "5"}),
        resource("b", properties={"x": True}),
    ]
    assert names("where properties.x == 5", rows) == ["n"]
    assert names("where properties.x == '5'", rows) == ["s"]
    assert names("where properties.x == true", rows) == ["b"]
    assert names("where properties.x == 5.0", rows) == ["n"]


def test_functions():
    out = run_query(
        "Resources | where name == 'vmA' or name == 'vmB' | project "
        "s = tostring(properties.storageProfile.osDisk), n = tostring(tags.missing), p = tostring(properties.priority), "
        "lo = tolower(name), up = toupper(tags.env), i = toint(tags.backup), l = tolong('42'), bad = toint(tags.env), "
        "nul = isnull(tags), nn = isnotnull(tags), e = isempty(tags.env), ne = isnotempty(tags.env), "
        "al = array_length(properties.storageProfile.dataDisks), sl = strlen(name), "
        "f = iff(isnull(tags), 'untagged', 'tagged'), g = iif(name == 'vmA', 1, 2)",
        ROWS,
    )
    assert out[0] == {
        "s": '{"name":"osA"}',
        "n": "",
        "p": "5",
        "lo": "vma",
        "up": "PROD",
        "i": None,  # "true" is not a number
        "l": 42,
        "bad": None,
        "nul": False,
        "nn": True,
        "e": False,
        "ne": True,
        "al": 2,
        "sl": 3,
        "f": "tagged",
        "g": 1,
    }
    assert out[1]["up"] == "" and out[1]["nul"] is True and out[1]["e"] is True and out[1]["al"] is None
    assert out[1]["f"] == "untagged" and out[1]["g"] == 2


def test_isempty_is_false_for_an_empty_array_and_isnull_false_for_strings():
    assert names("Resources | where isempty(properties.storageProfile.dataDisks)") == ["vmB", "diskC"]
    assert names("Resources | where isnull(kind)") == []
    assert names("Resources | where isempty(kind)") == ["vmA", "vmB", "diskC", "VMD"]


# --- project, project-away, extend ---------------------------------------------------------------


def test_project_names_columns_as_kql_does():
    q = parse(
        "Resources | project properties.storageProfile.osDisk.name, tags['env'], disk0 = "
        "properties.storageProfile.dataDisks[0], tostring(tags.backup), strlen(name), tolower(name)"
    )
    assert q.columns == [
        "properties_storageProfile_osDisk_name",
        "tags_env",
        "disk0",
        "tags_backup",
        "Column1",
        "Column2",
    ]
    assert q.run(ROWS)[0] == {
        "properties_storageProfile_osDisk_name": "osA",
        "tags_env": "Prod",
        "disk0": {"lun": 0},
        "tags_backup": "true",
        "Column1": 3,
        "Column2": "vma",
    }


def test_project_away_and_extend():
    out = run_query("Resources | project-away properties, tags, sku, plan, identity, zones | take 1", ROWS)
    assert list(out[0]) == [
        "id",
        "name",
        "type",
        "tenantId",
        "kind",
        "location",
        "resourceGroup",
        "subscriptionId",
        "managedBy",
        "extendedLocation",
    ]
    q = parse(
        "Resources | extend env = tostring(tags.env), name = toupper(name), loud = toupper(env) | take 1"
    )
    assert q.columns[-2:] == ["env", "loud"]  # new columns at the end, replaced ones in place
    row = q.run(ROWS)[0]
    assert row["name"] == "VMA" and row["env"] == "Prod" and row["loud"] == "PROD"
    assert q.columns.index("name") == 1
    assert error("Resources | project-away name | project name").code == "InvalidQuery"
    assert error("Resources | project name | where location == 'x'").code == "InvalidQuery"


# --- order by, limit ------------------------------------------------------------------------------


def test_order_by_defaults_to_descending():
    assert names("Resources | order by name") == ["vmB", "vmA", "diskC", "VMD"]  # ordinal: capitals first
    assert names("Resources | sort by name asc") == ["VMD", "diskC", "vmA", "vmB"]
    assert names("Resources | order by name desc") == ["vmB", "vmA", "diskC", "VMD"]


def test_order_by_nulls_first_ascending_last_descending_unless_told():
    q = "Resources | extend p = toint(properties.priority) | order by p {} | project name"
    assert names(q.format("asc")) == ["diskC", "VMD", "vmB", "vmA"]
    assert names(q.format("desc")) == ["vmA", "vmB", "diskC", "VMD"]
    assert names(q.format("asc nulls last")) == ["vmB", "vmA", "diskC", "VMD"]
    assert names(q.format("desc nulls first")) == ["diskC", "VMD", "vmA", "vmB"]


def test_order_by_is_stable_and_multi_key():
    assert names("Resources | order by location asc") == ["vmB", "diskC", "VMD", "vmA"]
    assert names("Resources | order by location asc, name asc") == ["diskC", "vmB", "VMD", "vmA"]
    assert names("Resources | order by location desc, name desc") == ["vmA", "VMD", "vmB", "diskC"]


def test_order_by_dynamic_is_an_error_as_in_kql():
    assert error("Resources | order by tags.env").code == "InvalidQuery"
    assert names("Resources | order by tostring(tags.env) asc") == ["vmB", "VMD", "vmA", "diskC"]


def test_limit_and_take():
    assert names("Resources | limit 2") == ["vmA", "vmB"]
    assert names("Resources | take 0") == []
    assert names("Resources | order by name asc | take 1") == ["VMD"]
    assert len(run_query("Resources | take 100", ROWS)) == 4


# --- summarize -------------------------------------------------------------------------------------


def test_summarize_count():
    assert run_query("Resources | summarize count()", ROWS) == [{"count_": 4}]
    assert run_query("Resources | summarize total = count()", []) == [{"total": 0}]
    assert run_query("Resources | summarize count() by location", []) == []
    out = run_query("Resources | summarize count() by location, kind = type | order by count_ desc", ROWS)
    assert out == [  # equal counts keep the groups' first-seen order: the sort is stable
        {"location": "westeurope", "kind": VM, "count_": 1},
        {"location": "eastus", "kind": VM, "count_": 1},
        {"location": "eastus", "kind": DISK, "count_": 1},
        {"location": "northeurope", "kind": VM, "count_": 1},
    ]
    by_env = run_query("Resources | summarize n = count() by tostring(tags.env) | order by n desc", ROWS)
    assert by_env == [{"tags_env": "", "n": 2}, {"tags_env": "Prod", "n": 1}, {"tags_env": "dev", "n": 1}]


def test_summarize_groups_are_distinct_key_combinations():
    rows = [resource(f"r{i}", VM if i % 3 else DISK, location=["a", "b"][i % 2]) for i in range(12)]
    out = run_query("Resources | summarize count() by type, location", rows)
    assert [list(r) for r in out] == [["type", "location", "count_"]] * 4
    assert sorted((r["type"], r["location"], r["count_"]) for r in out) == [
        (DISK, "a", 2),
        (DISK, "b", 2),
        (VM, "a", 4),
        (VM, "b", 4),
    ]
    assert error("Resources | summarize count() by tags").code == "InvalidQuery"  # dynamic key


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("Resources | join (Resources) on id", "'join'"),
        ("Resources | union ResourceContainers", "'union'"),
        ("Resources | mv-expand tags", "'mv-expand'"),
        ("Resources | project-rename n = name", "'project-rename'"),
        ("Resources | top 3 by name", "'top'"),
        ("Resources | distinct location", "'distinct'"),
        ("Resources | count", "'count'"),
        ("Resources | parse name with a '-' b", "'parse'"),
        ("Resources | make-series count() on x step 1h", "'make-series'"),
        ("let t = 1; Resources", "'let'"),
        ("ResourceContainers", "'ResourceContainers'"),
        ("SecurityResources | take 1", "'SecurityResources'"),
        ("Resources | where bin(x, 1d) > 0", "'bin'"),
        ("Resources | where properties.time > ago(1d)", "'ago'"),
        ("Resources | extend x = split(name, '-')", "'split'"),
        ("Resources | where name in (dynamic(['a']))", "'dynamic'"),
        ("Resources | summarize countif(name == 'x')", "'countif'"),
        ("Resources | summarize make_list(name) by location", "'make_list'"),
        ("Resources | where name contains_cs 'vm'", "'contains_cs'"),
        ("Resources | where name !has_cs 'vm'", "'!has_cs'"),
        ("Resources | where name has_any ('vm')", "'has_any'"),
        ("Resources | where name matches regex 'v.*'", "'matches'"),
        ("Resources | where properties.x between (1 .. 2)", "'between'"),
        ("Resources | where properties.a + 1 > 2", "'+'"),
        ("Resources | where name < 'm'", "'<' on strings"),
        ("Resources | project-away tag*", "Wildcard"),
    ],
)
def test_valid_kql_outside_the_subset_is_unsupported_never_answered(query, named):
    exc = error(query)
    assert exc.code == "UnsupportedOperator", exc.message
    assert named in exc.message
    assert "not supported" in exc.message


def test_unsupported_operator_message_lists_the_subset_and_position():
    exc = error("Resources | join kind=inner (Resources) on id")
    assert exc.message.startswith("Operator 'join' is not supported by the emulator's Resource Graph subset")
    assert (
        "where, project, project-away, extend, order by, sort by, limit, take, summarize count()"
        in exc.message
    )
    assert "line 1, column 13" in exc.message and exc.position == 12


@pytest.mark.parametrize(
    ("query", "at"),
    [
        ("Resources | where (name == 'a'", "end of query"),
        ("Resources | where name == 'a' or", "end of query"),
        ("Resources |", "end of query"),
        ("Resources | | take 1", "'|'"),
        ("Resources where true", "'where'"),
        ("Resources | where name = 'x'", "'=='"),
        ("Resources | where name == 'x", "Unterminated"),
        ("Resources | where name == 'a' == 'b'", "chained"),
        ("Resources | take 'x'", "number"),
        ("Resources | take 1.5", "number"),
        ("Resources | order name", "'by'"),
        ("Resources | whre name == 'x'", "'whre'"),
        ("Resources | project Name", "did you mean 'name'"),
        ("Resources | where nope == 1", "'nope'"),
        ("Resources | where name == 1", "string with long"),
        ("Resources | where name", "bool"),
        ("Resources | project name.x", "string"),
        ("Resources | project name, name", "duplicate"),
        ("Resources | where tolower(name, 1) == 'a'", "argument"),
        ("Resources | where iff(true, 'a', 1) == 'a'", "same type"),
        ("Foo | take 1", "'Foo'"),
        ("", "empty"),
        ("Resources | where name == 'a' ^ 1", "'^'"),
        ("Resources\n| where name == 'x\\q'", "escape"),
    ],
)
def test_malformed_queries_are_invalid_with_a_location(query, at):
    exc = error(query)
    assert exc.code == "InvalidQuery", exc.message
    assert at in exc.message
    if query:
        assert "line " in exc.message and "column " in exc.message


def test_error_location_counts_lines():
    exc = error("Resources\n| where name == 'x'\n| mv-expand tags")
    assert "line 3, column 3" in exc.message


# --- performance -----------------------------------------------------------------------------------


def test_forty_thousand_rows_filter_well_under_a_second():
    rows = [
        resource(f"r{i}", VM if i % 2 else DISK, tags={"x": "y" if i % 3 else "z"} if i % 5 else None)
        for i in range(40_000)
    ]
    query = parse(
        "Resources | where type =~ 'Microsoft.Compute/VirtualMachines' and tags['x'] == 'y' | project id, name, location"
    )
    start = time.perf_counter()
    out = query.run(rows)
    elapsed = time.perf_counter() - start
    expected = sum(1 for i in range(40_000) if i % 2 and i % 3 and i % 5)
    assert len(out) == expected
    assert elapsed < 0.5, elapsed


# --- properties ------------------------------------------------------------------------------------

# Letters whose lower() and casefold() agree, plus separators, so that =~ can be checked against Python.
TEXT = st.text(alphabet="abcABCxyzXYZ0-./ _", max_size=8)
ROW = st.builds(
    lambda name, env: resource(name, tags=None if env is None else {"env": env}), TEXT, st.none() | TEXT
)
ROW_LISTS = st.lists(ROW, max_size=25)


def quoted(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=60, deadline=None)
@given(ROW_LISTS, TEXT)
def test_tilde_equals_is_casefold_equality(rows, needle):
    got = run_query(f"Resources | where name =~ {quoted(needle)} | project name", rows)
    assert [r["name"] for r in got] == [r["name"] for r in rows if r["name"].casefold() == needle.casefold()]
    got = run_query(f"Resources | where tags.env !~ {quoted(needle)} | project name", rows)
    expected = [
        r["name"] for r in rows if ((r["tags"] or {}).get("env") or "").casefold() != needle.casefold()
    ]
    assert [r["name"] for r in got] == expected


@settings(max_examples=60, deadline=None)
@given(ROW_LISTS, TEXT)
def test_contains_and_startswith_match_python_on_folded_text(rows, needle):
    got = names(f"Resources | where name contains {quoted(needle)}", rows)
    assert got == [r["name"] for r in rows if needle.lower() in r["name"].lower()]
    got = names(f"Resources | where name !startswith {quoted(needle)}", rows)
    assert got == [r["name"] for r in rows if not r["name"].lower().startswith(needle.lower())]


@settings(max_examples=60, deadline=None)
@given(ROW_LISTS, st.text(alphabet="abcABCxyz0", min_size=1, max_size=4))
def test_has_matches_a_whole_term_case_insensitively(rows, term):
    def terms(text: str) -> list[str]:
        return [t.lower() for t in re.split(r"[^0-9A-Za-z]+", text)]

    assert names(f"Resources | where name has {quoted(term)}", rows) == [
        r["name"] for r in rows if term.lower() in terms(r["name"])
    ]


@settings(max_examples=60, deadline=None)
@given(ROW_LISTS, st.integers(min_value=0, max_value=40))
def test_limit_returns_a_prefix_of_min_n_rows(rows, n):
    got = names(f"Resources | limit {n}", rows)
    assert got == [r["name"] for r in rows][:n]


@settings(max_examples=60, deadline=None)
@given(ROW_LISTS, st.sampled_from(["asc", "desc"]))
def test_order_by_is_a_stable_sorted_permutation(rows, direction):
    for i, row in enumerate(rows):
        row["id"] = str(i)
    got = run_query(f"Resources | order by name {direction} | project name, id", rows)
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in rows)  # a permutation
    keys = [r["name"] for r in got]
    assert keys == sorted(keys, reverse=direction == "desc")
    for a, b in zip(got, got[1:], strict=False):  # ties keep their input order
        if a["name"] == b["name"]:
            assert int(a["id"]) < int(b["id"])


@settings(max_examples=60, deadline=None)
@given(ROW_LISTS)
def test_summarize_counts_add_up_to_the_row_count(rows):
    got = run_query("Resources | summarize count() by tostring(tags.env)", rows)
    assert sum(r["count_"] for r in got) == len(rows)
    keys = [r["tags_env"] for r in got]
    assert len(keys) == len(set(keys)) == len({(r["tags"] or {}).get("env") or "" for r in rows})


def test_summarize_by_without_an_aggregation_gives_distinct_groups():
    rows = [{"location": "b"}, {"location": "a"}, {"location": "b"}]
    assert run_query("Resources | project location | summarize by location", rows) == [{"location": "b"}, {"location": "a"}]
