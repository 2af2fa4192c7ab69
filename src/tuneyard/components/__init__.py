"""What task types and verbs share: graders, speed measurement, distillation losses, task heads,
calibration batches, the confusion plot.

A layer between the task types above and data/models/yard below: it imports neither a
task type nor a verb, so a task type can use any of it without reaching up.
"""
