"""Device side of edgetune: run exported step programs with only numpy and a runtime.

Nothing here imports torch on the ONNX path; the ExecuTorch runtime's Python
bindings take torch tensors, so that path imports torch when it is used.
"""
