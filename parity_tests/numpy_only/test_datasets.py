"""Tests of scratch.datasets: IDX, MNIST (IDX, Keras npz, Kaggle CSV), toy sets, checks.

Small files are written under ``tmp_path``; one test reads the bundled real MNIST. Every bad
input must raise exactly one DataError (no chained cause) whose message names the file or
argument and what went wrong.
"""

import contextlib
import gzip
import hashlib
import re

import numpy as np
import pytest

from scratch.datasets import (
    MnistSplits,
    blobs,
    check_xy,
    load_kaggle_csv,
    load_keras_npz,
    load_mnist,
    one_hot,
    read_idx,
    read_mnist_pixels,
    resolve_data_dir,
    scale_pixels,
    two_spirals,
    write_idx,
    xor,
)
from scratch.datasets.mnist import BUNDLED_DIR, ENV_VAR, IDX_FILES
from scratch.errors import DataError

PIXEL_HEADER = ",".join(f"pixel{i}" for i in range(784))


@contextlib.contextmanager
def raises_one(match):
    """``pytest.raises(DataError, match=...)`` that also checks no other exception is chained."""
    with pytest.raises(DataError, match=match) as info:
        yield info
    error = info.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def tiny_mnist(n_train=3, n_test=2, seed=0):
    """Small valid uint8 images (n, 28, 28) and labels (n,) for both splits."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def write_mnist_idx(folder, arrays, *, compress=True):
    """Write ``arrays`` (keys x_train, ...) as the four standard IDX files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_FILES.items():
        write_idx(folder / (name + (".gz" if compress else "")), arrays[key], gzip=compress)
    return folder


def csv_text(rows, *, has_labels=True):
    header = ("label," if has_labels else "") + PIXEL_HEADER
    return "\n".join([header] + [",".join(str(v) for v in row) for row in rows]) + "\n"


def csv_rows(n=3, *, has_labels=True, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, 784))
    if not has_labels:
        return pixels.tolist()
    return np.column_stack([rng.integers(0, 10, n), pixels]).tolist()


# --- IDX --------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64],
    ids=lambda d: np.dtype(d).name,
)
def test_idx_round_trip(tmp_path, dtype, compress):
    array = (np.arange(2 * 3 * 4) % 100).reshape(2, 3, 4).astype(dtype)
    path = tmp_path / "array.idx"  # the name says nothing: gzip is detected by magic bytes
    write_idx(path, array, gzip=compress)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if compress else b"\x00\x00")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_idx_header_is_big_endian(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 1, 2], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes.fromhex("00000801 00000003 070102")


GOOD = np.arange(6, dtype=np.uint8).reshape(2, 3)
GOOD_BYTES = bytes.fromhex("00000802 00000002 00000003") + GOOD.tobytes()

BAD_IDX = [
    pytest.param(
        b"\x01\x00" + GOOD_BYTES[2:],
        {},
        r"expected magic bytes 00 00, found 01 00",
        id="corrupt-magic",
    ),
    pytest.param(b"not gzip and not idx either", {}, r"not an IDX file", id="garbage"),
    pytest.param(b"\x00\x00", {}, r"expected a 4-byte header, found 2", id="too-short"),
    pytest.param(
        b"\x00\x00\x0a\x02" + GOOD_BYTES[4:],
        {},
        r"unknown IDX type code 0x0A",
        id="unknown-type-code",
    ),
    pytest.param(b"\x00\x00\x08\x00", {}, r"0 dimensions", id="zero-dims"),
    pytest.param(
        GOOD_BYTES,
        {"ndim": 3},
        r"expected 3 dimensions, found 2",
        id="wrong-dims-count",
    ),
    pytest.param(GOOD_BYTES[:8], {}, r"truncated header", id="truncated-header"),
    pytest.param(
        GOOD_BYTES[:-1],
        {},
        r"truncated payload, expected 6 bytes .* found 5",
        id="truncated-payload",
    ),
    pytest.param(GOOD_BYTES + b"\x00\x00", {}, r"2 trailing bytes", id="trailing-bytes"),
    pytest.param(
        gzip.compress(GOOD_BYTES)[:-12],
        {},
        r"gzip stream is corrupt or cut short",
        id="gzip-cut-short",
    ),
    pytest.param(
        b"\x1f\x8b" + b"\x00" * 30,
        {},
        r"gzip stream is corrupt or cut short",
        id="gzip-magic-then-garbage",
    ),
    pytest.param(
        gzip.compress(GOOD_BYTES[:-1]),
        {},
        r"truncated payload",
        id="gzip-ok-payload-short",
    ),
]


