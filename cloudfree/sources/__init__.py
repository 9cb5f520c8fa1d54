"""Real tile sources behind the manifest contract: SEN12MS-CR-TS on disk, a GeoTIFF folder,
a STAC API.  Shared grid, cropping and split helpers live in :mod:`cloudfree.sources.grid`."""
