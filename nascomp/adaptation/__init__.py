"""Adaptation: parameter-efficient transfer of a trained backbone to new data (KAdaptation, LoRA, LoKr, probes).

Layout follows peft: `registry` (methods by name), `methods` (what a method does; KAdaptation, linear, full),
`peft_adapters` (LoRA / LoKr from peft), `kadaptation/{config,layer,model}`, `model` (saved adapted models),
`fewshot` (K images per class), `api` (`adapt`, the workflow the CLI and notebooks call).
"""
