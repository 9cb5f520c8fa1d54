"""Rules report_cloud_tables, report_metrics_tables, report_metrics_all_tables: each CSV
input as the HTML table of the output of the same name, for the report to show."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
import pandas as pd

from cloudfree.report_pages import table_page, write_page
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
for name, source in snakemake.input.items():
    table = pd.read_csv(source)
    write_page(table_page(table, snakemake.params.titles[name], source), snakemake.output[name])
    log.info("%s: %d rows of %s", snakemake.output[name], len(table), source)
