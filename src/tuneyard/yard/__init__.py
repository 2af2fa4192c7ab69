"""The yard: layout templates, manifests, atomic writers, inference and the index."""

from tuneyard.yard.layout import Layout, run_name
from tuneyard.yard.manifest import Manifest, Parent, read_manifest, write_manifest
from tuneyard.yard.root import Yard

__all__ = ["Layout", "Manifest", "Parent", "Yard", "read_manifest", "run_name", "write_manifest"]
