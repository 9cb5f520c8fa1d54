"""Stage ``mosaic``: region mosaics per date and product, with persistence rules.

Reads the reconstructed tiles of a region; writes Cloud-Optimized GeoTIFFs (or tiled
GeoTIFFs) with count, source, date and quality layers, the temporal composite and a quicklook
under ``results/mosaics/<experiment>/<region>/``.  Entry point:
:func:`cloudfree.mosaic.region.mosaic_region`.

Modules, from the bottom up: ``rules`` (the persistence rule table), ``settings`` (checks
against the schema), ``merge`` (the numpy kernel), ``read`` (grid, contributions, readers),
``write`` (one mosaic and its side layers), ``composite`` (the temporal composite),
``region`` (every mosaic of a region), ``quicklook`` (the figure).
"""
