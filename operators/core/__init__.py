"""The shared contract: the operator and preparer base, Arrow column helpers, model loading, media bytes, ranking."""
