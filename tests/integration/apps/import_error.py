"""A module that fails while being imported."""

raise ImportError("this module refuses to import")
