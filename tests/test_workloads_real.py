"""The real-data workloads: models, data loading (real files when present,
tfds mock data otherwise), augmentation and missing-data errors.

CPU only, no network: tfds is exercised through `tfds.testing.mock_data`,
which serves random examples through `tfds.data_source` without TensorFlow.
Programs are compiled at XLA optimisation level 0 to keep the file fast.
"""
from __future__ import annotations

import gzip
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from workloads import DataError  # noqa: E402
from workloads import get as get_workload  # noqa: E402
from workloads.base import weighted_sums  # noqa: E402
from workloads.cifar10 import Cifar10ResNet8, Cifar10ResNet32  # noqa: E402
from workloads.imagenet import ImagenetResNet50, center_crop, random_resized_crop  # noqa: E402
from workloads.lm1b import Lm1bTransformer, ShakespeareLm  # noqa: E402
from workloads.mnist import FashionMnistCnn, MnistCnn, read_idx  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
        "xla_cpu_use_fusion_emitters": False}


def fast_jit(fn, *args):
  """fn compiled for args at low optimisation (CPU compile time dominates here)."""
  return jax.jit(fn).lower(*args).compile(FAST)


def mock(num_examples: int):
  return tfds.testing.mock_data(num_examples=num_examples,
                                policy=tfds.testing.MockPolicy.USE_CODE)


# ----- models: init + loss + grad + eval_metrics -----

def _images(n, size, channels, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _image_batches(size, channels, num_classes=10):
  """Two 3-example batches that differ only in the padded (mask 0) row."""
  a = {"inputs": _images(3, size, channels), "targets": np.array([1, 2, 3], np.int32),
       "mask": np.array([1.0, 1.0, 0.0], np.float32)}
  b = dict(a, inputs=a["inputs"].copy(), targets=np.array([1, 2, num_classes - 1], np.int32))
  b["inputs"][2] = 255 - b["inputs"][2]
  return a, b


def _token_batches(vocab):
  rng = np.random.default_rng(0)
  x = rng.integers(0, vocab, (2, 8)).astype(np.int32)
  y = rng.integers(0, vocab, (2, 8)).astype(np.int32)
  mask = np.ones((2, 8), np.float32)
  mask[1, 5:] = 0.0
  a = {"inputs": x, "targets": y, "mask": mask}
  b = dict(a, targets=y.copy())
  b["targets"][1, 5:] = (y[1, 5:] + 1) % vocab  # only masked targets change
  return a, b


TINY_LM = dict(seq_len=8, num_layers=1, model_dim=16, num_heads=2, mlp_dim=32)
MODEL_CASES = {
    "mnist_cnn": (lambda: MnistCnn(), lambda: _image_batches(28, 1)),
    "fashion_mnist_cnn": (lambda: FashionMnistCnn(), lambda: _image_batches(28, 1)),
    "cifar10_resnet8": (lambda: Cifar10ResNet8(), lambda: _image_batches(32, 3)),
    "imagenet_resnet50": (
        lambda: ImagenetResNet50(image_size=16, width=4, stage_sizes=(1,)),
        lambda: _image_batches(16, 3, 1000)),
    "lm1b_transformer": (lambda: Lm1bTransformer(tokenizer="bytes", **TINY_LM),
                         lambda: _token_batches(256)),
    "shakespeare_lm": (lambda: ShakespeareLm(**TINY_LM), lambda: _token_batches(256)),
}


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_loss_grad_eval(name):
  make_workload, make_batches = MODEL_CASES[name]
  w = make_workload()
  assert w.name == name and w.goal.metric in ("error", "loss")
  batch, other = make_batches()
  key = jax.random.key(0, impl="rbg")  # cheaper to compile than threefry
  params, state = fast_jit(w.init, key)(key)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))

  def step(params, state, batch):
    (loss, new_state), grads = jax.value_and_grad(w.loss, has_aux=True)(
        params, state, batch, jax.random.key(1), True)
    return loss, new_state, grads, weighted_sums(w.eval_metrics(params, state, batch),
                                                 batch.get("mask"))

  run = fast_jit(step, params, state, batch)
  loss, new_state, grads, sums = run(params, state, batch)
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(grads))) > 0
  totals, counts = sums["sums"], sums["counts"]
  assert "loss" in totals and np.isfinite(float(totals["loss"]))
  assert float(counts["loss"]) == float(np.sum(batch["mask"]))
  if "error" in totals:
    assert 0 <= float(totals["error"]) <= float(counts["error"])
  if state:  # batch norm: train=True returns updated running statistics
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(state),
                                                    jax.tree.leaves(new_state))]
    assert any(changed)
  # padded rows / tokens contribute nothing to the runner's eval sums
  other_sums = run(params, state, other)[3]
  for a, b in zip(jax.tree.leaves(sums), jax.tree.leaves(other_sums)):
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


