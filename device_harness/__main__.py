"""python -m device_harness: the host-side CLI (device-harness)."""
from device_harness.cli import main

main()
