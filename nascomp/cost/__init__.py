"""Cost: exact params/MACs counting at the ATen level, the analytic cost of an `Arch`, and cross-checks.

MACs are what papers call FLOPs (Swin-T: 4.5 G); FLOPs = 2 x MACs. Attention matmuls count.
"""
