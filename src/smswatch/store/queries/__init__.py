"""SQL text and row mapping both back ends run (each renders the placeholders its own way)."""
