"""tesctl: host tooling for the tesctl stimulator."""
from tesctl import paths as _paths

# The host shares the firmware's pure modules (validation, engine, link, limits): they are
# imported as tes and hal from the firmware tree that tesctl carries (tesctl.paths).
_paths.install_firmware_import()
