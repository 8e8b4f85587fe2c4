"""Audio tasks (speech recognition, audio classification) and their CPU stage (audio decoding, chunking)."""
