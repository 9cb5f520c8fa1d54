"""Rule pack_hdf5: one chunked, compressed HDF5 file per region, checked against its manifest."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.manifest import read_manifest
from cloudfree.pack.check import validate
from cloudfree.pack.writer import pack_region
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
pack = snakemake.params.pack
evaluation = snakemake.params.evaluation
manifest = read_manifest(snakemake.input.manifest)
path = pack_region(
    manifest,
    snakemake.output.h5,
    compression=pack["compression"],
    compression_level=pack["compression_level"],
    eval_seed=evaluation["seed"],
    eval_date_fraction=evaluation["date_fraction"],
    date_stats=snakemake.input.get("dates") or None,
    clear_min=pack["clear_min"],
    usable_min=pack["usable_min"],
)
validate(path, manifest)
log.info("packed %s (%.1f MB)", path, path.stat().st_size / 1e6)
