"""Releases: immutable, versioned, named pointers to yard artifacts, with cards and changelogs.

``tuneyard release ARTIFACT --name NAME`` files ``releases/{name}/{version}/`` (a
``kind: release`` manifest whose parent is the artifact, and a Hugging Face model card),
and regenerates ``releases/{name}/CHANGELOG.md`` from every version's manifest. Aliases
(``production``, ``staging``, any word) are movable pointers whose every move is logged.
``tuneyard.load("release:NAME@production")`` loads the model a release points at.

:mod:`~tuneyard.release.registry` is the store, :mod:`~tuneyard.release.semver` the
version numbers, :mod:`~tuneyard.release.card` and :mod:`~tuneyard.release.changelog`
the two documents, :mod:`~tuneyard.release.loading` the ``release:`` references.
"""
