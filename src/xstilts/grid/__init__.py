"""The experiment grid: conditions x seeds x targets, run what is missing, tabulate, analyse."""