def test_resnet32_traces():
  """ResNet-32 is ResNet-8's code with 5 blocks per stage (ResNet-8 runs above);
  traced here, not compiled, to keep this file fast."""
  w = Cifar10ResNet32()
  params, state = jax.eval_shape(w.init, jax.random.key(0))
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) == 466_906
  conv3x3 = [x for x in jax.tree.leaves(params) if x.shape[:2] == (3, 3)]
  assert len(conv3x3) == 31  # 1 + 3 stages x 5 blocks x 2
  batch = _image_batches(32, 3)[0]
  (loss, new_state), grads = jax.eval_shape(
      lambda p, s: jax.value_and_grad(w.loss, has_aux=True)(p, s, batch, jax.random.key(1), True),
      params, state)
  assert jax.tree.structure(grads) == jax.tree.structure(params) and loss.shape == ()
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  metrics = jax.eval_shape(w.eval_metrics, params, state, batch)
  assert set(metrics) == {"loss", "error"} and metrics["loss"].shape == batch["targets"].shape


def test_registry_names_and_defaults():
  for name in list(MODEL_CASES) + ["cifar10_resnet32"]:
    cls = type(get_workload(name))
    assert cls.name == name
    assert cls.default_batch_size > 0 and cls.default_train_steps > 0
    assert 0 < cls.default_eval_every <= cls.default_train_steps
  assert MnistCnn.in_memory and Cifar10ResNet32.in_memory and ShakespeareLm.in_memory
  assert not ImagenetResNet50.in_memory and not Lm1bTransformer.in_memory


def test_resnet50_is_resnet50():
  w = ImagenetResNet50()
  shapes = jax.eval_shape(w.init, jax.random.key(0))[0]
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == 25_557_032  # torchvision's


def test_bfloat16_compute_keeps_fp32_params():
  w = Cifar10ResNet8(dtype="bfloat16")
  key = jax.random.key(0, impl="rbg")
  params, state = fast_jit(w.init, key)(key)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  batch = _image_batches(32, 3)[0]
  metrics = fast_jit(w.eval_metrics, params, state, batch)(params, state, batch)
  assert np.all(np.isfinite(metrics["loss"])) and metrics["loss"].dtype == jnp.float32


# ----- augmentation -----

def test_cifar_augment_is_pad_crop_flip():
  images = _images(6, 32, 3, seed=1)
  w = Cifar10ResNet8()
  batch = {"inputs": images, "targets": np.arange(6, dtype=np.int32)}
  aug = fast_jit(w.augment, batch, jax.random.key(0))
  out1 = np.asarray(aug(batch, jax.random.key(3))["inputs"])
  out2 = np.asarray(aug(batch, jax.random.key(3))["inputs"])
  out3 = np.asarray(aug(batch, jax.random.key(4))["inputs"])
  assert out1.shape == images.shape and out1.dtype == np.uint8
  np.testing.assert_array_equal(out1, out2)  # deterministic for a fixed rng
  assert not np.array_equal(out1, out3) and not np.array_equal(out1, images)
  np.testing.assert_array_equal(np.asarray(aug(batch, jax.random.key(3))["targets"]),
                                batch["targets"])
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  kinds = set()
  for out in (out1, out3):
    for i in range(len(images)):  # each output is a crop of the padded image, maybe flipped
      found = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
               if np.array_equal(out[i], padded[i, dy:dy + 32, dx:dx + 32][:, ::-1 if f else 1])]
      assert found, f"example {i} is not a crop of the padded image"
      kinds.add(found[0][2])
      kinds.add((found[0][0], found[0][1]))
  assert True in kinds and False in kinds and len(kinds) > 3  # flips and shifts both happen