def test_good_idx_bytes_are_good(tmp_path):
    (tmp_path / "good").write_bytes(GOOD_BYTES)
    np.testing.assert_array_equal(read_idx(tmp_path / "good", ndim=2), GOOD)


@pytest.mark.parametrize(("content", "kwargs", "message"), BAD_IDX)
def test_read_idx_rejects(tmp_path, content, kwargs, message):
    path = tmp_path / "bad-file"
    path.write_bytes(content)
    with raises_one(re.escape(str(path)) + ".*" + message):
        read_idx(path, **kwargs)


def test_read_idx_missing_file(tmp_path):
    path = tmp_path / "nope"
    with raises_one(re.escape(str(path)) + ".*cannot read IDX file"):
        read_idx(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        pytest.param(np.zeros(3, dtype=np.int64), r"cannot store dtype int64", id="int64"),
        pytest.param(np.zeros(3, dtype=bool), r"cannot store dtype bool", id="bool"),
        pytest.param([1, 2, 3], r"expected a numpy array, found list", id="list"),
        pytest.param(np.array(3, np.uint8), r"1 to 255 dimensions, found 0", id="0-d"),
    ],
)
def test_write_idx_rejects(tmp_path, array, message):
    with raises_one(r"array: .*" + message):
        write_idx(tmp_path / "x", array)


# --- MNIST from a folder ----------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_load_mnist_idx_round_trip(tmp_path, dtype, compress):
    arrays = tiny_mnist()
    splits = load_mnist(write_mnist_idx(tmp_path, arrays, compress=compress), dtype=dtype)
    assert isinstance(splits, MnistSplits)
    assert splits.x_train.shape == (3, 784) and splits.x_test.shape == (2, 784)
    assert splits.x_train.dtype == dtype and splits.x_test.dtype == dtype
    assert splits.y_train.dtype == np.int64 and splits.y_test.dtype == np.int64
    for split in ("train", "test"):
        x = getattr(splits, f"x_{split}")
        assert x.min() >= 0.0 and x.max() <= 1.0
        expected = arrays[f"x_{split}"].reshape(-1, 784).astype(dtype) / dtype(255)
        np.testing.assert_array_equal(x, expected)
        np.testing.assert_array_equal(getattr(splits, f"y_{split}"), arrays[f"y_{split}"])


def test_scaling_endpoints(tmp_path):
    arrays = tiny_mnist()
    arrays["x_train"][0, 0, :3] = [0, 255, 51]
    x = load_mnist(write_mnist_idx(tmp_path, arrays)).x_train
    assert x[0, :3].tolist() == [0.0, 1.0, 0.2]


