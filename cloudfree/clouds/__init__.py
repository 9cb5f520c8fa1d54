"""Stage ``cloud_stats``: cloud cover per tile and date, run lengths and the date selection.

Reads a region's manifest and its cloud masks (and probabilities); writes the coverage,
date-selection, per-tile, run-length and summary tables and their figures under
``results/cloudstats/``.  Entry point: :func:`cloudfree.clouds.region.cloud_statistics`.
The cloud detector (:mod:`~cloudfree.clouds.detector`) makes masks for sources that have none,
called by the tile stage; its model runs on a coarser working grid
(:mod:`~cloudfree.clouds.working_grid`, ``clouds.detector.resolution``).
"""
