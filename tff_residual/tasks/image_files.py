"""Readers for the image datasets' real file formats (NumPy only).

* IDX (LeCun's MNIST format, also Fashion-MNIST's), raw or gzip-compressed:
  a directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
* ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (Keras'
  ``mnist.npz`` cache, ``../shared/data``'s copies).
* CIFAR-10's "python version": a ``cifar-10-batches-py`` directory of pickled
  ``data_batch_1..5`` and ``test_batch`` (Keras' CIFAR-10 cache).

Every reader raises ``DataError`` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np

from tff_residual.tasks.base import UNREADABLE_FILE_ERRORS, Arrays, DataError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_idx(path: str) -> np.ndarray:
  """One IDX file (optionally gzip) as an array of its stored shape."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except UNREADABLE_FILE_ERRORS as error:
    raise DataError(f"cannot read IDX file {path}: {error}") from None
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise DataError(f"{path} is not an IDX file (bad magic number).")
  ndim = data[3]
  header = 4 + 4 * ndim
  dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  expected = header + int(np.prod(dims)) * dtype.itemsize
  if len(data) != expected:
    raise DataError(f"{path}: IDX header says {dims} ({expected} bytes), file has {len(data)}.")
  return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx_files(directory: str) -> dict[str, str] | None:
  """Paths of the four IDX files in ``directory`` (raw or .gz), or None if any is missing."""
  found = {}
  for key, name in IDX_FILES.items():
    for candidate in (name, name + ".gz"):
      path = os.path.join(directory, candidate)
      if os.path.isfile(path):
        found[key] = path
        break
  return found if len(found) == len(IDX_FILES) else None


def load_idx_directory(directory: str) -> tuple[Arrays, Arrays]:
  """(train, test) from a directory holding the four IDX files."""
  files = find_idx_files(directory)
  if files is None:
    missing = [n for n in IDX_FILES.values()
               if not any(os.path.isfile(os.path.join(directory, n + s)) for s in ("", ".gz"))]
    raise DataError(f"{directory} lacks the IDX file(s) {missing} (raw or .gz).")
  train = Arrays(read_idx(files["train_images"]), read_idx(files["train_labels"]).astype(np.int64))
  test = Arrays(read_idx(files["test_images"]), read_idx(files["test_labels"]).astype(np.int64))
  return train, test


def load_npz(path: str) -> tuple[Arrays, Arrays]:
  """(train, test) from an ``.npz`` holding x_train, y_train, x_test, y_test."""
  try:
    with np.load(path, allow_pickle=False) as data:
      missing = [k for k in NPZ_KEYS if k not in data.files]
      if missing:
        raise DataError(f"{path} lacks the array(s) {missing}; an image .npz needs {list(NPZ_KEYS)}.")
      arrays = {k: data[k] for k in NPZ_KEYS}
  except DataError:
    raise
  except (*UNREADABLE_FILE_ERRORS, ValueError) as error:
    raise DataError(f"cannot read {path} as .npz: {error}") from None
  return (Arrays(arrays["x_train"], arrays["y_train"].astype(np.int64).reshape(-1)),
          Arrays(arrays["x_test"], arrays["y_test"].astype(np.int64).reshape(-1)))


def load_cifar_batches(directory: str) -> tuple[Arrays, Arrays]:
  """(train, test) from CIFAR-10's pickled python batches (NHWC uint8)."""
  def read(name):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
      raise DataError(f"{directory} lacks the CIFAR-10 batch file {name}.")
    try:
      with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
      x = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
      return x, np.asarray(batch[b"labels"], np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as error:
      raise DataError(f"{path} is not a CIFAR-10 python batch: {error}") from None
  parts = [read(f"data_batch_{i}") for i in range(1, 6)]
  x_test, y_test = read("test_batch")
  return (Arrays(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])),
          Arrays(x_test, y_test))


def load_image_path(path: str, image_shape: tuple[int, ...]) -> tuple[Arrays, Arrays]:
  """(train, test) from ``--data_path``: an .npz, an IDX directory or a CIFAR batch directory.

  Images are checked against ``image_shape`` (a trailing channel axis of 1 may
  be absent).
  """
  if not os.path.exists(path):
    raise DataError(f"--data_path {path} does not exist.")
  if os.path.isdir(path):
    if find_idx_files(path) is not None:
      train, test = load_idx_directory(path)
    elif os.path.isfile(os.path.join(path, "data_batch_1")):
      train, test = load_cifar_batches(path)
    else:
      raise DataError(f"--data_path {path} is a directory without the four IDX files "
                      f"({', '.join(IDX_FILES.values())}) or CIFAR-10 python batches.")
  elif path.endswith(".npz"):
    train, test = load_npz(path)
  else:
    raise DataError(f"--data_path {path}: expected an .npz file or a directory of IDX files.")
  for name, arrays in (("train", train), ("test", test)):
    check_images(arrays.x, image_shape, f"{path} ({name})")
  return train, test


def check_images(x: np.ndarray, image_shape: tuple[int, ...], where: str) -> None:
  """DataError unless ``x`` is [n, *image_shape] (or [n, H, W] for one channel)."""
  shape = tuple(x.shape[1:])
  if shape != tuple(image_shape) and not (image_shape[-1] == 1 and shape == tuple(image_shape[:-1])):
    raise DataError(f"{where}: images have shape {shape}, this dataset needs {tuple(image_shape)}.")
