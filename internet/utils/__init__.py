"""Small shared tools with no knowledge of the method: atomic writes, devices, process runtime, logs, CLI types."""
