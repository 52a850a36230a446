"""Did a tuned trial really beat the advised one? A paired test on the validation images both were scored on.

The advice and the best trial are scored on the *same* images, so the images both get right (or both
wrong) say nothing about which is better; only the images where they disagree do. McNemar's exact test:
of the ``n`` disagreements, the best trial wins ``c`` and the advice ``b``; under "equally good" each is a
fair coin flip, so the two-sided p-value is ``min(1, 2 * P(Binomial(n, 1/2) <= min(b, c)))``.

The best trial is the maximum of the ``m`` trials that finished beside the advice, so a difference that
one comparison would find at 5 % turns up far more often among many (20 identical trials on 300 images
"won" in 21 % of simulated studies with the unpaired binomial bound). Bonferroni's correction multiplies
the p-value by ``m``; a win needs the corrected p below :data:`ALPHA`.

Each trial records ``val_correct``: its best epoch's right (1) and wrong (0) validation images, in the
loader's fixed order (concatenated over the folds when cross-validated, which every trial shares).
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHA = 0.05
CORRECTNESS_ATTR = "val_correct"


def correctness_bits(right) -> str:
    """A '0'/'1' string of per-image correctness (a bool tensor, array or sequence): compact in storage."""
    return "".join("1" if bool(value) else "0" for value in (right.tolist() if hasattr(right, "tolist") else right))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (1.0 when there are none)."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    from scipy.stats import binom  # the exact binomial tail, without summing n-digit coefficients

    return float(min(1.0, 2 * binom.cdf(k, n, 0.5)))


@dataclass(frozen=True)
class PairedVerdict:
    advice_only: int  # images only the advice got right (b)
    best_only: int  # images only the best trial got right (c)
    p_value: float  # exact McNemar, one comparison
    compared: int  # trials the best was picked from (the Bonferroni factor)
    p_adjusted: float

    @property
    def significant(self) -> bool:
        return self.best_only > self.advice_only and self.p_adjusted < ALPHA

    def text(self, unit: str = "images") -> str:
        """``exact McNemar p = 0.003 on the 40 images where they disagree (31 vs 9), 0.030 after Bonferroni
        over 10 trials``."""
        disagree = self.advice_only + self.best_only
        after = (f", {self.p_adjusted:.3g} after Bonferroni over {self.compared} trials" if self.compared > 1
                 else "")
        return (f"exact McNemar p = {self.p_value:.3g} on the {disagree} validation {unit} where they disagree "
                f"({self.best_only} vs {self.advice_only}){after}")


def paired_verdict(advice_bits: str, best_bits: str, compared: int) -> PairedVerdict | None:
    """The test for two trials' correctness strings; None when they were not scored on the same images."""
    if not advice_bits or len(advice_bits) != len(best_bits):
        return None
    b = sum(1 for a, t in zip(advice_bits, best_bits) if a == "1" and t == "0")
    c = sum(1 for a, t in zip(advice_bits, best_bits) if a == "0" and t == "1")
    p = mcnemar_exact(b, c)
    m = max(1, int(compared))
    return PairedVerdict(b, c, p, m, min(1.0, p * m))
