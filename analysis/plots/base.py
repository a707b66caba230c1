"""What every figure module shares: saving a PNG whole, grids, legends, log axes, colours."""
from __future__ import annotations

import math
import os
import textwrap
import warnings
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display, safe in batch jobs and threads
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import interrupts  # noqa: E402

DPI = 110
MAX_LEGEND = 12
DIVERGED_COLOR = "tab:red"


# ------------------------------------------------------------------------------ helpers

def save_png(fig: Any, path: str | os.PathLike, *, tight: bool = False,
          rect: Sequence[float] | None = None) -> str:
  """One draw. Margins are fixed in inches by _figure; `tight` adds a layout pass (a
  second draw, 40% of the cost) for figures whose labels vary in size."""
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  try:
    if tight:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tight_layout on crowded grids
        fig.tight_layout(rect=rect)
    # A whole figure or none: written beside it and renamed, and a Ctrl-C or
    # SIGTERM meanwhile waits for the rename (analysis.interrupts).
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with interrupts.shielded():
      try:
        fig.savefig(tmp, dpi=DPI, format=os.path.splitext(path)[1][1:] or None)
        os.replace(tmp, path)
      except BaseException:
        if os.path.exists(tmp):
          os.remove(tmp)
        raise
  finally:
    plt.close(fig)
  return path


def finite(x: Any) -> np.ndarray:
  """Floats with +-inf as NaN, so lines break instead of running off the axes."""
  a = pd.to_numeric(pd.Series(x), errors="coerce").to_numpy(dtype=float)
  return np.where(np.isfinite(a), a, np.nan)


def groups(df: pd.DataFrame, keys: Sequence[str]):
  """(label, frame) per group; one unlabeled group when there are no keys."""
  keys = [k for k in keys if k in df.columns]
  if not keys:
    yield "", df
    return
  for key, g in df.groupby(keys, sort=True, dropna=False):
    key = key if isinstance(key, tuple) else (key,)
    yield " / ".join(short_label(v) for v in key), g


def short_label(v: Any) -> str:
  if isinstance(v, float):
    return "-" if math.isnan(v) else f"{v:g}"
  return "-" if v is None else str(v)


def legend(ax: Any, **kw: Any) -> None:
  handles, labels = ax.get_legend_handles_labels()
  if labels:
    ax.legend(handles[:MAX_LEGEND], labels[:MAX_LEGEND], fontsize=7, **kw)


# Margins in inches around and between panels (room for tick labels, axis labels, titles).
MARGIN = {"left": 1.0, "right": 0.2, "bottom": 0.6, "top": 0.75, "wspace": 0.85, "hspace": 0.85}


def grid(n: int, ncols: int = 3, size: tuple[float, float] = (4.2, 3.2)):
  """A figure of n panels, `size` inches each plus fixed margins (no layout pass)."""
  ncols = max(1, min(ncols, n))
  nrows = max(1, math.ceil(n / ncols))
  m = MARGIN
  width = m["left"] + m["right"] + ncols * size[0] + (ncols - 1) * m["wspace"]
  height = m["bottom"] + m["top"] + nrows * size[1] + (nrows - 1) * m["hspace"]
  fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
  fig.subplots_adjust(left=m["left"] / width, right=1 - m["right"] / width,
                      bottom=m["bottom"] / height, top=1 - m["top"] / height,
                      wspace=m["wspace"] / size[0], hspace=m["hspace"] / size[1])
  for ax in axes.ravel()[n:]:
    ax.set_visible(False)
  return fig, list(axes.ravel()[:n])


def suptitle(fig: Any, text: str) -> None:
  """Figure title in the top margin, clear of the panels' own titles; wrapped
  when wider than the figure (about 10 characters an inch)."""
  width = int(10 * fig.get_figwidth())
  if len(text) > width:
    text = textwrap.fill(text, width)
  fig.suptitle(text, y=1 - 0.08 / fig.get_figheight(), va="top")


def single(size: tuple[float, float] = (5.6, 3.8)):
  fig, axes = grid(1, 1, size)
  return fig, axes[0]


def empty_figure(path: str | os.PathLike, title: str, why: str) -> str:
  fig, ax = single((4.5, 1.2))
  ax.axis("off")
  ax.set_title(title)
  ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9, wrap=True)
  return save_png(fig, path)


def log_axis(ax: Any, which: str = "x", base: float = 10) -> None:
  """Log scale once the axis holds positive data (matplotlib cannot draw an empty one)."""
  minpos = ax.dataLim.minposx if which == "x" else ax.dataLim.minposy
  if np.isfinite(minpos) and minpos > 0:
    (ax.set_xscale if which == "x" else ax.set_yscale)("log", base=base)


def up_down(y: np.ndarray, g: pd.DataFrame, lo: str | None, hi: str | None) -> np.ndarray:
  """Error-bar lengths below / above y from bound columns (an unbounded side: none)."""
  down = y - finite(g[lo]) if lo else np.zeros(len(y))
  up = finite(g[hi]) - y if hi else np.zeros(len(y))
  err = np.vstack([down, up])
  return np.where(np.isfinite(err), np.clip(err, 0, None), 0)


def log2_batch_axis(ax: Any) -> None:
  log_axis(ax, "x", base=2)

def colors_for(names: Sequence[Any]) -> dict[str, str]:
  """One colour per submission, the same in every panel (tab20 beyond 10)."""
  unique = sorted({str(n) for n in names})
  if len(unique) <= 10:
    return {n: f"C{i}" for i, n in enumerate(unique)}
  cmap = plt.get_cmap("tab20")
  return {n: cmap(i % 20) for i, n in enumerate(unique)}


def figure_legend(fig: Any, colors: Mapping[str, Any]) -> float:
  """Every submission in one legend under the panels; the height it takes (figure fraction)."""
  handles = [plt.Line2D([], [], color=c, lw=2) for c in colors.values()]
  width = max(len(n) for n in colors) * 0.07 + 0.6  # inches per legend column
  ncol = max(1, min(len(handles), int(fig.get_size_inches()[0] / width)))
  fig.legend(handles, list(colors), fontsize=7, loc="lower center", ncol=ncol, frameon=False)
  rows = math.ceil(len(handles) / ncol)
  return min(0.4, (0.25 + 0.17 * rows) / fig.get_size_inches()[1])
