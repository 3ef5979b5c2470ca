"""Shrink a trained Swin to a budget through its own sub-networks (structured pruning by search).

- `space`: the model's neighbourhood (fewer blocks, heads, MLP units and embedding channels per stage) as a
  search space whose largest member is the model, and the weight-entangled supernet holding its weights;
- `importance`: units reordered by importance on a calibration batch, so each leading slice is the best
  sub-network of its size, without changing what the model computes;
- `search`: evolutionary search under the budget with inherited weights, and the `ShrinkMethod` glue.
"""
