"""Every JSON document the commands write (``check --json``, ``explain --json``, ``bench --json``,
``train --save``'s history, the report's ``results.json``), written one way.

The format: UTF-8 (non-ASCII characters as themselves), one-space indent, keys in insertion order,
a trailing newline, and no NaN or infinity — JSON has neither, so a writer turns a non-finite
number into ``null`` before it gets here, and one that slips through is an error, never a bare
``NaN`` token that strict parsers reject. The whole text is serialized before anything touches the
disk, then written to a temporary file beside the target and renamed into place
(:func:`scratch.weights.write_atomically`): a document that cannot be serialized, or a write that
fails, leaves neither the file nor a temporary file behind.
"""

from __future__ import annotations

import json
from pathlib import Path


def json_bytes(document, where: str) -> bytes:
    """``document`` as the project's JSON text, UTF-8 encoded. A non-finite float or an object
    JSON cannot hold raises ``ValueError`` naming ``where`` (the file it was meant for)."""
    try:
        text = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: not written: the document is not valid JSON ({error})") from None
    return (text + "\n").encode("utf-8")


def write_json(path, document) -> Path:
    """Serialize ``document`` (:func:`json_bytes`), then write it atomically to ``path`` (parent
    folders created). A failed write raises :class:`scratch.errors.ParityError` naming the path."""
    from scratch.errors import ParityError
    from scratch.weights import write_atomically

    path = Path(path)
    payload = json_bytes(document, str(path))
    try:
        return write_atomically(path, payload)
    except OSError as error:
        raise ParityError(f"{path}: cannot write ({error.strerror or error})") from None
