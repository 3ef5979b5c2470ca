"""How much of a lowered ExecuTorch program runs in the XNNPACK delegate, and what is left on portable kernels.

An op the partitioner does not claim runs on ExecuTorch's portable (reference, single-threaded, unvectorised)
kernels, and splits the delegated graph around it: the users of ExecuTorch most often meet slow models this way.
`delegation_report` counts, on the lowered edge program, the compute nodes inside delegates and the ones left
outside, per op. Structural nodes are not ops and are not counted: ``getitem`` (tuple access to a delegate's or a
multi-output op's results) and the delegate calls themselves. `require_delegated` turns anything left into one
user error naming the ops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from nascomp.core.errors import NascompError

__all__ = ["DelegationReport", "delegation_report", "require_delegated"]

_STRUCTURAL = ("getitem", "executorch_call_delegate")


@dataclass
class DelegationReport:
    """Delegated and portable compute nodes of one lowered program (``portable_ops``: op name -> count)."""

    backend: str
    delegated_nodes: int
    subgraphs: int
    portable_ops: dict[str, int] = field(default_factory=dict)

    @property
    def portable_nodes(self) -> int:
        return sum(self.portable_ops.values())

    @property
    def delegated_share(self) -> float:
        total = self.delegated_nodes + self.portable_nodes
        return self.delegated_nodes / total if total else 1.0

    @property
    def fully_delegated(self) -> bool:
        return not self.portable_ops

    def describe(self) -> str:
        if self.fully_delegated:
            return f"fully delegated to {self.backend} ({self.delegated_nodes} ops in {self.subgraphs} subgraph(s))"
        left = ", ".join(f"{op} x{n}" for op, n in sorted(self.portable_ops.items(), key=lambda kv: (-kv[1], kv[0])))
        return (
            f"{self.delegated_share:.1%} of {self.delegated_nodes + self.portable_nodes} ops delegated to {self.backend} "
            f"in {self.subgraphs} subgraph(s); left on portable kernels: {left}"
        )

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "delegated_share": round(self.delegated_share, 6),
            "delegated_ops": self.delegated_nodes,
            "portable_ops": dict(sorted(self.portable_ops.items())),
            "portable_op_count": self.portable_nodes,
            "subgraphs": self.subgraphs,
            "fully_delegated": self.fully_delegated,
        }


def _op_name(node) -> str:
    """``aten::native_layer_norm`` -> ``native_layer_norm``; other namespaces keep theirs (``dim_order_ops._clone_dim_order``)."""
    op = getattr(node.target, "_op", node.target)  # an EdgeOpOverload wraps the ATen OpOverload
    name = op.name() if callable(getattr(op, "name", None)) else getattr(op, "__name__", str(op))
    namespace, _, base = name.rpartition("::")
    return base if namespace in ("", "aten") else f"{namespace}.{base}"


def delegation_report(graph_module, backend: str = "XNNPACK") -> DelegationReport:
    """Count the nodes of a lowered edge program's graph module inside and outside its delegates."""
    delegated, subgraphs, left = 0, 0, Counter[str]()
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.target.startswith("lowered_module"):
            lowered = getattr(graph_module, node.target)
            subgraphs += 1
            delegated += sum(1 for n in lowered.original_module.graph.nodes if n.op == "call_function" and _op_name(n) not in _STRUCTURAL)
        elif node.op == "call_function" and not any(s in str(node.target) for s in _STRUCTURAL):
            left[_op_name(node)] += 1
    return DelegationReport(backend, delegated, subgraphs, dict(left))


def require_delegated(report: DelegationReport, what: str = "the model") -> None:
    """Raise a user error when anything of ``what`` is left outside the delegate."""
    if not report.fully_delegated:
        raise NascompError(
            f"{what} is not fully delegated: {report.describe()}. Drop --require-delegated to export anyway, or change "
            "the model so these ops have an XNNPACK formulation (nascomp.deploy.delegable lists the ones it rewrites)"
        )
