"""The embed stage: each backbone's features of the target data, and the statistics read on the way.

``embed.py`` for images (the decoded-image store, BatchNorm-input statistics, the random-init copy, the feature
cache), ``embed_text.py`` for texts (the token store, hidden-state statistics against a source sample),
``bn_statistics.py`` (the per-stage shift and its one definition), ``source_sample.py`` (``--source-sample``).
"""
