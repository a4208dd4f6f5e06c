import subprocess
import sys


def test_import_edgetune_pulls_in_no_runtime():
    code = ("import sys, edgetune, edgetune.contract, edgetune.data.text;"
            "print(sorted(m for m in ('executorch','onnxruntime','coremltools','torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
