"""Rule mosaic: per date and product one mosaic over all tiles of a region, with count,
source, date and quality layers, and the region's temporal composite."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.manifest import read_manifest
from cloudfree.mosaic.quicklook import mosaic_quicklook
from cloudfree.mosaic.region import mosaic_region
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
params = snakemake.params.mosaic
paths = mosaic_region(
    Path(snakemake.input.tiles),
    Path(snakemake.output.mosaics),
    rule=params["rule"],
    embedding_rule=params["embedding_rule"],
    change_rule=params["change_rule"],
    crs=params["crs"],
    resolution=params["resolution"],
    resampling=params["resampling"],
    dates=sorted(read_manifest(snakemake.input.manifest)["date"].astype(str).unique()),
    compress=params["compress"],
    level=params["compress_level"],
    fmt=params["format"],
    block=params["block"],
    composite=params["composite"],
    num_threads=snakemake.threads,
)
mosaic_quicklook(snakemake.output.mosaics, snakemake.output.quicklook)
log.info("%d date mosaics written with rule %s", len(paths), params["rule"])
