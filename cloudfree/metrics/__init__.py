"""Stage ``metrics``: the model and the baselines scored on a region's test tiles.

Reads the packed region and the evaluation file of inference; writes
``results/metrics/<region>.csv`` (per tile, date and method), the summary with bootstrap
intervals and the figures.  Entry point: :func:`cloudfree.metrics.region.region_metrics`.
"""
