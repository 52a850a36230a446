"""What the benchmark questions share: ``stats`` (regret, spread, within noise), ``report`` (tables and the
HTML page), ``workers`` (processes that end with their run), ``paths`` (results and scratch folders)."""
