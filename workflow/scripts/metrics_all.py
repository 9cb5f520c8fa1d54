"""Rule metrics_all: the per-region summaries in one table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
import pandas as pd

from cloudfree.io import atomic_path
from cloudfree.metrics.summary import combine_regions
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
table = combine_regions([pd.read_csv(p) for p in snakemake.input.summaries])
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, index=False, float_format="%.6g")
log.info("%d regions, %d rows", table["region"].nunique(), len(table))
