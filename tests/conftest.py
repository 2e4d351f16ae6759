"""Hypothesis profiles: "mutate" (tools/mutate.py) draws the same examples for every
mutant, so a mutation score does not change from run to run."""
from hypothesis import settings

import tesctl  # noqa: F401  (imports the firmware's tes and hal from its tree: tesctl.paths)

settings.register_profile("mutate", derandomize=True, database=None, print_blob=False)
