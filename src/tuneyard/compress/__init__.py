"""SVD compression of transformer models: methods, calibration, rank planning, the pipeline.

``compress_model(CompressOptions(...), yard)`` is what ``tuneyard compress`` runs;
:data:`~tuneyard.compress.registry.METHODS` lists the methods.
"""
