"""Does the similarity fall as the data moves away from the source? ``shift.py`` (controlled blur, noise,
colour and domain shifts), ``suite.py`` (the same as a unit of run_all.py), ``random_copy.py`` (how many
images the random-init copy's statistics need)."""
