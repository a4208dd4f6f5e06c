"""python -m device_harness: the host-side CLI (device-harness)."""
from device_harness.host.cli import main

main()
