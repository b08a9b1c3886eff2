"""Pods: the platform past one machine (directory, placement, router, moves)."""
