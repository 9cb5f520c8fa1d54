"""Stage ``download_tiles``: a region's tiles and its manifest, from one of the sources.

Reads a region's config section; writes per tile and date a GeoTIFF of the bands and a cloud
mask under ``resources/tiles/<region>/`` and the manifest ``results/tiles/<region>.csv``
(:mod:`cloudfree.manifest`).  Entry point: :func:`cloudfree.tiles.region.download_tiles`.
Sources: :mod:`~cloudfree.tiles.synthetic`, :mod:`~cloudfree.tiles.sen12mscrts`,
:mod:`~cloudfree.tiles.folder` (its checks in :mod:`~cloudfree.tiles.folder_checks`,
:mod:`~cloudfree.tiles.folder_same_date` and :mod:`~cloudfree.tiles.folder_bands`),
:mod:`~cloudfree.tiles.stac` (its section checked by :mod:`~cloudfree.tiles.stac_settings`,
its items by :mod:`~cloudfree.tiles.stac_items`, its reads by
:mod:`~cloudfree.tiles.stac_fetch`, over :mod:`~cloudfree.tiles.http` and
:mod:`~cloudfree.tiles.hosts`); the acquisitions of one date merged by
:mod:`~cloudfree.tiles.same_date`, on the shared :mod:`~cloudfree.tiles.grid`; each builds its
spec from the resolved section (:mod:`~cloudfree.tiles.settings`).
"""
