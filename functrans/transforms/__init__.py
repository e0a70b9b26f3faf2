"""The transforms: each an interpreter over the core."""
