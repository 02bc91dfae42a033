"""expr-lang's builtins that take a predicate: ``all(xs, # > 0)``, ``filter(users, .age > 18)``.

Each implementation gets the array, ``call(item, index, acc)`` that runs the compiled predicate
with ``#``, ``#index`` and ``#acc`` bound (None for ``count``/``sum`` without one), and the
remaining arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._expr_builtins import sort_by_keys, sort_order, sum_numbers
from ._expr_errors import OpError
from ._expr_values import kind

Call = Callable[[Any, int, Any], Any]


def _test(r: Any, fn: str) -> bool:
    if r is True or r is False:
        return r
    raise OpError(f"predicate of {fn} must return bool, got {kind(r)}")


def _all(items: list[Any], call: Call, _: list[Any]) -> bool:
    return all(_test(call(x, i, None), "all") for i, x in enumerate(items))


def _any(items: list[Any], call: Call, _: list[Any]) -> bool:
    return any(_test(call(x, i, None), "any") for i, x in enumerate(items))


def _none(items: list[Any], call: Call, _: list[Any]) -> bool:
    return not any(_test(call(x, i, None), "none") for i, x in enumerate(items))


def _one(items: list[Any], call: Call, _: list[Any]) -> bool:
    return sum(_test(call(x, i, None), "one") for i, x in enumerate(items)) == 1


def _filter(items: list[Any], call: Call, _: list[Any]) -> list[Any]:
    return [x for i, x in enumerate(items) if _test(call(x, i, None), "filter")]


def _map_items(items: list[Any], call: Call, _: list[Any]) -> list[Any]:
    return [call(x, i, None) for i, x in enumerate(items)]


def _count(items: list[Any], call: Call | None, _: list[Any]) -> int:
    if call is None:
        return sum(1 for x in items if _test(x, "count"))
    return sum(_test(call(x, i, None), "count") for i, x in enumerate(items))


def _sum_by(items: list[Any], call: Call | None, _: list[Any]) -> int | float:
    return sum_numbers(items if call is None else [call(x, i, None) for i, x in enumerate(items)])


def _find_index(items: list[Any], call: Call, fn: str, *, last: bool) -> int:
    order = range(len(items) - 1, -1, -1) if last else range(len(items))
    return next((i for i in order if _test(call(items[i], i, None), fn)), -1)


def _find(items: list[Any], call: Call, _: list[Any]) -> Any:
    i = _find_index(items, call, "find", last=False)
    return items[i] if i >= 0 else None


def _find_last(items: list[Any], call: Call, _: list[Any]) -> Any:
    i = _find_index(items, call, "findLast", last=True)
    return items[i] if i >= 0 else None


def _group_by(items: list[Any], call: Call, _: list[Any]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = {}
    for i, x in enumerate(items):
        key = call(x, i, None)
        try:
            groups.setdefault(key, []).append(x)
        except TypeError:
            raise OpError(f"groupBy: cannot use {kind(key)} as a map key") from None
    return groups


def _sort_by(items: list[Any], call: Call, rest: list[Any]) -> list[Any]:
    keys = [call(x, i, None) for i, x in enumerate(items)]
    return sort_by_keys(list(items), keys, sort_order(rest, 0))


def _reduce(items: list[Any], call: Call, rest: list[Any]) -> Any:
    if rest:
        acc, start = rest[0], 0
    elif items:
        acc, start = items[0], 1
    else:
        raise OpError("reduce of empty array with no initial value")
    for i in range(start, len(items)):
        acc = call(items[i], i, acc)
    return acc


Predicate = Callable[[list[Any], Any, list[Any]], Any]

#: name -> (implementation, min args, max args); argument 1 is the predicate (count and sum may omit it)
PREDICATES: dict[str, tuple[Predicate, int, int]] = {
    "all": (_all, 2, 2),
    "any": (_any, 2, 2),
    "none": (_none, 2, 2),
    "one": (_one, 2, 2),
    "filter": (_filter, 2, 2),
    "map": (_map_items, 2, 2),
    "find": (_find, 2, 2),
    "findIndex": (lambda xs, c, _: _find_index(xs, c, "findIndex", last=False), 2, 2),
    "findLast": (_find_last, 2, 2),
    "findLastIndex": (lambda xs, c, _: _find_index(xs, c, "findLastIndex", last=True), 2, 2),
    "count": (_count, 1, 2),
    "sum": (_sum_by, 1, 2),
    "groupBy": (_group_by, 2, 2),
    "sortBy": (_sort_by, 2, 3),
    "reduce": (_reduce, 2, 3),
}
