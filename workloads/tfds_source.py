"""Reading tensorflow-datasets splits without TensorFlow, and host-side batching.

`tfds.data_source` gives random access to prepared array_record data with
NumPy decoding (images through PIL), so real data needs no TensorFlow at
training time; only *building* a data set does (`pip install .[data]`, then
`tfds build NAME --file_format=array_record`). We never let tfds download or
build implicitly: a missing data set is a DataError with one line saying where
we looked and how to get it.

The streaming helpers here (`batched_indices`, `prefetch`, `parallel_map`) keep
the host input pipeline small and deterministic: every example's randomness is
derived from (seed, epoch, index), never from thread timing.
"""
from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from workloads.base import DataError


def default_data_dir(data_dir: str | None) -> str:
  """Where tfds looks when no data_dir is given ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
  if data_dir:
    return os.fspath(data_dir)
  return os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def how_to_get(name: str, data_dir: str | None) -> str:
  where = f" --data_dir={data_dir}" if data_dir else ""
  return (f"`pip install .[data]` then `tfds build {name} --file_format=array_record{where}` "
          "(a machine with network)")


def open_split(name: str, split: str, data_dir: str | None) -> Sequence[dict[str, Any]]:
  """A random-access tfds split (NumPy examples); DataError if it is not prepared."""
  try:
    import tensorflow_datasets as tfds  # heavy; only real-data workloads need it
  except ImportError as e:  # pragma: no cover - tfds is a dependency
    raise DataError(f"{name}: tensorflow-datasets is not installed ({e})") from None
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several kinds; all mean "not usable here"
    root = default_data_dir(data_dir)
    if not os.path.isdir(os.path.join(root, name.split("/")[0].split(":")[0])):
      problem = f"not prepared in {root}"
    else:  # e.g. prepared as tfrecord, which has no random access
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      problem = f"cannot read it in {root} ({first})"
    raise DataError(f"tfds {name}/{split}: {problem}; get it with {how_to_get(name, data_dir)}"
                    ) from None


def get_many(source: Sequence[dict[str, Any]], keys: Sequence[int]) -> list[dict[str, Any]]:
  """Examples at `keys`, read in one call where the source supports it."""
  keys = [int(k) for k in keys]
  if not keys:
    return []
  try:
    return list(source.__getitems__(keys))  # array_record batch read
  except (AttributeError, TypeError):  # no batch read (or tfds' mock, whose batch read is broken)
    return [source[k] for k in keys]


def read_all(source: Sequence[dict[str, Any]], features: dict[str, str],
             chunk: int = 4096) -> dict[str, np.ndarray]:
  """A whole split as stacked arrays: {out_name: array} for {out_name: feature}."""
  n = len(source)
  out: dict[str, list[np.ndarray]] = {k: [] for k in features}
  for start in range(0, n, chunk):
    for ex in get_many(source, range(start, min(n, start + chunk))):
      for k, f in features.items():
        out[k].append(np.asarray(ex[f]))
  return {k: np.stack(v) if v else np.zeros((0,)) for k, v in out.items()}


def batched_indices(lo: int, hi: int, batch_size: int, seed: int | None, start: int = 0
                    ) -> Iterator[tuple[int, np.ndarray]]:
  """(epoch, indices) batches over [lo, hi).

  seed=None: one ordered pass, the last batch short (eval). Otherwise an
  endless sequence of epochs, each a fresh permutation from (seed, epoch),
  dropping each epoch's remainder (as the in-memory runner does); `start`
  batches are skipped without reading anything (a resumed trial).
  """
  n = hi - lo
  if n <= 0:
    raise DataError(f"empty index range [{lo}, {hi})")
  if seed is None:
    for start in range(lo, hi, batch_size):
      yield 0, np.arange(start, min(hi, start + batch_size))
    return
  if n < batch_size:
    raise DataError(f"batch size {batch_size} exceeds the {n} training examples")
  per_epoch = n // batch_size
  epoch, skip = divmod(start, per_epoch)
  while True:
    order = lo + np.random.default_rng([seed, epoch]).permutation(n)
    for pos in range(skip, per_epoch):
      yield epoch, order[pos * batch_size:(pos + 1) * batch_size]
    epoch, skip = epoch + 1, 0


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
  """fn over items on a shared thread pool, results in order (PIL and the
  array_record reader release the GIL, so decoding scales with cores)."""
  global _POOL
  with _POOL_LOCK:
    if _POOL is None:
      _POOL = concurrent.futures.ThreadPoolExecutor(
          max_workers=min(32, os.cpu_count() or 1), thread_name_prefix="data")
  return list(_POOL.map(fn, items))


def _put(q: queue.Queue, stop: threading.Event, item: Any) -> bool:
  while not stop.is_set():
    try:
      q.put(item, timeout=0.1)
      return True
    except queue.Full:
      continue
  return False


_END = object()


def _produce(it: Iterator[Any], q: queue.Queue, stop: threading.Event) -> None:
  try:
    for item in it:
      if not _put(q, stop, item):
        return
    _put(q, stop, _END)
  except BaseException as e:  # handed to the consumer
    _put(q, stop, e)


class prefetch:  # noqa: N801 - used like a function
  """Iterate `it` on a background thread, `size` items ahead.

  The thread holds no reference to this object, so it stops (within 0.1 s of
  finishing its current item) when the consumer closes or drops the iterator;
  an exception in the producer is re-raised in the consumer.
  """

  def __init__(self, it: Iterator[Any], size: int = 2):
    self._q: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    threading.Thread(target=_produce, args=(it, self._q, self._stop), daemon=True).start()

  def __iter__(self) -> "prefetch":
    return self

  def __next__(self) -> Any:
    if self._stop.is_set():
      raise StopIteration
    item = self._q.get()
    if item is _END:
      self._stop.set()
      raise StopIteration
    if isinstance(item, BaseException):
      self._stop.set()
      raise item
    return item

  def close(self) -> None:
    self._stop.set()

  def __del__(self) -> None:
    self._stop.set()


# ----- small image classification sets (MNIST, Fashion-MNIST, CIFAR-10) -----

def load_npz(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(x_train, y_train, x_test, y_test) from a Keras-style .npz file."""
  try:
    with np.load(path) as f:
      out = tuple(np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
  except (OSError, KeyError, ValueError) as e:
    raise DataError(f"{path}: not a data set .npz with x_train, y_train, x_test, y_test ({e})"
                    ) from None
  return out  # type: ignore[return-value]


def load_tfds_images(name: str, data_dir: str | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(x_train, y_train, x_test, y_test) of an official tfds train/test image set."""
  out = []
  for split in ("train", "test"):
    arr = read_all(open_split(name, split, data_dir), {"x": "image", "y": "label"})
    out += [arr["x"], arr["y"]]
  return tuple(out)  # type: ignore[return-value]


def image_splits(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, num_validation: int, image_shape: tuple[int, ...]
                 ) -> dict[str, dict[str, np.ndarray]]:
  """train / validation (the last `num_validation` official train examples) / test,
  as uint8 images of `image_shape` and int32 labels."""
  from workloads.base import carve_validation

  def clean(x: np.ndarray, y: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y).reshape(-1)
    if x.dtype != np.uint8:
      raise DataError(f"{what} images must be uint8 in [0, 255], got {x.dtype}")
    x = x.reshape((len(x),) + tuple(image_shape))  # e.g. [N, 28, 28] -> [N, 28, 28, 1]
    if len(x) != len(y):
      raise DataError(f"{what}: {len(x)} images but {len(y)} labels")
    return x, y.astype(np.int32)

  x_train, y_train = clean(x_train, y_train, "train")
  x_test, y_test = clean(x_test, y_test, "test")
  (xt, yt), (xv, yv) = carve_validation(x_train, y_train, num_validation)
  return {"train": {"inputs": xt, "targets": yt},
          "validation": {"inputs": xv, "targets": yv},
          "test": {"inputs": x_test, "targets": y_test}}
