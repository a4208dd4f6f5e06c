"""ExportedProgram -> Core ML ML Program (.mlpackage) with coremltools, in float32.

Rewrites come first. Core ML itself only predicts on Apple's systems, so the export
checks the rewritten graph, run eagerly (`RewrittenProgram`), against the eager step as it
checks the other runtimes' programs (`exporters.artifact.self_check`):

* ``native_layer_norm`` is spelled out as (x - mean) * rsqrt(var + eps). The converter
  binds only the first of its three outputs (the normalised value), and the step's
  backward reads the other two (mean, 1/std); torch's own decomposition goes through
  prims the converter does not know.
* ``clamp`` of an integer tensor becomes ``where``: the converter emits a float clip, and
  an index computed by it (the embedding-row slot of `embedding_rows`) then fails as a
  float index of ``index_put``.
* ``alias`` (left in a language model's graph) becomes a ``view`` of the same shape:
  the converter has no alias.
* edgetune's quantized ops become their aten references (as for ExecuTorch); the
  converter folds constant dequantization, so the package holds float32 weights.

Feature names, dtypes and shapes follow `edgetune.contract.coreml`: Core ML names are
identifiers, and an ML Program takes no int64 or rank-0 inputs. The written package is read back and its
description checked against the manifest (`check_package`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from edgetune.contract import ProgramSpec
from edgetune.contract.coreml import feature_names, input_feature
from edgetune.errors import ConfigError, InternalError
from exporters.decompositions import call_targets, quant_references

# iOS 17 / macOS 14 and later: their gather reads int8 tables (a GGUF model's embedding
# blocks). The step must run in float32: the default float16 compute would round AdamW's
# moments and the updates away.
DEPLOYMENT_TARGET = "iOS17"
# MLMultiArray dtype codes of the package description (Core ML's ArrayFeatureType).
_ARRAY_DTYPES = {65568: "float32", 131104: "int32", 65600: "float64", 65552: "float16"}


def _layer_norm(x, shape, weight, bias, eps):
    """native_layer_norm's three outputs: (normalised [.., *shape], mean, rstd [.., 1...])."""
    dims = list(range(x.dim() - len(shape), x.dim()))
    mean = x.mean(dims, keepdim=True)
    centred = x - mean
    rstd = torch.rsqrt((centred * centred).mean(dims, keepdim=True) + eps)
    out = centred * rstd
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out, mean, rstd


def _integer_clamp(x, min=None, max=None):  # noqa: A002 - aten's argument names
    if x.dtype.is_floating_point:
        return NotImplemented  # float clamps convert as they are
    if min is not None:
        x = torch.where(x < min, min, x)
    if max is not None:
        x = torch.where(x > max, max, x)
    return x


def rewrite(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The graph the converter receives (see the module docstring)."""
    table = quant_references(call_targets(ep))
    table[torch.ops.aten.native_layer_norm.default] = _layer_norm
    table[torch.ops.aten.clamp.default] = _integer_clamp
    table[torch.ops.aten.alias.default] = lambda x: x.view(x.shape)
    return ep.run_decompositions(table)


class RewrittenProgram:
    """The graph the converter receives, run eagerly: named numpy arrays in and out, like
    `device_harness.runtimes.Program`."""

    def __init__(self, ep: torch.export.ExportedProgram, spec: ProgramSpec):
        self.module, self.spec = rewrite(ep).module(), spec

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = self.module(*[torch.from_numpy(np.array(feeds[t.name])) for t in self.spec.inputs])
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)  # one output comes bare
        return {t.name: o.numpy() for t, o in zip(self.spec.outputs, outs)}


def _convert(ep: torch.export.ExportedProgram):
    import coremltools as ct

    # The converter draws progress bars on stderr and logs each step; the export has its own bar.
    quiet = contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet:
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        return ct.convert(ep, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                          minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET), skip_model_load=True)


def package_signature(path: str | Path) -> tuple[list[tuple], list[tuple]]:
    """A written package's (inputs, outputs) as (name, dtype, shape) in the description's order."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    row = lambda f: (f.name, _ARRAY_DTYPES.get(f.type.multiArrayType.dataType, "?"),  # noqa: E731
                     tuple(f.type.multiArrayType.shape))
    return [row(f) for f in spec.description.input], [row(f) for f in spec.description.output]


def check_package(path: str | Path, spec: ProgramSpec) -> None:
    """`InternalError` unless the package's features are the manifest's, mapped by
    `edgetune.contract.coreml`, in the manifest's order (outputs: names and order; their
    dtype and shape come from the program and are checked on the device)."""
    inputs, outputs = package_signature(path)
    want_in = [input_feature(t) for t in spec.inputs]
    want_out = feature_names(spec.outputs)
    if inputs != want_in or [o[0] for o in outputs] != want_out:
        raise InternalError(f"the Core ML package {Path(path).name} has features {inputs[:3]}... -> "
                            f"{[o[0] for o in outputs][:3]}..., not the manifest's {want_in[:3]}... -> {want_out[:3]}...")


def export_coreml(ep: torch.export.ExportedProgram, spec: ProgramSpec, path: str | Path) -> dict:
    """Rewrite, convert, name the features, save ``path`` (a directory) and check its
    features; returns what the manifest records of the lowering."""
    import coremltools as ct

    names_in, names_out = feature_names(spec.inputs), feature_names(spec.outputs)
    for kind, names in (("input", names_in), ("output", names_out)):
        if len(set(names)) != len(names):
            raise ConfigError(f"two {kind} names of the program map to one Core ML feature name "
                              f"({sorted({n for n in names if names.count(n) > 1})[:3]}); rename a tensor")
    try:
        model = _convert(rewrite(ep))
    except Exception as e:  # the converter raises bare ValueError/NotImplementedError per op
        raise ConfigError(f"coremltools cannot convert this program: {str(e).splitlines()[0][:300]}; "
                          "export without --format coreml") from e
    proto = model.get_spec()
    desc_in, desc_out = [f.name for f in proto.description.input], [f.name for f in proto.description.output]
    if len(desc_in) != len(names_in) or len(desc_out) != len(names_out):
        raise InternalError(f"the converted program has {len(desc_in)} inputs and {len(desc_out)} outputs, "
                            f"the manifest {len(names_in)} and {len(names_out)}")
    for old, new in zip(desc_in, names_in):
        ct.utils.rename_feature(proto, old, new, rename_outputs=False)
    for old, new in zip(desc_out, names_out):
        ct.utils.rename_feature(proto, old, new, rename_inputs=False)
    ct.models.MLModel(proto, weights_dir=model.weights_dir, skip_model_load=True).save(str(path))
    check_package(path, spec)
    ops = sum(len(block.operations) for f in proto.mlProgram.functions.values()
              for block in f.block_specializations.values())
    return {"compute_precision": "float32", "deployment_target": DEPLOYMENT_TARGET, "ops": ops}
