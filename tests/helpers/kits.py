"""Which artifact a conformance test means: a fixture name -> (artifact dir, manifest, compiled step)."""


def artifact_of(request, fixture):
    value = request.getfixturevalue(fixture)
    if fixture == "tiny_lm":  # (dir, gguf, train, held, manifest, compiled)
        return value[0] / "art", value[4], value[5]
    return value


def tampered_copy(src, dst, key_part: str, change):
    """A copy of kit ``src`` at ``dst`` whose first tensor with ``key_part`` in its key went through ``change``."""
    from safetensors.numpy import load_file, save_file

    from edgetune.contract.conformance import TENSORS_FILE

    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(dst / TENSORS_FILE))
    key = next(k for k in sorted(tensors) if key_part in k)
    tensors[key] = change(tensors[key])
    save_file(tensors, str(dst / TENSORS_FILE))
    return dst
