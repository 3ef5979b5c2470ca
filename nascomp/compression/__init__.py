"""Compression of a trained vision transformer: MiniViT weight multiplexing, drop-blocks."""
