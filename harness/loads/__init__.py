"""Load generators that run next to Prometheus: the fio storage benchmark and the TSDB write load."""
