"""The one task registry of the benchmarks (:mod:`.registry`): the image corpus (one module per source family,
written by :mod:`.common` as train/val/test folders), the run_all suite's image tasks (:mod:`.suite`), and the
text tasks (:mod:`.text`)."""
