"""The Transformer, its KV cache, the sampler and the checkpoint format."""
