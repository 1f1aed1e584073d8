"""Examples written against the suite's public protocols (importable as ``examples.*``)."""
