"""Rule metrics_all: the per-region summaries in one table, and the comparisons of the
experiments of every region in another."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
import pandas as pd

from cloudfree.io import atomic_path
from cloudfree.metrics.compare import experiment_table
from cloudfree.metrics.summary import combine_regions
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
table = combine_regions([pd.read_csv(p) for p in snakemake.input.summaries])
comparisons = [pd.read_csv(p, dtype={"experiment": str}) for p in snakemake.input.experiments]
experiments = experiment_table({str(c["region"].iloc[0]): c for c in comparisons})
for df, path in ((table, snakemake.output.table), (experiments, snakemake.output.experiments)):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
log.info("%d regions, %d rows; %d experiment rows", table["region"].nunique(), len(table),
         len(experiments))  # fmt: skip
