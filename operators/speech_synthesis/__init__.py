"""Speech synthesis: text in, encoded audio out (``text-to-audio``; ``pipeline()`` also calls it ``text-to-speech``)."""
