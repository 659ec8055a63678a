"""Split a byte stream into raw messages: one per line, whatever the line ending.

A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (old Mac and some Windows tools), so a file
with CR-only endings never merges its messages into one. A UTF-8 byte order mark at the very
start of a stream is not part of the first message and is dropped. Lines keep their ending
(the pipeline trims it); reading goes chunk by chunk, so memory stays flat whatever the file
size, and a line may span any number of chunks.

Example::

    import io
    from tracelab.ingest.lines import split_messages

    list(split_messages(io.BytesIO(b"\\xef\\xbb\\xbfa\\rb\\r\\nc")))  # [b"a\\r", b"b\\r\\n", b"c"]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["BOM", "CHUNK_BYTES", "split_messages"]

#: The UTF-8 byte order mark, dropped at the start of a stream.
BOM = b"\xef\xbb\xbf"
#: Bytes read per chunk.
CHUNK_BYTES = 1 << 20


def split_messages(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The stream's lines, each with its line ending (``\\n``, ``\\r\\n`` or ``\\r``) if any.

    A leading UTF-8 BOM is dropped. ``bytes.splitlines`` splits on exactly these three endings
    (unlike ``str.splitlines``), so form feeds, NUL or U+2028 stay inside a message.

    Example: ``list(split_messages(io.BytesIO(b"a\\rb")))`` -> ``[b'a\\r', b'b']``
    """
    read = getattr(stream, "read1", None) or stream.read
    chunk = b""
    while len(chunk) < len(BOM):  # the BOM may come split over the first reads
        more = read(chunk_bytes)
        if not more:
            break
        chunk += more
    if chunk.startswith(BOM):
        chunk = chunk[len(BOM) :] or read(chunk_bytes)
    pending: list[bytes] = []  # pieces of a line whose end has not been seen yet
    while chunk:
        lines = chunk.splitlines(keepends=True)
        if pending:
            if pending[-1].endswith(b"\r"):  # ended, unless this chunk starts with its '\n'
                if lines[0] == b"\n":
                    pending.append(lines.pop(0))
                yield b"".join(pending)
                pending.clear()
            else:  # the chunk's first piece continues the pending line
                head = lines.pop(0)
                pending.append(head)
                if head.endswith(b"\n") or (head.endswith(b"\r") and lines):
                    yield b"".join(pending)
                    pending.clear()
        if lines:
            last = lines.pop()
            yield from lines
            if last.endswith(b"\n"):
                yield last
            else:
                pending.append(last)
        chunk = read(chunk_bytes)
    if pending:
        yield b"".join(pending)
