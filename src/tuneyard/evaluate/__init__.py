"""Evaluation shared by every task type: where results go, the eval of one model, the transfer grid, graders.

The scoring loop and the files it writes belong to the task type
(:mod:`tuneyard.task_types`); this package files them, measures speed and memory the
same way for all, and runs model x task grids.
"""
