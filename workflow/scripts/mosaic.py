"""Rule mosaic: one mosaic per date over all tiles of a region, with a count layer."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.figures import mosaic_quicklook
from cloudfree.mosaic import mosaic_region
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
params = snakemake.params.mosaic
paths = mosaic_region(
    Path(snakemake.input.tiles),
    Path(snakemake.output.mosaics),
    rule=params["rule"],
    crs=params["crs"],
    resolution=params["resolution"],
    resampling=params["resampling"],
)
mosaic_quicklook(snakemake.output.mosaics, snakemake.output.quicklook)
log.info("%d mosaic files written with rule %s", len(paths), params["rule"])
