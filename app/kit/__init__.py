"""The shared kit below every feature: problem errors, pages of a list, number presentation.

It imports nothing of the features or the entry points, so any of them may use it.
"""
