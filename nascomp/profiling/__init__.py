"""Cost and measurement: analytic/counted MACs and params, latency, energy, latency prediction."""
