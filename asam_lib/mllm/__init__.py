"""The multimodal LLM, whatever its checkpoint: the registry of architectures, the embedded tiny LLaVA and its
tokenizer, prompts and batches with answer masks, forward passes from the joint embeddings or the edit layer, hooks,
half precision, the edit loop's memory options and generation. Imports only ``common``."""
