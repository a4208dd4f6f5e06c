"""The device contract: everything an implementation needs to run an artifact, torch-free.

    manifest   the manifest schema, roles, dtypes, runtimes, file hashes
    names      tensor naming rules (param., next., optimizer slots, noise, hyper inputs)
    state      the state file (safetensors subset), atomic writes
    hyper      hyper inputs, learning-rate schedules
    noise      zeroth-order perturbations from (seed, step)
    lines      the runner's output lines (step records and events)
    conformance  the golden-vector kit every implementation replays

docs/artifact-contract.md is the normative text; the device runner, the exporters and
the tests use this package, and a Kotlin, Swift or TypeScript trainer implements it.
"""
from edgetune.contract.manifest import (
                                        DTYPES,
                                        MANIFEST_FORMAT,
                                        MANIFEST_VERSION,
                                        NP_DTYPES,
                                        ROLES,
                                        RUNTIMES,
                                        Manifest,
                                        ProgramSpec,
                                        TensorSpec,
                                        bucket_program,
                                        load_manifest,
                                        sha256_file,
                                        sha256_program,
)

__all__ = ["DTYPES", "MANIFEST_FORMAT", "MANIFEST_VERSION", "NP_DTYPES", "ROLES", "RUNTIMES", "Manifest",
           "ProgramSpec", "TensorSpec", "bucket_program", "load_manifest", "sha256_file",
           "sha256_program"]
