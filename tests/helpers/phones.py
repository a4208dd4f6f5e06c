"""The phone attached over ADB, or a skip that says why there is none."""
import pytest


def attached_phone() -> str:
    try:
        import adbutils

        devices = adbutils.AdbClient().device_list()
    except Exception as e:
        pytest.skip(f"no adb server reachable ({type(e).__name__}: {e}); attach a phone with USB debugging on")
    if not devices:
        pytest.skip("the adb server lists no phone; attach one with USB debugging on")
    return devices[0].serial
