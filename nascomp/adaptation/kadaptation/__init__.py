"""KAdaptation: parameter-efficient fine-tuning with a sum of Kronecker products (PEViT, AAAI'23).

For a frozen weight W (d_out × d_in) the update is

    ΔW = s · Σᵢ Aᵢ ⊗ Bᵢ,   i = 1..n,   Aᵢ ∈ ℝ^{n×n},   Bᵢ = uᵢ vᵢᵀ ∈ ℝ^{(d_out/n)×(d_in/n)} of rank r.

The *slow* weights Aᵢ are shared by every adapted layer (one set per target: q, v, ...) and may themselves
be rank-1 factorised (Aᵢ = aᵢ bᵢᵀ, the paper's setting); the *fast* weights uᵢ, vᵢ belong to one layer.
A learnable per-layer bias is added to every adapted output, as in the public code. Because Aᵢ is n×n
whatever the layer width, one slow set serves all Swin stages.

Initialisation. The public code zero-initialises both fast factors, so ΔW and every gradient that
reaches it stay zero for the whole run (He et al., "Parameter-efficient Model Adaptation for Vision Transformers",
AAAI 2023). LoRA-style init (one factor zero)
fixes training but still leaves uᵢ and Aᵢ without gradient on the first step. The default here,
``init="paired"``, draws every tensor at random and makes term 2j+1 the mirror image of term 2j
(Aₒ = Aₑ, uₒ = −uₑ, vₒ = vₑ): the pair cancels exactly, so ΔW = 0 at the start, yet each tensor
receives a non-zero gradient immediately and the pair separates after one step.

Layout follows peft: `config.py` (`KAdaptationConfig`: what to adapt), `layer.py` (`SlowWeights`,
`KroneckerLinear`: the maths), `model.py` (`apply_kadaptation` / `merge_kadaptation`: injection into and
removal from a timm model).
"""
