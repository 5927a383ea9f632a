"""Operations: dependency health and probes, admin statistics, Prometheus metrics."""
