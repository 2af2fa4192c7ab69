"""The web view's FastAPI application: pages rendered from Jinja2 templates, and a JSON API.

Every route is a GET that reads: the index through a read-only connection opened per
request (:class:`tuneyard.serve.read_only.ReadOnlyYard`), files through
:mod:`tuneyard.serve.files`. A yard on shared storage (``s3://``) is served from this
machine's copy: its index refreshed from the bucket (:class:`IndexRefresher`), the files a
page shows downloaded when it asks for them. Errors a person can fix (a bad ``where``, an unknown id)
come back as the same message and hint the CLI prints, with 400 / 404 / 403.
No page loads anything from the network: the styles are inline and there is no script.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from tuneyard.errors import ArtifactNotFoundError, QueryError, TuneyardError
from tuneyard.serve.artifact import api_record, artifact_page, record_by_id
from tuneyard.serve.compare import comparison
from tuneyard.serve.files import OutsideArtifactError, artifact_file
from tuneyard.serve.listing import Listing, RunsQuery, listing, metric_text, run_query
from tuneyard.serve.read_only import IndexRefresher, ReadOnlyYard, check_readable
from tuneyard.yard.fields import FILTERS
from tuneyard.yard.root import Yard

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
# A file of an artifact is shown, never run: an HTML file in a run folder gets no scripts
# and no access to the view's origin, and the browser does not guess another type.
FILE_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


def delta_text(value: object) -> str:
    """A delta cell: signed, blank when there is no delta."""
    return "" if value is None else f"{value:+.4g}" if isinstance(value, (int, float)) else str(value)


TEMPLATES.env.filters["metric"] = metric_text
TEMPLATES.env.filters["delta"] = delta_text


def request_yard(request: Request) -> Iterator[ReadOnlyYard]:
    """The yard for one request, its index connection closed afterwards."""
    state = request.app.state
    if state.refresher is not None:
        state.refresher.refresh()
    yard = ReadOnlyYard(state.root, state.storage, index_writes=state.refresher is None)
    try:
        yield yard
    finally:
        yard.close()


YardDep = Annotated[ReadOnlyYard, Depends(request_yard)]


def create_app(address: str | Path | Yard) -> FastAPI:
    """The web view of the yard at ``address`` (a folder, a URL, or the yard opened already);
    refuses an index it cannot read."""
    # Resolved once (Yard.open): every file check compares resolved paths against the root.
    yard = address if isinstance(address, Yard) else Yard.open(address)
    refresher = IndexRefresher(yard) if yard.storage.is_remote else None
    if refresher is not None:
        refresher.refresh()  # the first index of this machine's copy, or what changed since
    check_readable(ReadOnlyYard(yard.root))
    # No /docs: its pages load scripts from a CDN, and the view works offline.
    app = FastAPI(title="tuneyard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.root = yard.root
    app.state.storage = yard.storage
    app.state.refresher = refresher
    app.add_exception_handler(TuneyardError, tuneyard_error)  # type: ignore[arg-type]
    for path, endpoint in ROUTES:
        app.add_api_route(path, endpoint, methods=["GET"])
    return app


def status_of(exc: TuneyardError) -> int:
    """404 for an unknown artifact, 403 for a path out of bounds, 400 for any other bad request."""
    if isinstance(exc, ArtifactNotFoundError):
        return 404
    if isinstance(exc, OutsideArtifactError):
        return 403
    return 400


def tuneyard_error(request: Request, exc: TuneyardError) -> Response:
    """The CLI's message and hint: as JSON under /api, else as a page."""
    status = status_of(exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"title": "error", "error": exc, "root": request.app.state.root},
        status_code=status,
    )


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    return TEMPLATES.TemplateResponse(
        request, template, {"root": request.app.state.root, **context}, status_code=status_code
    )


def home() -> RedirectResponse:
    return RedirectResponse("/runs")


def runs_page(request: Request, yard: YardDep) -> Response:
    query = RunsQuery.from_params(request.query_params)
    try:
        shown = listing(yard, query)
    except QueryError as exc:  # shown above the form, which keeps the text to correct
        empty = Listing(query, rows=[], more=False, metric_columns=[], notes=[])
        return page(request, "runs.html", 400, title="runs", listing=empty, filters=FILTERS, error=exc)
    return page(request, "runs.html", title="runs", listing=shown, filters=FILTERS)


def artifact_view(request: Request, yard: YardDep, artifact_id: str) -> Response:
    shown = artifact_page(yard, artifact_id)
    return page(request, "artifact.html", title=shown.record["name"], page=shown)


def artifact_file_view(yard: YardDep, artifact_id: str, path: str) -> Response:
    record = record_by_id(yard, artifact_id)
    try:
        return FileResponse(artifact_file(yard, record, path), headers=FILE_HEADERS)
    except FileNotFoundError:
        raise ArtifactNotFoundError(
            f"no file {path!r} in {record['path']}.", "The artifact's page lists its files."
        ) from None


def compare_view(request: Request, yard: YardDep) -> Response:
    shown = comparison(yard, request.query_params.getlist("id"), bool(request.query_params.get("all")))
    return page(request, "compare.html", title="compare", comparison=shown)


def api_runs(request: Request, yard: YardDep) -> list[dict[str, Any]]:
    """``runs ls --format json`` for the same query string as the runs page (no limit unless given)."""
    query = RunsQuery.from_params(request.query_params, default_limit=None)
    # An index row holds exactly the listed columns and the flattened metrics.
    return run_query(yard, query)[: query.limit]


def api_run(yard: YardDep, artifact_id: str) -> dict[str, Any]:
    """``runs show --format json`` of one artifact."""
    return api_record(yard, artifact_id)


def api_compare(request: Request, yard: YardDep) -> dict[str, Any]:
    """``runs compare --format json``'s table, as columns and rows."""
    return comparison(
        yard, request.query_params.getlist("id"), bool(request.query_params.get("all"))
    ).to_data()


ROUTES = [
    ("/", home),
    ("/runs", runs_page),
    ("/runs/{artifact_id}", artifact_view),
    ("/runs/{artifact_id}/files/{path:path}", artifact_file_view),
    ("/compare", compare_view),
    ("/api/runs", api_runs),
    ("/api/runs/{artifact_id}", api_run),
    ("/api/compare", api_compare),
]
