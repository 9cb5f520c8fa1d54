"""Stage ``pack_hdf5``: a region's GeoTIFF series packed into one HDF5 file.

Reads the manifest, the tiles (:mod:`~cloudfree.pack.load`) and the date classes of the cloud
statistics (:mod:`~cloudfree.pack.dates`); writes ``results/hdf5/<region>.h5`` in the format of
:mod:`cloudfree.packed`, with the fixed evaluation gaps of the val/test tiles
(:mod:`~cloudfree.pack.gaps`).  Entry point: :func:`cloudfree.pack.writer.pack_region`, then
:func:`cloudfree.pack.check.validate`.
"""
