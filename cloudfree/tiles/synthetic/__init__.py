"""Synthetic Sentinel-2 L1C-like time series: the embedded default tile source.

A region is simulated once on its full pixel grid and cut into overlapping tiles, so
neighbouring tiles carry identical pixels in their overlap.  The scene is built from:

- a land-cover map from fractal (power-law) random fields, with cropland as rectangular
  parcels laid out in strip-field blocks, hitting the configured class weights exactly
  (:mod:`~cloudfree.tiles.synthetic.surface`);
- class spectra (TOA reflectance, 13 bands) mixed between a green and a soil/senescent
  end-member by a per-class, per-parcel phenology over day of year (same module);
- static per-pixel texture, a per-date atmosphere (gain, aerosol path reflectance) and
  signal-dependent sensor noise (:mod:`~cloudfree.tiles.synthetic.scene`);
- per-date clouds (fractal opacity thresholded at a Beta-distributed cover), thin
  cirrus on some dates, and cloud shadows cast by the same opacity field shifted along
  the sun direction (:mod:`~cloudfree.tiles.synthetic.weather`);
- optionally Sentinel-1 VV/VH backscatter (dB) of the same ground, matched to the S2 dates by
  the nearest S1 acquisition: land cover after the events, phenology, rain-driven soil
  moisture, speckle; no clouds (:mod:`~cloudfree.tiles.synthetic.radar`).

The cloud mask is the truth about the pixels: a pixel labelled clear was touched by
neither cloud nor shadow.  Every random draw comes from a stream keyed by the seed and a
purpose (and the calendar date for per-date draws), so the output is a pure function of
the spec (:mod:`~cloudfree.tiles.synthetic.spec`), and a date's weather does not change
when ``n_dates`` does.  :func:`cloudfree.tiles.synthetic.region.synthetic_tiles` writes a
region's tiles and returns its manifest.
"""
