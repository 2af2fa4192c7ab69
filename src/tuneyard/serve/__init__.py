"""``tuneyard serve``: a read-only web view of the yard.

The runs table (the filters and ``--where`` language of ``runs ls``, run as SQL on the
index), a page per artifact (manifest, metrics, config, files, lineage, the PNG plots
in its folder), a compare page with metric deltas, and a JSON API for the same
queries. Every page is one call into :mod:`tuneyard.yard`; nothing here writes: the
index is opened read-only and only files inside an artifact folder of the yard are
served (:mod:`tuneyard.serve.files`).
"""
