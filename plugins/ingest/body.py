"""Reading a request body within the size limit: Content-Type, Content-Encoding, gzip.

The limit applies to the *decompressed* size and is enforced while decompressing (never
inflating more than the limit plus one byte), so a gzip bomb costs us at most the limit.
"""

from __future__ import annotations

import zlib

from sensorhub.errors import problem

from .parsing import MEDIA_TYPES

# Gzip of incompressible data is a little larger than the data; allow that much on the wire.
GZIP_OVERHEAD = 1024


def media_type(request) -> str:
    """The bare media type of the body, or a 415 problem naming what we take."""
    header = request.headers.get("Content-Type", "")
    media, _, params = header.partition(";")
    media = media.strip().lower()
    if media not in MEDIA_TYPES:
        shown = repr(media) if media else "no Content-Type"
        raise problem(
            415,
            f"{shown} is not taken here: send application/json, "
            "application/x-ndjson or application/senml+json",
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise problem(415, f"charset {value.strip()!r} is not taken: send UTF-8")
    return media


def read_body(request, max_bytes: int) -> bytes:
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise problem(415, f"Content-Encoding {encoding!r} is not taken: send gzip or none")
    compressed = encoding != "identity"
    wire_limit = max_bytes + (GZIP_OVERHEAD if compressed else 0)
    length = request.content_length
    if length is not None and length > wire_limit:
        raise _too_large(max_bytes)
    raw = request.body_file.read(wire_limit + 1)
    if len(raw) > wire_limit:
        raise _too_large(max_bytes)
    return _gunzip(raw, max_bytes) if compressed else raw


def _too_large(max_bytes: int):
    return problem(
        413,
        f"the body is larger than the limit of {max_bytes} bytes (after "
        "decompression; sensorhub.ingest.max_body_size): send smaller batches",
    )


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    data = raw
    try:
        while True:  # a gzip stream may hold several members (concatenated files)
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(data, max_bytes + 1 - len(out))
            if len(out) > max_bytes or inflater.unconsumed_tail:
                raise _too_large(max_bytes)
            if not inflater.eof:
                raise problem(400, "the gzip body is truncated")
            data = inflater.unused_data
            if not data:
                return bytes(out)
    except zlib.error as error:
        raise problem(400, f"Content-Encoding is gzip but the body is not valid gzip ({error})")
