"""Compression of pretrained vision transformers: MiniViT weight multiplexing and distillation."""
