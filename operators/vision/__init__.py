"""Image tasks and their CPU stage (image decoding and processing)."""
