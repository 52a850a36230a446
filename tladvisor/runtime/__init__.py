"""Process plumbing, internal to tladvisor (not part of the plugin API): atomic writes and locks, stopping at a
safe point on a signal, progress output, thread counts, the compute device, passwords out of what is written,
and the run folder's name and checks. The pipeline's stages use these; a plugin should not need them."""
