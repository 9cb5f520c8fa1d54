"""Hypothesis settings: on CI (``CI`` set) the property tests draw the same examples every
run (``derandomize``), so a submission is judged on a fixed set; locally they explore anew."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
if os.environ.get("CI"):
    settings.load_profile("ci")
