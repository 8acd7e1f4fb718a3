"""SensorHub load benchmarks: ``make bench`` (see docs/benchmarks.md)."""
