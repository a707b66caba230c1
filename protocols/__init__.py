"""Tuning protocols: search spaces, samplers, budgets, objectives and seeds, as data.

  from protocols import presets, sample_points, validate
  p = presets.get('choi_all', optimizer='adam', num_trials=50)
  validate(p)                      # ProtocolError (one line) before any compute
  points = sample_points(p, study_seed=0, num=50)

Layers, each importing only those before it: search_space (parameters and their
mappings) < samplers < protocol (a protocol's fields, hashes, points, checks) <
presets < experiments (the recipe files). Of bench, only its leaves (settings,
schedules, optimizers) are imported, to check names and ranges
(tests/test_layering.py).
"""
from __future__ import annotations

from protocols.protocol import as_plain
from protocols.protocol import changes
from protocols.protocol import grid_size
from protocols.protocol import identity_hash
from protocols.protocol import make
from protocols.protocol import OBJECTIVES
from protocols.protocol import protocol_hash
from protocols.protocol import sample_points
from protocols.protocol import sampler_seed
from protocols.protocol import sampling_hash
from protocols.protocol import study_seeds
from protocols.protocol import validate
from protocols.samplers import SAMPLERS
from protocols.search_space import choice
from protocols.search_space import fixed
from protocols.search_space import integer
from protocols.search_space import linear
from protocols.search_space import log
from protocols.search_space import log1m
from protocols.search_space import PARAM_KINDS
from protocols.search_space import ProtocolError
from protocols.search_space import register_reparam
from protocols.search_space import Reparam
from protocols.search_space import REPARAMS
from protocols import presets  # pylint: disable=g-bad-import-order  (needs the above)
