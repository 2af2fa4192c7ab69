"""Evaluation: task metrics, classification eval, generation graders, the transfer grid."""
