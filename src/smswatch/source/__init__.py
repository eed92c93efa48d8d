"""The UI seam: what a monitor may ask of an engine, local or remote (`api`), and the rules that
turn what it is told into alerts (`alerts`). No I/O, no Textual."""
