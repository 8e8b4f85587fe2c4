"""What a run writes, and how it commits exactly once.

The output layout, unit commits and their records, the run state and manifest, the output's lease, provenance.
"""
