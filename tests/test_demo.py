"""The demo job on the real MiniLM model: its zero-shot topics must plainly fit the sample texts."""

from __future__ import annotations

from jobs.demo import demo_spec, read_output, write_shards
from jobs.runner import run_job

FINANCE, FOOD, HEALTH = "business and finance", "food and cooking", "health and medicine"
EXPECTED = {
    "The striker scored": {"sports"},
    "Shares of the regional bank": {FINANCE},
    "Preheat the oven": {FOOD},
    "The new laptop": {"technology"},
    "Researchers report that a daily": {HEALTH, "science"},
    "Is it worth taking the night train": {"travel"},
    "The central bank raised": {FINANCE},
    "Parliament passed the budget": {"politics"},
    "Astronomers detected": {"science"},
    "This risotto recipe": {FOOD},
    "The tennis champion": {"sports"},
    "My phone keeps dropping": {"technology"},
    "Oil prices climbed": {FINANCE},
    "Three days in Lisbon": {"travel"},
    "A new vaccine": {HEALTH},
    "The senator announced": {"politics"},
    "The chipmaker unveiled": {"technology"},
    "The ramen broth": {FOOD},
    "The marathon was won": {"sports"},
    "How do I rebalance": {FINANCE},
    "Physicists measured": {"science"},
    "Backpacking through Patagonia": {"travel"},
    "Doctors warn": {HEALTH},
    "Voters head to the polls": {"politics"},
    "The startup raised": {FINANCE, "technology"},
    "Slow-roasted lamb": {FOOD},
    "The basketball team": {"sports"},
    "Cheapest way to get": {"travel"},
    "Inflation eased": {FINANCE},
    "Marine biologists": {"science"},
    "Our physiotherapist": {HEALTH},
    "The foreign minister": {"politics"},
    "The smartwatch tracks": {"technology"},
    "The cycling team": {"sports"},
    "Has anyone hiked": {"travel"},
    "The mortgage lender": {FINANCE},
    "Geologists say": {"science"},
    "A quick weeknight curry": {FOOD},
    "The hospital opened": {HEALTH},
    "The court struck down": {"politics"},
    "Hackers exploited": {"technology"},
    "Best beaches in Crete": {"travel"},
    "Sourdough from this bakery": {FOOD},
    "The goalkeeper saved": {"sports"},
    "The government unveiled": {"politics", FINANCE},
    "Scientists sequenced": {"science"},
    "Travelling with kids": {"travel"},
}


def test_demo_topics_fit_the_texts(s3_endpoint: str, minilm: str, ray_local: None) -> None:
    spec = demo_spec(s3_endpoint, minilm)
    write_shards(spec)
    summary = run_job(spec)
    assert (summary.shards, summary.rows_in, summary.rows_out, summary.row_errors) == (3, 48, 48, 1)
    rows = read_output(spec).to_pylist()
    assert [row["id"] for row in rows] == list(range(48))
    hits = 0
    for row in rows:
        if row["text"] is None:
            assert row["topic"] is None
            continue
        (expected,) = [labels for prefix, labels in EXPECTED.items() if row["text"].startswith(prefix)]
        hits += row["topic"]["labels"][0] in expected
        assert len(row["embedding"]) == 384
    assert hits / len(EXPECTED) >= 0.9, f"{hits} of {len(EXPECTED)} texts got a fitting topic"
