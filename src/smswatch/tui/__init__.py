"""The live monitor (Textual)."""
