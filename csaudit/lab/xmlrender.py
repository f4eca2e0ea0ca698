"""The API's XML rendering (response=xml, the default when `response` is absent).

Minimal but in the real shape: the root element is the response name and carries
the server version; lists repeat the object element; nulls are omitted.
"""

from xml.sax.saxutils import escape, quoteattr


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _emit(name: str, value, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            _emit(name, item, out)
    elif isinstance(value, dict):
        out.append(f"<{name}>")
        for key, item in value.items():
            _emit(key, item, out)
        out.append(f"</{name}>")
    else:
        out.append(f"<{name}>{_scalar(value)}</{name}>")


def to_xml(document: dict, version: str) -> bytes:
    (root, content), = document.items()
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f"<{root} cloud-stack-version={quoteattr(version)}>"]
    for key, value in content.items():
        _emit(key, value, out)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")
