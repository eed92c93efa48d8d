"""Pure values and rules: no I/O, nothing of ours beyond itself and `timefmt`."""
