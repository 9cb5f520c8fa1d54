"""Rule download_tiles: make a region's tiles and manifest."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.config import with_region_execution_settings
from cloudfree.runlog import setup_script_logging
from cloudfree.tiles.region import download_tiles

log = setup_script_logging(snakemake)
region = snakemake.wildcards.region
manifest = download_tiles(
    region,
    with_region_execution_settings(snakemake.params.region, snakemake.config, region),
    snakemake.output.tiles,
    snakemake.output.manifest,
    clouds_cfg=snakemake.params.clouds,
    threads=snakemake.threads,
)
log.info("%d tiles, %d dates in total", manifest["tile"].nunique(), len(manifest))
