"""The teacher's messages for a row, and the student target for its answer.

Both are Jinja templates (sandboxed, strict: a name the row lacks is an error, found on
the first row before any request is sent). An image column is sent the way vision
chat-completion endpoints take it: an ``image_url`` content part holding a PNG data URL,
of the image as it is or, with ``--image-preprocess``, as the student model will see it
(the picture its vision tower's tiles are cut from), so the teacher judges what the
student can see.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

from tuneyard.data.formatting import template_environment
from tuneyard.errors import DataError
from tuneyard.label.options import LabelOptions

# An image as the student will see it (``--image-preprocess``), from the image as decoded.
ImageView = Callable[[Any], Any]


class PromptRenderer:
    """Renders the messages for a row and the target for an answer."""

    def __init__(self, options: LabelOptions, image_view: ImageView | None = None) -> None:
        environment = template_environment()
        self.prompt = environment.from_string(options.prompt)
        self.target = environment.from_string(options.target) if options.target else None
        self.system_prompt = options.system_prompt
        self.image_column = options.image_column
        self.image_view = image_view

    def check(self, row: dict[str, Any], columns: list[str], split: str) -> None:
        """Render ``row`` once, so a template naming a missing column fails before any request."""
        from jinja2 import UndefinedError

        if self.image_column is not None and self.image_column not in columns:
            raise DataError(
                f"--image-column {self.image_column!r} is not in the {split} split.",
                f"Its columns: {', '.join(columns)}.",
            )
        try:
            self.prompt.render(**row)
            if self.target is not None:
                self.target.render(**row, answer=AnyAnswer())
        except UndefinedError as exc:
            raise DataError(
                f"the prompt or target template names a column the {split} split lacks: {exc.message}.",
                f"Its columns: {', '.join(columns)}.",
            ) from None

    def messages(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """``[system], user`` for ``row``; the user turn carries the image when there is one."""
        text = self.prompt.render(**row)
        content: Any = text
        if self.image_column is not None:
            url = image_data_url(row[self.image_column], self.image_view)
            content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": content}]

    def student_target(self, row: dict[str, Any], answer: Any) -> str:
        """The answer as the student should learn it (the target template, else the answer)."""
        if self.target is None:
            return answer if isinstance(answer, str) else _json(answer)
        return self.target.render(**row, answer=answer).strip()


class AnyAnswer:
    """Stands in for the answer while checking the target template: any field of it exists."""

    def __getattr__(self, name: str) -> AnyAnswer:
        return self

    def __getitem__(self, key: object) -> AnyAnswer:
        return self

    def __str__(self) -> str:
        return ""


def image_data_url(image: Any, view: ImageView | None = None) -> str:
    """A PIL image (or ``datasets``' ``{"bytes", "path"}``), seen through ``view`` when given, as a
    ``data:image/png;base64`` URL."""
    from PIL import Image

    if isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"])
    if view is not None:
        image = view(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True)
