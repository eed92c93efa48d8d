"""What leaves the store as files and printed text: records, `inspect`/`stats` output,
suppression lists, and `import` (restore) back in."""