def test_imagenet_crops():
  img = _images(1, 40, 3)[0][:, :25]  # 40 x 25, not square
  rng = np.random.default_rng(0)
  a = random_resized_crop(img, 16, np.random.default_rng(5))
  b = random_resized_crop(img, 16, np.random.default_rng(5))
  assert a.shape == (16, 16, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert center_crop(img, 16).shape == (16, 16, 3)
  assert random_resized_crop(img[:3, :2], 16, rng).shape == (16, 16, 3)  # tiny image: upsampled


# ----- data: real files (skipped where absent) -----

@pytest.mark.skipif(not (SHARED_DATA / "mnist.npz").is_file(),
                    reason=f"real MNIST not present at {SHARED_DATA}/mnist.npz")
def test_mnist_from_real_npz():
  w = MnistCnn(data_dir=str(SHARED_DATA))
  sizes = {s: len(w.arrays(s)["targets"]) for s in ("train", "validation", "test")}
  assert sizes == {"train": 55_000, "validation": 5_000, "test": 10_000}
  x = w.arrays("train")["inputs"]
  assert x.dtype == np.uint8 and x.shape[1:] == (28, 28, 1)
  assert w.num_train_examples == 55_000
  with np.load(SHARED_DATA / "mnist.npz") as f:  # validation = last 5,000 of train
    np.testing.assert_array_equal(w.arrays("validation")["inputs"][..., 0], f["x_train"][-5000:])
  assert set(np.unique(w.arrays("test")["targets"])) == set(range(10))
  assert w.describe()["data_source"].endswith("mnist.npz")


@pytest.mark.skipif(not (SHARED_DATA / "tinyshakespeare.txt").is_file(),
                    reason=f"real Tiny Shakespeare not present at {SHARED_DATA}")
def test_shakespeare_from_real_text():
  w = ShakespeareLm(data_dir=str(SHARED_DATA))
  n = {s: len(w.arrays(s)["inputs"]) for s in ("train", "validation", "test")}
  assert n == {"train": 1_003_854 // 256, "validation": 55_770 // 256, "test": 55_770 // 256}
  tr = w.arrays("train")
  assert tr["inputs"].shape[1] == 256
  np.testing.assert_array_equal(tr["inputs"][:, 1:], tr["targets"][:, :-1])
  assert bytes(tr["inputs"][0, :14].astype(np.uint8)) == b"First Citizen:"
  assert w.describe()["text_sha256"] == "86c4e6aa9db7c042"


def _write_idx(path: pathlib.Path, arr: np.ndarray, gz: bool) -> None:
  header = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
  data = header + arr.astype(np.uint8).tobytes()
  (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb").write(data)


def test_fashion_mnist_from_idx_files(tmp_path):
  rng = np.random.default_rng(0)
  x_train = rng.integers(0, 256, (5_007, 28, 28), dtype=np.uint8)
  y_train = rng.integers(0, 10, 5_007).astype(np.uint8)
  x_test = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
  y_test = rng.integers(0, 10, 4).astype(np.uint8)
  for i, (name, arr) in enumerate([("train-images-idx3-ubyte", x_train),
                                   ("train-labels-idx1-ubyte", y_train),
                                   ("t10k-images-idx3-ubyte", x_test),
                                   ("t10k-labels-idx1-ubyte", y_test)]):
    _write_idx(tmp_path / name, arr, gz=i % 2 == 0)  # gzip and raw mixed
  np.testing.assert_array_equal(read_idx(str(tmp_path / "t10k-labels-idx1-ubyte")), y_test)
  w = FashionMnistCnn(data_dir=str(tmp_path))
  assert len(w.arrays("train")["inputs"]) == 7 and len(w.arrays("validation")["inputs"]) == 5000
  np.testing.assert_array_equal(w.arrays("test")["inputs"][..., 0], x_test)
  np.testing.assert_array_equal(w.arrays("validation")["targets"], y_train[-5000:])


# ----- data: tfds mock data (no TensorFlow, no download) -----

@pytest.mark.parametrize("cls, shape", [(MnistCnn, (28, 28, 1)),
                                        (FashionMnistCnn, (28, 28, 1)),
                                        (Cifar10ResNet8, (32, 32, 3))])
def test_small_image_sets_through_tfds(cls, shape, tmp_path):
  with mock(5_006):
    w = cls(data_dir=str(tmp_path))
    arrays = {s: w.arrays(s) for s in ("train", "validation", "test")}
  assert {s: len(a["targets"]) for s, a in arrays.items()} == {
      "train": 6, "validation": 5_000, "test": 5_006}
  for a in arrays.values():
    assert a["inputs"].dtype == np.uint8 and a["inputs"].shape[1:] == shape
    assert a["targets"].dtype == np.int32 and a["targets"].min() >= 0 and a["targets"].max() < 10
  assert w.num_train_examples == 6
  assert w.describe()["data_source"].startswith("tfds")


def _take(it, n):
  out = [next(it) for _ in range(n)]
  it.close()
  return out


def test_imagenet_stream_mock(tmp_path):
  w = ImagenetResNet50(data_dir=str(tmp_path), image_size=16, num_validation=3)
  with mock(10):
    train = _take(w.stream("train", 4, seed=0), 3)
    again = _take(w.stream("train", 4, seed=0), 1)
    resumed = _take(w.stream("train", 4, seed=0, start_step=2), 1)  # 1 batch/epoch: epoch 2
    other = _take(w.stream("train", 4, seed=1), 1)
    val = list(w.stream("validation", 2, seed=0))
    test = list(w.stream("test", 4, seed=0))
    assert w.num_train_examples == 7
  for b in train:
    assert set(b) == {"inputs", "targets"}
    assert b["inputs"].shape == (4, 16, 16, 3) and b["inputs"].dtype == np.uint8
    assert b["targets"].dtype == np.int32 and b["targets"].max() < 1000
  np.testing.assert_array_equal(train[0]["inputs"], again[0]["inputs"])  # seeded
  np.testing.assert_array_equal(train[2]["inputs"], resumed[0]["inputs"])
  assert not np.array_equal(train[0]["inputs"], other[0]["inputs"])
  assert [b["mask"].tolist() for b in val] == [[1, 1], [1, 0]]
  assert len(test) == 3 and test[-1]["mask"].tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("tokenizer", ["bytes", "sentencepiece"])
def test_lm1b_stream_mock(tokenizer, tmp_path):
  if tokenizer == "sentencepiece":
    pytest.importorskip("sentencepiece")
  w = Lm1bTransformer(data_dir=str(tmp_path), tokenizer=tokenizer, vocab_size=300,
                      num_validation=4, **TINY_LM)
  with mock(12):
    train = _take(w.stream("train", 3, seed=0), 4)
    again = _take(w.stream("train", 3, seed=0), 4)
    resumed = _take(w.stream("train", 3, seed=0, start_step=3), 1)
    val = list(w.stream("validation", 3, seed=0))
    src = tfds.data_source("lm1b", split="train", download=False)
    val_text = [src[i]["text"] for i in range(8, 12)]
    describe = w.describe()
  vocab = w.tokenizer.vocab_size
  for b in train:
    assert set(b) == {"inputs", "targets"} and b["inputs"].shape == (3, 8)
    assert b["inputs"].max() < vocab
    np.testing.assert_array_equal(b["inputs"][:, 1:], b["targets"][:, :-1])
  np.testing.assert_array_equal(np.stack([b["inputs"] for b in train]),
                                np.stack([b["inputs"] for b in again]))
  np.testing.assert_array_equal(train[3]["inputs"], resumed[0]["inputs"])
  # eval: every token of the split but the first is a target exactly once
  ids = w.tokenizer.encode([t.decode() if isinstance(t, bytes) else t for t in val_text])
  stream = np.concatenate([np.append(t, w.tokenizer.eos_id) for t in ids])
  assert all(b["mask"].shape == (3, 8) for b in val)
  mask = np.concatenate([b["mask"] for b in val]).reshape(-1).astype(bool)
  np.testing.assert_array_equal(np.concatenate([b["targets"] for b in val]).reshape(-1)[mask],
                                stream[1:])
  assert describe["tokenizer"].startswith("bytes" if tokenizer == "bytes" else "spm_unigram_300")
  if tokenizer == "sentencepiece":
    assert any(tmp_path.glob("lm1b_tokenizer/*.model"))  # cached for the next run


def test_shakespeare_through_tfds(tmp_path):
  with mock(3):
    w = ShakespeareLm(data_dir=str(tmp_path), seq_len=4)
    arrays = {s: w.arrays(s) for s in ("train", "validation", "test")}
  assert arrays["train"]["inputs"].shape[1] == 4 and len(arrays["train"]["inputs"]) > 0
  assert w.describe()["data_source"].startswith("tfds")


# ----- missing data -----

@pytest.mark.parametrize("make, read", [
    (lambda d: MnistCnn(data_dir=d), lambda w: w.arrays("train")),
    (lambda d: Cifar10ResNet32(data_dir=d), lambda w: w.arrays("train")),
    (lambda d: ShakespeareLm(data_dir=d), lambda w: w.arrays("train")),
    (lambda d: ImagenetResNet50(data_dir=d), lambda w: w.stream("train", 2, 0)),
    (lambda d: Lm1bTransformer(data_dir=d), lambda w: w.stream("validation", 2, 0)),
])
def test_missing_data_is_one_line_data_error(make, read, tmp_path):
  w = make(str(tmp_path))
  with pytest.raises(DataError) as e:
    read(w)
  msg = str(e.value)
  assert "\n" not in msg and str(tmp_path) in msg and "tfds build" in msg
  assert os.listdir(tmp_path) == []  # nothing downloaded or created
