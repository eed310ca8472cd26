"""Reading and writing IDX files, the binary array format MNIST ships in.

Layout (all integers big-endian)::

    byte 0-1   0x00 0x00              magic: must be zero
    byte 2     type code              0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                      0x0D float32, 0x0E float64
    byte 3     ndim                   number of dimensions, >= 1
    4 * ndim   dims                   one uint32 size per dimension
    payload    prod(dims) * itemsize  the values, C order, big-endian

A file may be gzip-compressed; that is detected from its first two bytes (0x1F 0x8B), never
from its name. The payload must have exactly the length the header promises.
"""

import gzip as gz
import os
import zlib

import numpy as np

from scratch.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# type code -> big-endian dtype stored in the file
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path) -> bytes:
    """Return the file's bytes, decompressed when they start with the gzip magic."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from None
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gz.decompress(raw)
    except (EOFError, zlib.error, gz.BadGzipFile) as exc:
        raise DataError(f"{path}: gzip stream is corrupt or cut short ({exc})") from None


def read_idx(path, *, ndim: int | None = None) -> np.ndarray:
    """Return the array stored in IDX file ``path`` (raw or gzipped), in native byte order.

    ``ndim``, if given, is the number of dimensions the caller expects; a file with another
    count raises DataError. The returned array is a fresh, writable copy.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: not an IDX file, expected a 4-byte header, found {len(data)} bytes")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file, expected magic bytes 00 00, found {data[:2].hex(' ')}")
    code, n_dims = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X}, expected one of {known}")
    if n_dims == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions, expected at least 1")
    if ndim is not None and n_dims != ndim:
        raise DataError(f"{path}: expected {ndim} dimensions, found {n_dims}")
    header_len = 4 + 4 * n_dims
    if len(data) < header_len:
        raise DataError(
            f"{path}: truncated header, expected {header_len} bytes for {n_dims} dimensions, "
            f"found {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=n_dims, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    if found < expected:
        raise DataError(
            f"{path}: truncated payload, expected {expected} bytes for shape {shape} {dtype.name}, "
            f"found {found}"
        )
    if found > expected:
        raise DataError(
            f"{path}: {found - expected} trailing bytes, expected {expected} payload bytes "
            f"for shape {shape} {dtype.name}, found {found}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def write_idx(path, array, *, gzip: bool = False) -> None:
    """Write ``array`` to ``path`` in IDX format, gzip-compressed when ``gzip`` is true.

    The array's dtype must be one IDX can hold (uint8, int8, int16, int32, float32, float64)
    and it must have 1 to 255 dimensions.
    """
    if not isinstance(array, np.ndarray):
        raise DataError(f"array: expected a numpy array, found {type(array).__name__}")
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        names = ", ".join(dt.name for dt in codes)
        raise DataError(f"array: IDX cannot store dtype {array.dtype}, expected one of {names}")
    if not 1 <= array.ndim <= 255:
        raise DataError(f"array: IDX needs 1 to 255 dimensions, found {array.ndim}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    blob = header + payload
    if gzip:
        blob = gz.compress(blob)
    with open(os.fspath(path), "wb") as handle:
        handle.write(blob)