def test_a_folder_read_again_comes_from_memory_until_a_file_changes(tmp_path):
    folder = write_mnist_idx(tmp_path, tiny_mnist())
    first = read_mnist_pixels(folder)
    assert read_mnist_pixels(folder) is first                       # kept, not read again
    assert first.x_train.dtype == np.uint8 and first.x_train.shape == (3, 784)
    assert not any(array.flags.writeable for array in first)         # nobody can change the kept copy
    scaled = load_mnist(folder)
    scaled.x_train[0, 0] = 7.0                                       # a caller's own fresh copy
    scaled.y_train[0] = 9
    assert load_mnist(folder).x_train[0, 0] != 7.0 and read_mnist_pixels(folder) is first
    changed = tiny_mnist(n_train=4)
    write_mnist_idx(tmp_path, changed)                               # new size and time: read again
    again = read_mnist_pixels(folder)
    assert again is not first and again.x_train.shape == (4, 784)
    np.testing.assert_array_equal(again.x_train, changed["x_train"].reshape(4, 784))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_scaling_drawn_rows_equals_drawing_from_the_scaled_split(tmp_path, dtype):
    folder = write_mnist_idx(tmp_path, tiny_mnist(n_train=500))     # every pixel value 0..255 occurs
    pixels = read_mnist_pixels(folder)
    rows = np.random.default_rng(3).choice(len(pixels.x_train), size=50, replace=False)
    np.testing.assert_array_equal(scale_pixels(pixels.x_train[rows], dtype),
                                  load_mnist(folder, dtype=dtype).x_train[rows])


