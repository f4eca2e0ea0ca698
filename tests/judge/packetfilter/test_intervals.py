"""Interval sets against Python's own sets, on a small domain."""

from hypothesis import given
from hypothesis import strategies as st

from csaudit.judge.packetfilter.intervals import Intervals

spans = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1])), max_size=5)


def members(value: Intervals) -> set[int]:
    return {n for a, b in value.spans for n in range(a, b + 1)}


@given(spans, spans)
def test_set_operations_agree_with_python_sets(a, b):
    left, right = Intervals(a), Intervals(b)
    assert members(left.union(right)) == members(left) | members(right)
    assert members(left.intersection(right)) == members(left) & members(right)
    assert members(left.difference(right)) == members(left) - members(right)
    assert members(left.complement((0, 70))) == set(range(71)) - members(left)
    assert left.issubset(right) == (members(left) <= members(right))
    assert left.isdisjoint(right) == (not members(left) & members(right))
    assert all((n in left) == (n in members(left)) for n in range(-1, 72))
    assert left.size() == len(members(left))


def test_spans_are_merged_and_printed_as_ranges():
    value = Intervals([(5, 9), (1, 3), (4, 4), (20, 20)])
    assert value.spans == ((1, 9), (20, 20))
    assert value.text() == "1-9, 20" and value.single() is None and Intervals.of(7).single() == 7
    assert Intervals().text() == "(none)" and not Intervals()


many = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 3)).map(lambda t: (t[0], t[0] + t[1])), min_size=20, max_size=60)
few = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 30)).map(lambda t: (t[0], t[0] + t[1])), max_size=2)


@given(many, few)
def test_a_few_spans_against_many_take_the_lookup_path_and_agree_too(a, b):
    large, small = Intervals(a), Intervals(b)
    for left, right in ((large, small), (small, large)):
        assert members(left.intersection(right)) == members(left) & members(right)
        assert members(left.difference(right)) == members(left) - members(right)
        result = left.difference(right)
        assert list(result.spans) == sorted(result.spans) and all(x[1] + 1 < y[0] for x, y in zip(result.spans, result.spans[1:], strict=False))
