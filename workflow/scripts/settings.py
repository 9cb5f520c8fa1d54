"""Rules settings_region, settings_experiment, settings_workflow: one settings page of the
report, from the sections its rule resolved from the config."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.report_pages import flatten, settings_page, write_page
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
sections = snakemake.params.sections
write_page(settings_page(snakemake.params.title, sections), snakemake.output[0])
log.info("%s: %d settings in %d sections", snakemake.output[0],
         sum(len(flatten(s)) for s in sections.values()), len(sections))  # fmt: skip