def test_load_mnist_from_keras_npz(tmp_path):
    arrays = tiny_mnist()
    np.savez(tmp_path / "mnist.npz", **arrays)
    from_dir = load_mnist(tmp_path, dtype=np.float32)
    from_file = load_keras_npz(tmp_path / "mnist.npz", np.float32)
    for a, b in zip(from_dir, from_file, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(from_dir.x_test * 255, arrays["x_test"].reshape(2, 784))
    assert from_dir.x_train.dtype == np.float32 and from_dir.y_test.dtype == np.int64


def test_idx_files_win_over_npz(tmp_path):
    write_mnist_idx(tmp_path, tiny_mnist(n_train=3))
    np.savez(tmp_path / "mnist.npz", **tiny_mnist(n_train=5))
    assert load_mnist(tmp_path).x_train.shape == (3, 784)


def test_explicit_dir_beats_env_var(tmp_path, monkeypatch):
    write_mnist_idx(tmp_path / "explicit", tiny_mnist(n_train=3))
    write_mnist_idx(tmp_path / "env", tiny_mnist(n_train=4))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert load_mnist().x_train.shape == (4, 784)
    assert load_mnist(tmp_path / "explicit").x_train.shape == (3, 784)
    assert load_mnist(str(tmp_path / "explicit")).x_train.shape == (3, 784)


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_without_env_var_the_bundled_copy_is_used(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, value)
    assert resolve_data_dir() == BUNDLED_DIR


def test_env_var_naming_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with raises_one(re.escape(str(tmp_path / "missing")) + r".*\$BACKPROP_PARITY_DATA.*not"):
        load_mnist()


def test_nothing_found_lists_folder_and_names(tmp_path):
    with raises_one(re.escape(str(tmp_path)) + r": no MNIST data found") as info:
        load_mnist(tmp_path)
    for name in [*IDX_FILES.values(), "mnist.npz"]:
        assert name in str(info.value)


def test_partial_idx_set_is_reported(tmp_path):
    write_mnist_idx(tmp_path, tiny_mnist())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with raises_one(r"no MNIST data found.*present: \['train-images"):
        load_mnist(tmp_path)


def _idx_case(key, array):
    """Build a folder of good tiny MNIST IDX files with ``key`` replaced by ``array``."""

    def build(folder):
        arrays = tiny_mnist()
        arrays[key] = array
        write_mnist_idx(folder, arrays)
        return folder, re.escape(IDX_FILES[key])

    return build


def _npz_case(drop=None, **replace):
    def build(folder):
        arrays = {**tiny_mnist(), **replace}
        arrays.pop(drop, None)
        np.savez(folder / "mnist.npz", **arrays)
        return folder, re.escape(str(folder / "mnist.npz"))

    return build


BAD_MNIST = [
    pytest.param(
        _idx_case("x_train", np.zeros((4, 28, 28), np.uint8)),
        r".*4 images but .* 3 labels",
        id="idx-image-label-count-mismatch",
    ),
    pytest.param(
        _idx_case("x_test", np.zeros((2, 27, 28), np.uint8)),
        r".*expected images of shape \(n, 28, 28\), found \(2, 27, 28\)",
        id="idx-image-27x28",
    ),
    pytest.param(
        _idx_case("x_train", np.zeros((3, 784), np.uint8)),
        r".*expected 3 dimensions, found 2",
        id="idx-images-wrong-dims-count",
    ),
    pytest.param(
        _idx_case("y_test", np.array([1, 10], np.uint8)),
        r".*labels must be in \[0, 10\).*index 1 \(value 10\)",
        id="idx-label-10",
    ),
    pytest.param(
        _idx_case("x_train", np.zeros((3, 28, 28), np.float32)),
        r".*expected uint8 images, found float32",
        id="idx-float-images",
    ),
    pytest.param(
        _npz_case(drop="y_test"),
        r".*missing key\(s\) \['y_test'\]",
        id="npz-missing-key",
    ),
    pytest.param(
        _npz_case(y_train=np.array([0, 1], np.uint8)),
        r".*3 images but .* 2 labels",
        id="npz-image-label-count-mismatch",
    ),
    pytest.param(
        _npz_case(x_train=np.zeros((3, 28, 28))),
        r"\[x_train\]: expected uint8 images",
        id="npz-float-images",
    ),
    pytest.param(
        _npz_case(y_test=np.array([0.0, 1.0])),
        r"\[y_test\]: expected 1-D integer labels",
        id="npz-float-labels",
    ),
]


@pytest.mark.parametrize(("build", "message"), BAD_MNIST)
def test_load_mnist_rejects(tmp_path, build, message):
    folder, where = build(tmp_path)
    with raises_one(where + message):
        load_mnist(folder)


def test_npz_that_is_not_a_zip(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"garbage, not a zip archive")
    with raises_one(re.escape(str(path)) + r": cannot read as \.npz"):
        load_keras_npz(path)


def test_npz_that_is_a_single_npy(tmp_path):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    with raises_one(re.escape(str(path)) + r": expected an \.npz archive"):
        load_keras_npz(path)


@pytest.mark.parametrize(
    ("dtype", "found"),
    [
        pytest.param(np.int64, "int64", id="int64"),
        pytest.param(np.uint8, "uint8", id="uint8"),
        pytest.param(np.float16, "float16", id="float16"),
        pytest.param("no-such-dtype", "'no-such-dtype'", id="garbage-name"),
    ],
)
def test_load_mnist_dtype_must_be_float32_or_float64(dtype, found):
    with raises_one(r"dtype: expected float32 or float64, found " + re.escape(found)):
        load_mnist(dtype=dtype)


# --- Kaggle CSV -------------------------------------------------------------------------


@pytest.mark.parametrize("has_labels", [True, False], ids=["train.csv", "test.csv"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kaggle_csv_round_trip(tmp_path, has_labels, dtype):
    rows = csv_rows(has_labels=has_labels)
    path = tmp_path / "train.csv"
    path.write_text(csv_text(rows, has_labels=has_labels))
    x, y = load_kaggle_csv(path, dtype=dtype, has_labels=has_labels)
    table = np.array(rows)
    assert x.shape == (3, 784) and x.dtype == dtype
    np.testing.assert_array_equal(x, table[:, -784:].astype(dtype) / dtype(255))
    assert x.min() >= 0.0 and x.max() <= 1.0
    if has_labels:
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, table[:, 0])
    else:
        assert y is None


def _bad_csv(edit, **kwargs):
    """Good 3-row train.csv text changed by ``edit(lines) -> lines``."""

    def build():
        lines = csv_text(csv_rows(), **kwargs).splitlines()
        return "\n".join(edit(lines)) + "\n"

    return build


def _set(line_no, column, value):
    def edit(lines):
        fields = lines[line_no - 1].split(",")
        fields[column] = value
        lines[line_no - 1] = ",".join(fields)
        return lines

    return edit


BAD_CSV = [
    pytest.param(
        _bad_csv(lambda ls: ["lbl," + PIXEL_HEADER] + ls[1:]),
        r"line 1: bad header, column 1: expected 'label', found 'lbl'",
        id="bad-header",
    ),
    pytest.param(
        _bad_csv(lambda ls: [PIXEL_HEADER] + ls[1:]),
        r"line 1: bad header, expected 785 columns .* found 784",
        id="header-no-label",
    ),
    pytest.param(
        _bad_csv(lambda ls: ls[:2] + [ls[2] + ",0"] + ls[3:]),
        r"line 3: expected 785 columns, found 786",
        id="too-many-columns",
    ),
    pytest.param(
        _bad_csv(lambda ls: ls[:3] + [ls[3].rsplit(",", 1)[0]]),
        r"line 4: expected 785 columns, found 784",
        id="too-few-columns",
    ),
    pytest.param(
        _bad_csv(lambda ls: ls[:2] + [""] + ls[2:]),
        r"line 3: expected 785 columns, found 1",
        id="blank-line",
    ),
    pytest.param(
        _bad_csv(_set(3, 5, "256")),
        r"line 3: column pixel4: expected a pixel in 0\.\.255, found 256",
        id="value-256",
    ),
    pytest.param(
        _bad_csv(_set(2, 1, "-1")),
        r"line 2: column pixel0: expected a pixel in 0\.\.255, found -1",
        id="value-neg",
    ),
    pytest.param(
        _bad_csv(_set(4, 0, "10")),
        r"line 4: column label: expected 0\.\.9, found 10",
        id="label-10",
    ),
    pytest.param(
        _bad_csv(_set(2, 7, "1.5")),
        r"line 2: column pixel6: expected an integer, found '1\.5'",
        id="float-value",
    ),
    pytest.param(
        _bad_csv(_set(3, 2, "")),
        r"line 3: column pixel1: expected an integer, found ''",
        id="empty-value",
    ),
    pytest.param(
        _bad_csv(_set(3, 2, "#")),
        r"line 3: column pixel1: expected an integer, found '#'",
        id="hash-value",
    ),
    pytest.param(_bad_csv(lambda ls: ls[:1]), r"no data rows", id="header-only"),
    pytest.param(lambda: "", r"empty file", id="empty-file"),
]


@pytest.mark.parametrize(("build", "message"), BAD_CSV)
def test_kaggle_csv_rejects(tmp_path, build, message):
    path = tmp_path / "train.csv"
    path.write_text(build())
    with raises_one(re.escape(str(path)) + ": " + message):
        load_kaggle_csv(path)


def test_kaggle_csv_dtype_int_refused(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(csv_text(csv_rows()))
    with raises_one(r"dtype: expected float32 or float64, found int32"):
        load_kaggle_csv(path, dtype=np.int32)


# --- real MNIST -------------------------------------------------------------------------

MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}


@pytest.mark.parametrize("name", sorted(MD5))
def test_bundled_files_match_documented_md5(name):
    data = gzip.decompress((BUNDLED_DIR / name).read_bytes())
    assert hashlib.md5(data).hexdigest() == MD5[name]


def test_real_mnist_documented_facts(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    splits = load_mnist(dtype=np.float32)  # bundled copy; float32 keeps memory low
    assert splits.x_train.shape == (60000, 784) and splits.y_train.shape == (60000,)
    assert splits.x_test.shape == (10000, 784) and splits.y_test.shape == (10000,)
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    assert splits.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(splits.y_train, minlength=10).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(splits.y_test, minlength=10).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    for x in (splits.x_train, splits.x_test):
        assert x.min() == 0.0 and x.max() == 1.0


# --- check_xy and one_hot ---------------------------------------------------------------


def _xy(n=4, f=3):
    return np.zeros((n, f)), np.array([0, 1, 2, 1][:n], dtype=np.int64)


def _with_x(fn):
    x, y = _xy()
    return fn(x), y


def _nan_x(x):
    x[2, 1] = np.nan
    x[3, 0] = np.nan
    return x


def _inf_x(x):
    x[1, 2] = -np.inf
    return x


BAD_XY = [
    pytest.param(
        _with_x(_nan_x),
        r"2 non-finite values, first at row 2, column 1 \(nan\)",
        id="nan",
    ),
    pytest.param(
        _with_x(_inf_x),
        r"1 non-finite values, first at row 1, column 2 \(-inf\)",
        id="inf",
    ),
    pytest.param(
        (np.zeros((4, 2)), _xy()[1]),
        r"x must have 3 features, found 2",
        id="wrong-feature-count",
    ),
    pytest.param((np.zeros((0, 3)), np.zeros(0, np.int64)), r"empty set", id="empty"),
    pytest.param(
        (np.zeros((3, 3)), _xy()[1]),
        r"x has 3 rows but y has 4 labels",
        id="mismatched-lengths",
    ),
    pytest.param(
        (_xy()[0], np.array([0.0, 1.0, 2.0, 1.0])),
        r"y must have an integer dtype, "
        r"found float64",
        id="float-labels",
    ),
    pytest.param(
        (_xy()[0], np.array([0, 1, 3, 5])),
        r"labels must be in \[0, 3\), found 2 "
        r"outside, first at index 2 \(value 3\)",
        id="label-out-of-range",
    ),
    pytest.param(
        (_xy()[0], np.array([0, -1, 1, 1])),
        r"first at index 1 \(value -1\)",
        id="negative-label",
    ),
    pytest.param((np.zeros(4), _xy()[1]), r"x must be 2-D", id="x-1d"),
    pytest.param((_xy()[0], _xy()[1].reshape(4, 1)), r"y must be 1-D", id="y-2d"),
    pytest.param(
        (_xy()[0].tolist(), _xy()[1]),
        r"x must be a numpy array, found list",
        id="x-list",
    ),
    pytest.param((_xy()[0].astype(complex), _xy()[1]), r"real numeric dtype", id="x-complex"),
]


@pytest.mark.parametrize(("xy", "message"), BAD_XY)
def test_check_xy_rejects(xy, message):
    x, y = xy
    with raises_one(r"^train set: .*" + message):
        check_xy(x, y, n_features=3, n_classes=3, name="train set")


def test_check_xy_accepts_good_data():
    x, y = _xy()
    check_xy(x, y, n_features=3, n_classes=3)
    check_xy(x.astype(np.float32), y.astype(np.uint8), n_features=3, n_classes=3)
    check_xy(x[:2], np.array([0, 1]), n_features=3, n_classes=2)  # binary


def test_check_xy_binary_rejects_label_2():
    x, y = _xy()
    with raises_one(r"^data: labels must be in \[0, 2\)"):
        check_xy(x, y, n_features=3, n_classes=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"n_features": 0, "n_classes": 3}, r"^n_features: ", id="n_features-0"),
        pytest.param({"n_features": 3, "n_classes": 1}, r"^n_classes: .*>= 2", id="n_classes-1"),
        pytest.param({"n_features": 3.0, "n_classes": 3}, r"^n_features: ", id="n_features-float"),
    ],
)
def test_check_xy_rejects_bad_arguments(kwargs, message):
    with raises_one(message):
        check_xy(*_xy(), **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_one_hot(dtype):
    encoded = one_hot(np.array([2, 0, 1, 2]), 3, dtype)
    assert encoded.dtype == dtype and encoded.shape == (4, 3)
    np.testing.assert_array_equal(encoded, np.eye(3)[[2, 0, 1, 2]])


@pytest.mark.parametrize(
    ("y", "message"),
    [
        pytest.param(np.array([0, 3]), r"^y: labels must be in \[0, 3\).*index 1", id="label-3"),
        pytest.param(np.array([0.0, 1.0]), r"^y: expected a 1-D integer", id="float-labels"),
        pytest.param(np.array([[0, 1]]), r"^y: expected a 1-D integer", id="2d"),
    ],
)
def test_one_hot_rejects(y, message):
    with raises_one(message):
        one_hot(y, 3)


# --- toy problems -----------------------------------------------------------------------


def test_xor_truth_table():
    x, y = xor()
    assert x.dtype == np.float64 and y.dtype == np.int64
    for (a, b), label in zip(x.tolist(), y.tolist(), strict=True):
        assert label == (int(a) ^ int(b))
    assert sorted(map(tuple, x.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert xor(np.float32)[0].dtype == np.float32


GENERATORS = {
    "two_spirals": lambda seed, dtype=np.float64: two_spirals(50, noise=0.1, seed=seed, dtype=dtype),
    "blobs": lambda seed, dtype=np.float64: blobs(
        40, n_classes=4, n_features=5, spread=0.3, seed=seed, dtype=dtype
    ),
}
SHAPES = {"two_spirals": (100, 2, 2), "blobs": (160, 5, 4)}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_toy_shapes_balance_and_dtype(name):
    n, n_features, n_classes = SHAPES[name]
    for dtype in (np.float32, np.float64):
        x, y = GENERATORS[name](seed=3, dtype=dtype)
        assert x.shape == (n, n_features) and x.dtype == dtype
        assert y.shape == (n,) and y.dtype == np.int64
        assert np.bincount(y).tolist() == [n // n_classes] * n_classes
        check_xy(x, y, n_features=n_features, n_classes=n_classes)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_toy_is_deterministic(name):
    x1, y1 = GENERATORS[name](seed=7)
    x2, y2 = GENERATORS[name](seed=7)
    assert x1.tobytes() == x2.tobytes() and y1.tobytes() == y2.tobytes()
    x3, _ = GENERATORS[name](seed=8)
    assert x1.tobytes() != x3.tobytes()


def test_spirals_without_noise_are_mirror_images():
    x, y = two_spirals(20, seed=0)
    np.testing.assert_array_equal(x[y == 1], -x[y == 0])
    radius = np.hypot(x[:, 0], x[:, 1])
    assert radius.min() > 0.0 and np.isclose(radius.max(), 1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: two_spirals(0), r"^n_per_class: .*found 0", id="spirals-n-0"),
        pytest.param(lambda: two_spirals(-3), r"^n_per_class: ", id="spirals-n-negative"),
        pytest.param(
            lambda: two_spirals(2.0),
            r"^n_per_class: .*found 2\.0",
            id="spirals-n-float",
        ),
        pytest.param(lambda: two_spirals(True), r"^n_per_class: ", id="spirals-n-bool"),
        pytest.param(lambda: two_spirals(5, noise=-0.1), r"^noise: ", id="spirals-noise-negative"),
        pytest.param(lambda: two_spirals(5, noise=np.nan), r"^noise: ", id="spirals-noise-nan"),
        pytest.param(lambda: two_spirals(5, turns=0), r"^turns: .*> 0", id="spirals-turns-0"),
        pytest.param(lambda: two_spirals(5, seed=None), r"^seed: ", id="spirals-seed-none"),
        pytest.param(lambda: two_spirals(5, seed=-1), r"^seed: ", id="spirals-seed-negative"),
        pytest.param(lambda: two_spirals(5, dtype=np.int64), r"^dtype: ", id="spirals-dtype-int"),
        pytest.param(lambda: blobs(5, n_classes=1), r"^n_classes: .*>= 2", id="blobs-1-class"),
        pytest.param(lambda: blobs(5, n_features=0), r"^n_features: ", id="blobs-0-features"),
        pytest.param(lambda: blobs(5, spread=-1), r"^spread: ", id="blobs-spread-negative"),
        pytest.param(lambda: blobs(5, spread="1"), r"^spread: ", id="blobs-spread-str"),
        pytest.param(lambda: xor(np.int64), r"^dtype: ", id="xor-dtype-int"),
    ],
)
def test_toy_rejects_bad_arguments(call, message):
    with raises_one(message):
        call()
