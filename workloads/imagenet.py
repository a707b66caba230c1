"""ImageNet (ILSVRC 2012) with ResNet-50 v1.5; goal val/error < 0.25 (Shallue et al.).

Data: tfds `imagenet2012`, which tfds cannot download: get ILSVRC2012_img_train.tar
and ILSVRC2012_img_val.tar from image-net.org (registration required), put them
in `<data_dir>/downloads/manual/`, then on a machine with TensorFlow
(`pip install .[data]`) run
`tfds build imagenet2012 --file_format=array_record --data_dir=<data_dir>`.
Training reads the array_record files through `tfds.data_source` (JPEG decoded
by PIL, no TensorFlow).

Splits: train = the official training set less its last 10,000 images;
validation = those 10,000 (held out from train, as for every other workload,
so that goals and checkpoint selection never touch the test set); test = the
official 50,000-image validation set.

Input pipeline (host, streamed; `in_memory = False`): train images get the
Inception-style random-resized crop (area 8-100%, aspect 3/4-4/3) to
`image_size` and a random horizontal flip; eval images are resized so that the
short side is image_size * 256/224 and centre-cropped to `image_size`.
Randomness per image comes from (seed, epoch, index), so the stream is
reproducible whatever the thread timing. Batches carry uint8 images (4x less
host->device traffic than float32); the model normalises per channel on the
accelerator.

Defaults (ours): batch 1024, 112,000 steps (~90 epochs), an eval every 1,250
steps (~1 epoch), eval batches of 500.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from workloads import tfds_source
from workloads.base import DataError, Goal, pad_batch
from workloads.cifar10 import ImageClassifier
from workloads.models import conv as conv_lib
from workloads.models.resnet import ResNet50

NUM_OFFICIAL_TRAIN = 1_281_167


def _resize(img: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
  """Crop `box` (x0, y0, x1, y1; float, source pixels) and resize it to size x size."""
  pil = Image.fromarray(img)
  if pil.mode != "RGB":
    pil = pil.convert("RGB")
  return np.asarray(pil.resize((size, size), Image.BILINEAR, box=box), np.uint8)


def random_resized_crop(img: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
  """Inception-style crop: random area fraction and aspect ratio, 10 tries,
  then a centre crop at the nearest allowed aspect ratio."""
  h, w = img.shape[:2]
  for _ in range(10):
    area = h * w * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw, ch = np.sqrt(area * aspect), np.sqrt(area / aspect)
    if 1 <= cw <= w and 1 <= ch <= h:
      x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
      return _resize(img, (x0, y0, x0 + cw, y0 + ch), size)
  cw, ch = float(w), float(h)
  if w / h < ratio[0]:
    ch = w / ratio[0]
  elif w / h > ratio[1]:
    cw = h * ratio[1]
  x0, y0 = (w - cw) / 2, (h - ch) / 2
  return _resize(img, (x0, y0, x0 + cw, y0 + ch), size)


def center_crop(img: np.ndarray, size: int, resize_ratio: float = 256 / 224) -> np.ndarray:
  """Resize the short side to size * resize_ratio, take the central size x size."""
  h, w = img.shape[:2]
  side = min(h, w) / resize_ratio  # source pixels that map onto `size`
  x0, y0 = (w - side) / 2, (h - side) / 2
  return _resize(img, (x0, y0, x0 + side, y0 + side), size)


class ImagenetResNet50(ImageClassifier):
  """ImageNet, ResNet-50 v1.5; goal val/error < 0.25."""
  name = "imagenet_resnet50"
  goal = Goal("error", 0.25)
  default_train_steps = 112_000
  default_batch_size = 1024
  default_eval_every = 1250
  eval_batch_size = 500
  in_memory = False

  def __init__(self, data_dir: str | None = None, dtype: str = "float32",
               image_size: int = 224, num_validation: int = 10_000,
               zero_init_residual: bool = False, width: int = 64,
               stage_sizes: Sequence[int] = (3, 4, 6, 3), conv: str = "auto"):
    """`width` and `stage_sizes` exist to build a tiny stand-in in tests;
    anything but the defaults is not ResNet-50."""
    super().__init__(data_dir, dtype)
    self.conv, self.conv_impl = conv_lib.choose(conv)
    self.image_size = image_size
    self.num_validation = num_validation
    self.input_shape = (image_size, image_size, 3)
    self.model = ResNet50(num_classes=1000, stage_sizes=tuple(stage_sizes), width=width,
                          zero_init_residual=zero_init_residual, dtype=self.compute_dtype,
                          conv=self.conv)
    self._sources: dict[str, Sequence] = {}

  # ----- data -----
  def _source(self, official_split: str) -> Sequence:
    if official_split not in self._sources:
      try:
        self._sources[official_split] = tfds_source.open_split(
            "imagenet2012", official_split, self.data_dir)
      except DataError as e:
        root = tfds_source.default_data_dir(self.data_dir)
        raise DataError(f"{self.name}: {e} (first put ILSVRC2012_img_train.tar and "
                        f"ILSVRC2012_img_val.tar in {root}/downloads/manual)") from None
    return self._sources[official_split]

  def _range(self, split: str) -> tuple[Sequence, int, int]:
    """(tfds source, lo, hi) of one of our splits."""
    if split == "test":
      src = self._source("validation")
      return src, 0, len(src)
    src = self._source("train")
    cut = len(src) - self.num_validation
    if cut <= 0:
      raise DataError(
          f"{self.name}: {len(src)} training images, cannot hold out {self.num_validation}")
    return (src, 0, cut) if split == "train" else (src, cut, len(src))

  @property
  def num_train_examples(self) -> int:
    if "train" in self._sources:
      return len(self._sources["train"]) - self.num_validation
    return NUM_OFFICIAL_TRAIN - self.num_validation

  def stream(self, split: str, batch_size: int, seed: int, start_step: int = 0
             ) -> Iterator[dict[str, np.ndarray]]:
    if split not in ("train", "validation", "test"):
      raise ValueError(f"unknown split {split!r}")
    src, lo, hi = self._range(split)  # opens now: a missing data set fails here
    train = split == "train"
    size = self.image_size

    def example(epoch: int, i: int) -> tuple[np.ndarray, int]:
      ex = src[int(i)]
      img = np.asarray(ex["image"])
      if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
      if train:
        rng = np.random.default_rng([seed, epoch, int(i)])
        img = random_resized_crop(img, size, rng)
        if rng.random() < 0.5:
          img = img[:, ::-1]
      else:
        img = center_crop(img, size)
      return img, int(ex["label"])

    def batches():
      for epoch, idx in tfds_source.batched_indices(lo, hi, batch_size, seed if train else None,
                                                    start_step if train else 0):
        exs = tfds_source.parallel_map(lambda i: example(epoch, i), idx)
        batch = {"inputs": np.stack([e[0] for e in exs]),
                 "targets": np.asarray([e[1] for e in exs], np.int32)}
        yield batch if train else pad_batch(batch, batch_size)

    return tfds_source.prefetch(batches(), size=2)
