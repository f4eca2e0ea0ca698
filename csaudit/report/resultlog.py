"""The judged flows of a run, kept on disk as report lines while the run goes on.

A cloud of 20,000 hosts has over half a million flows, and held as objects they take gigabytes.
The pipeline judges one zone at a time and appends its results here, already as the JSON lines of
the report's `flows`; memory keeps only the counts. Renderers read the lines back, each reader with
its own position, so two can run at once.
"""

from __future__ import annotations

import json
import json.encoder
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator

from csaudit.judge.verdict import summary_of
from csaudit.model.errors import CsauditError
from csaudit.model.results import FlowResult
from csaudit.report.document import flow_json
from csaudit.report.groups import FlowGroup, FlowGrouper

READ_CHUNK = 1 << 20
WRITE_BATCH = 2000  # lines


def _line_encoder():
    """json.dumps for one flow, with json's C encoder built once instead of once per call: at
    500,000 flows that rebuild was a third of the encoding time. json.dumps where there is no C encoder."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    defaults = json.JSONEncoder()
    encode = make(None, defaults.default, json.encoder.encode_basestring_ascii, None,
                  defaults.key_separator, defaults.item_separator, False, False, True)
    return lambda value: "".join(encode(value, 0))


encode_line = _line_encoder()


class ResultLog:
    def __init__(self):
        self._statuses: Counter = Counter()
        self._gaps: Counter = Counter()
        self._size = 0
        self._count = 0
        self._grouper = FlowGrouper()  # the terminal report's groups, built as results arrive: no second pass
        try:
            self._file = tempfile.TemporaryFile()  # unlinked at once: nothing is left behind, even on a crash
        except OSError as exc:
            raise CsauditError(f"cannot create a temporary file for the results ({tempfile.gettempdir()}): {exc.strerror}") from None

    def append(self, results: Iterable[FlowResult]) -> None:
        batch: list[str] = []
        for result in results:
            self._statuses[result.status] += 1
            if result.gap is not None:
                self._gaps[result.gap] += 1
            flow = flow_json(result)
            self._grouper.add(flow)
            batch.append(encode_line(flow))
            if len(batch) >= WRITE_BATCH:
                self._write(batch)
                batch = []
        self._write(batch)

    @property
    def summary(self) -> dict:
        return summary_of(self._statuses, self._gaps)

    def groups(self) -> list[FlowGroup]:
        """The flows appended so far that did not pass, grouped (csaudit/report/groups.py)."""
        return self._grouper.groups()

    def _write(self, lines: list[str]) -> None:
        """A batch at a time: a zone's 60,000 lines joined at once would be 40 MB of text, twice."""
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode()
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            raise CsauditError(f"cannot keep the results in a temporary file ({tempfile.gettempdir()}): {exc.strerror}") from None
        self._size += len(data)
        self._count += len(lines)

    def __len__(self) -> int:
        return self._count

    def lines(self) -> Iterator[str]:
        """Each flow as its JSON text, in the order appended."""
        fd, offset, rest = self._file.fileno(), 0, b""
        while offset < self._size:
            chunk = os.pread(fd, min(READ_CHUNK, self._size - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            *complete, rest = (rest + chunk).split(b"\n")
            for line in complete:
                yield line.decode()

    def __iter__(self) -> Iterator[dict]:
        """Each flow as its report dict."""
        return (json.loads(line) for line in self.lines())

    def close(self) -> None:
        self._file.close()
