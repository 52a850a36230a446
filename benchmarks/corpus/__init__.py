"""A broader, harder task corpus for the honest grid (issue #13): one module per source family.

``registry.TASKS`` lists every task; ``common.write_task`` writes one as train/val/test folders.
"""
