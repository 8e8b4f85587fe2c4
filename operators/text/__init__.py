"""Text tasks: classification, tokens, zero-shot, embeddings, fill-mask, generation, question answering."""
