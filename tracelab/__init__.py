"""tracelab: make heterogeneous logs from distributed systems traceable."""

from tracelab.errors import TracelabError

__all__ = ["TracelabError", "__version__"]
__version__ = "0.1.0"
