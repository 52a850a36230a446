"""The recommend stage: the summary similarity of the data to each backbone's source, and the four-scenario advice.

- :mod:`~tladvisor.advice.similarity`: one similarity in [0, 1] per backbone from the measured evidence, and
  the threshold that calls data "similar".
- :mod:`~tladvisor.advice.recommend`: the four-scenario rule (size x similarity), its freeze depth and
  learning rates, and the reasons in numbers.
- :mod:`~tladvisor.advice.prior`: the learned gain prior the honest grid fits and judges out of task (issue
  #22; a data file with its provenance, not yet read by the advice).

The built-in plugin :mod:`tladvisor.builtin.recommend` is the hook that calls them; a plugin may replace either.
"""
