"""Sets of integers as sorted, disjoint, non-adjacent closed intervals: ports, protocol numbers and
addresses (as integers). A packet field the evaluator does not know exactly (the ephemeral source
port, the ports of a range flow, any source address) is such a set, and a rule that matches part of
it splits it in two: the part that matches and the part that does not."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

PORTS = (0, 65535)
PROTOCOLS = (0, 255)
IPV4 = (0, 2**32 - 1)
IPV6 = (0, 2**128 - 1)
# Linux's default net.ipv4.ip_local_port_range: where an unbound connect takes its source port.
EPHEMERAL = (32768, 60999)


class Intervals:
    """An immutable set of integers; `spans` are (first, last) pairs, inclusive, in order."""

    __slots__ = ("spans", "_firsts")

    def __init__(self, spans: Iterable[tuple[int, int]] = ()):
        merged: list[list[int]] = []
        for first, last in sorted(spans):
            if first > last:
                raise ValueError(f"empty interval {first}-{last}")
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        self.spans: tuple[tuple[int, int], ...] = tuple((a, b) for a, b in merged)
        self._firsts: list[int] | None = None

    @classmethod
    def of(cls, first: int, last: int | None = None) -> Intervals:
        last = first if last is None else last
        if first > last:
            raise ValueError(f"empty interval {first}-{last}")
        return cls._made(((first, last),))

    @classmethod
    def everything(cls, domain: tuple[int, int]) -> Intervals:
        return cls((domain,))

    def __bool__(self) -> bool:
        return bool(self.spans)

    def __eq__(self, other) -> bool:
        return isinstance(other, Intervals) and self.spans == other.spans

    def __hash__(self) -> int:
        return hash(self.spans)

    def __repr__(self) -> str:
        return f"Intervals({self.text()})"

    def __contains__(self, value: int) -> bool:
        index = bisect.bisect_right(self._firsts_list(), value) - 1
        return index >= 0 and value <= self.spans[index][1]

    def single(self) -> int | None:
        """The one value of a set of one, else None."""
        if len(self.spans) == 1 and self.spans[0][0] == self.spans[0][1]:
            return self.spans[0][0]
        return None

    def size(self) -> int:
        return sum(b - a + 1 for a, b in self.spans)

    @classmethod
    def _made(cls, spans) -> Intervals:
        """From spans already sorted, disjoint and non-adjacent (the set operations' own results)."""
        made = cls()
        made.spans = tuple(spans)
        return made

    def _firsts_list(self) -> list[int]:
        if self._firsts is None:
            self._firsts = [a for a, _ in self.spans]
        return self._firsts

    def union(self, other: Intervals) -> Intervals:
        return Intervals(self.spans + other.spans)

    def intersection(self, other: Intervals) -> Intervals:
        small, large = (self, other) if len(self.spans) <= len(other.spans) else (other, self)
        if len(small.spans) * 8 < len(large.spans):  # a few spans against many (any address but a few): look them up
            firsts, spans, result = large._firsts_list(), large.spans, []
            for first, last in small.spans:
                index = max(bisect.bisect_right(firsts, first) - 1, 0)
                while index < len(spans) and spans[index][0] <= last:
                    low, high = max(first, spans[index][0]), min(last, spans[index][1])
                    if low <= high:
                        result.append((low, high))
                    index += 1
            return Intervals._made(result)
        result, i, j = [], 0, 0
        a, b = self.spans, other.spans
        while i < len(a) and j < len(b):
            first, last = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if first <= last:
                result.append((first, last))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return Intervals._made(result)

    def difference(self, other: Intervals) -> Intervals:
        if not other.spans or not self.spans:
            return self
        if len(other.spans) * 8 < len(self.spans):  # cut a few holes in many spans: splice around them
            spans = list(self.spans)
            for first, last in other.spans:
                firsts = [a for a, _ in spans] if len(spans) < 64 else None
                low = bisect.bisect_right(firsts, first) - 1 if firsts is not None else _find(spans, first)
                low = max(low, 0)
                high = low
                pieces = []
                while high < len(spans) and spans[high][0] <= last:
                    a, b = spans[high]
                    if b >= first:
                        if a < first:
                            pieces.append((a, first - 1))
                        if b > last:
                            pieces.append((last + 1, b))
                    else:
                        pieces.append((a, b))
                    high += 1
                spans[low:high] = pieces
            return Intervals._made(spans)
        result = []
        for first, last in self.spans:
            start = first
            for cut_first, cut_last in other.spans:
                if cut_last < start or cut_first > last:
                    continue
                if cut_first > start:
                    result.append((start, cut_first - 1))
                start = max(start, cut_last + 1)
                if start > last:
                    break
            if start <= last:
                result.append((start, last))
        return Intervals._made(result)

    def complement(self, domain: tuple[int, int]) -> Intervals:
        return Intervals.everything(domain).difference(self)

    def issubset(self, other: Intervals) -> bool:
        return not self.difference(other)

    def isdisjoint(self, other: Intervals) -> bool:
        return not self.intersection(other)

    def text(self, render=str) -> str:
        return ", ".join(render(a) if a == b else f"{render(a)}-{render(b)}" for a, b in self.spans) or "(none)"


def _find(spans: list[tuple[int, int]], value: int) -> int:
    """The index of the last span starting at or before `value` (binary search on a list of pairs)."""
    low, high = 0, len(spans)
    while low < high:
        middle = (low + high) // 2
        if spans[middle][0] <= value:
            low = middle + 1
        else:
            high = middle
    return low - 1
