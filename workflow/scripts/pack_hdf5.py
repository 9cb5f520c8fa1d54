"""Rule pack_hdf5: one chunked, compressed HDF5 file per region, checked against its manifest
(whose tile folder must still hold the tiles it lists: no other run may have rewritten it)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.manifest import read_manifest
from cloudfree.pack.check import check_tiles_stamp, validate
from cloudfree.pack.dates import without_holdout
from cloudfree.pack.writer import pack_region
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
manifest = read_manifest(snakemake.input.manifest)
check_tiles_stamp(snakemake.input.manifest, manifest)  # another run rewrote the tiles?
path = pack_region(
    manifest,
    snakemake.output.h5,
    pack=snakemake.params.pack,
    evaluation=snakemake.params.evaluation,
    date_stats=snakemake.input.get("dates") or None,
)
validate(path, without_holdout(manifest, snakemake.params.evaluation["holdout_period"]))
log.info("packed %s (%.1f MB)", path, path.stat().st_size / 1e6)
