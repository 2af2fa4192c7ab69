"""A grid cell's id: options added to finetune later leave the ids of cells that do not set them alone."""

from __future__ import annotations

import hashlib
import json

from tuneyard.experiments.cells import ID_LENGTH, cell_id
from tuneyard.train.options import FinetuneOptions


def test_options_at_their_defaults_keep_a_cells_id_and_set_ones_change_it() -> None:
    options = FinetuneOptions(checkpoint="./minilm", data="./topics", strategy="lora", name="a", project="p")
    before = options.model_dump(mode="json", exclude={"output_dir", "name", "project", "task_options",
                                                      "dtype", "gradient_checkpointing"})  # fmt: skip
    assert (
        cell_id(options)
        == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:ID_LENGTH]
    )
    changed = {
        cell_id(options.model_copy(update=update))
        for update in ({"dtype": "bfloat16"}, {"gradient_checkpointing": True}, {"name": "b"})
    }
    assert (
        len(changed - {cell_id(options)}) == 2
    )  # the dtype and checkpointing shape the run; the name does not
