"""Bottom layer: configuration (settings, business YAML), clock and logging helpers shared by every package."""
