"""tesctl: host tooling for the tesctl stimulator."""
