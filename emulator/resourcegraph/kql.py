"""The subset of the Kusto Query Language (KQL) that Azure Resource Graph accepts over ``Resources``.

Pure: no I/O. ``parse()`` tokenizes the query, parses it by recursive descent and type-checks it
against the table's schema, compiling every expression to a Python closure once; ``Query.run()``
then only calls closures, so 40,000 rows filter in milliseconds.

The contract is "the right answer or an error", never a wrong answer: valid KQL outside the subset
raises ``KqlError`` with code ``UnsupportedOperator`` naming the construct, and a malformed query,
an unknown column or a type error raises ``InvalidQuery``; both give the line and column.

Semantics follow the KQL documentation:

* ``string`` values are never null (a missing string column reads as ``""``); ``dynamic`` values
  (``properties``, ``tags``, ...) can be, and member or index access into null or a missing key
  is null.
* ``==`` with exactly one null side is false, ``!=`` is true, both null is null; ``<`` and the
  others are null with a null side; ``where`` keeps only rows whose predicate is true.
* ``==``, ``!=`` and ``in`` are case-sensitive; ``=~``, ``has``, ``contains``, ``startswith`` and
  ``endswith`` are case-insensitive and read a dynamic value through ``tostring()`` (null -> "").
* ``order by``/``sort by`` default to ``desc``; nulls come first for ``asc``, last for ``desc``; the
  sort is stable. Sorting or grouping by a ``dynamic`` value is an error, as in KQL: wrap it in
  ``tostring()``.
* A column computed without a name is named as KQL names it: ``properties.a.b`` becomes
  ``properties_a_b``, ``tags['env']`` becomes ``tags_env``, ``tostring(x)`` takes ``x``'s name,
  anything else is ``Column1``, ``Column2``, ...

The implementation: ``lexer.py`` (tokens), ``parser.py`` (recursive descent, type checks, compiling),
``functions.py`` (the scalar functions), ``evaluator.py`` (value semantics, compiled expressions,
pipeline stages, ``Query``) and ``errors.py`` (``KqlError``). This module is their public face.
"""

from __future__ import annotations

from .errors import KqlError
from .evaluator import RESOURCES_SCHEMA, Query
from .parser import parse, run_query

__all__ = ["KqlError", "Query", "parse", "run_query", "RESOURCES_SCHEMA"]
