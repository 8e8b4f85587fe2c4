"""A deterministic mixed-length English corpus, and Parquet shards of it.

Texts are sentences of common English words; their lengths in words follow a log-normal spread (a few words to a
few hundred, ~120 MiniLM tokens on average once truncated at 256), like support tickets, reviews and articles mixed
in one lake. The same seed gives the same texts on every machine.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_WORDS = (  # noqa: SIM905 - a word list reads best as text
    "the a an this that our your their my his her its some every each no any many few several most other another "
    "customer order delivery package service support team manager agent account payment refund invoice price "
    "product quality update version release feature screen button page report data file system network server "
    "city train station airport hotel room breakfast dinner restaurant menu coffee market street river park "
    "weather morning evening weekend holiday summer winter week month year day hour minute time people family "
    "friend child teacher doctor student engineer company market bank share budget plan project meeting email "
    "was is were are will would could should might has had have did does made took gave found kept left sent "
    "arrived asked answered changed checked closed expected fixed helped improved joined moved opened ordered "
    "received reported returned started stopped tried waited worked wrote read grew fell rose paid lost won "
    "quickly slowly again finally already still never always often only almost nearly really very quite rather "
    "good great bad slow fast late early new old long short small large clear broken simple difficult friendly "
    "helpful useful expensive cheap quiet busy warm cold happy tired ready sure free full empty open second last "
    "in on at by for with from about after before during without under over between through into across against "
    "and but or so because although while when if then than though since until unless whether"
).split()
_ENDINGS = (".", ".", ".", "!", "?")


def _sentence(rng: random.Random, words: int) -> str:
    body = " ".join(rng.choice(_WORDS) for _ in range(words))
    if words > 6 and rng.random() < 0.5:  # a comma somewhere, as in real prose
        cut = body.split(" ")
        cut[rng.randrange(2, words - 2)] += ","
        body = " ".join(cut)
    return body[0].upper() + body[1:] + rng.choice(_ENDINGS)


def text(rng: random.Random, words: int) -> str:
    """A text of about ``words`` words, in sentences of 4 to 24 words."""
    parts = []
    left = words
    while left > 0:
        size = min(left, rng.randint(4, 24))
        parts.append(_sentence(rng, max(size, 1)))
        left -= size
    return " ".join(parts)


def texts(rows: int, *, seed: int = 0, median_words: float = 85.0, spread: float = 0.9) -> list[str]:
    """``rows`` texts whose lengths in words are log-normal around ``median_words`` (2 to 400 words)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    lengths = [min(400, max(2, round(math.exp(rng.gauss(math.log(median_words), spread))))) for _ in range(rows)]
    return [text(rng, length) for length in lengths]


def write_shards(directory: Path, rows: int, *, shard_rows: int, seed: int = 0) -> list[Path]:
    """Write the corpus as Parquet shards of ``shard_rows`` rows (columns ``id`` int64, ``text`` string)."""
    directory.mkdir(parents=True, exist_ok=True)
    corpus = texts(rows, seed=seed)
    paths = []
    for index, start in enumerate(range(0, rows, shard_rows)):
        chunk = corpus[start : start + shard_rows]
        table = pa.table({"id": pa.array(range(start, start + len(chunk)), pa.int64()), "text": pa.array(chunk)})
        path = directory / f"part-{index:05d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths
