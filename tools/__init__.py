"""The model's tools (`@tool` functions), their registry and results, and what a tool knows (`context`)."""
