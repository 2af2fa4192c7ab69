"""The tuneyard version, in a module of its own: the yard and the model formats record it
without importing the package root (which reaches up to ``tuneyard.load``)."""

__version__ = "0.1.0"
