"""Writing what a run found: ``analysis.json`` (machine-readable) and a self-contained HTML report.

- ``analysis_json``: the documented JSON schema (``build_analysis``, ``load_analysis``).
- ``html``: ``render_report(analysis, sections)``, from the JSON data alone.
- ``view`` turns analysis data into what the templates show; ``charts``/``svg`` draw inline SVG;
  ``thumbnails`` embeds sample images; ``runs_index`` lists every run of an output folder.
- ``atomic``: every file is written atomically.
"""
