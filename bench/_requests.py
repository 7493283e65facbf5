"""Pre-built raw HTTP requests on disk, the form both load generators read.

A request file holds records `<kind> <length>\\n<raw HTTP/1.1 request>`, where kind is `F`
for a failed status and `O` for any other. One file per generator thread or process, so no
two of them send the same request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from bench._payloads import Delivery

PATH = "/webhook"


def raw_request(delivery: Delivery, path: str = PATH, close: bool = False) -> bytes:
    """`delivery` as the bytes of one HTTP/1.1 POST; `close` asks for a connection of its own."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in delivery.headers.items()]
    lines.append(f"Content-Length: {len(delivery.body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + delivery.body


def write_files(
    prefix: Path, deliveries: Iterable[Delivery], parts: int, close: bool = False
) -> list[Path]:
    """Deal `deliveries` round-robin into `parts` files `<prefix>.<i>.req` (i from 1)."""
    paths = [Path(f"{prefix}.{i + 1}.req") for i in range(parts)]
    handles = [path.open("wb") for path in paths]
    try:
        for n, delivery in enumerate(deliveries):
            request = raw_request(delivery, close=close)
            kind = b"F" if delivery.status == "failed" else b"O"
            handles[n % parts].write(kind + b" %d\n" % len(request) + request)
    finally:
        for handle in handles:
            handle.close()
    return paths


def read_file(path: Path) -> Iterator[tuple[bool, bytes]]:
    """The records of a request file: (failed, raw request)."""
    data = path.read_bytes()
    position = 0
    while position < len(data):
        newline = data.index(b"\n", position)
        kind, length = data[position:newline].split()
        start = newline + 1
        yield kind == b"F", data[start : start + int(length)]
        position = start + int(length)
