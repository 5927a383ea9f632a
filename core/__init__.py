"""Bottom layer: settings, business YAML, clock, time helpers, addresses and URLs, sanitising, logging."""
