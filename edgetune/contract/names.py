"""Tensor names of a step program: how an implementation recognises every input and output.

Roles say what a tensor is for (`edgetune.contract.manifest.ROLES`); names say which
value it is. Both are normative (docs/artifact-contract.md, "Names").
"""
from __future__ import annotations

PARAM_PREFIX = "param."          # param.<module path>: a trainable tensor
NEXT_PREFIX = "next."            # next.<input name>: the output that replaces that state input
LOZO_V_PREFIX = "lozo.V."        # LOZO's subspace V [d_in, r] of a 2-D trainable tensor (state)
LOZO_N_PREFIX = "lozo.N."        # LOZO-M's momentum N [d_out, r] (state)
NOISE_U_PREFIX = "noise.U."      # LOZO's fresh U [d_out, r] (noise, every step)
NOISE_V_PREFIX = "noise.V."      # LOZO's fresh V candidate [d_in, r] (noise, read on resampling steps only)
NOISE_Z_PREFIX = "noise.z."      # MeZO's z, shape of the tensor (noise)

LOSS = "loss"                    # metric output of every step program
LOGITS = "logits"                # metric output of every inference program

# Hyper inputs, each a float32 scalar the device decides (docs/artifact-contract.md, "Hyper inputs").
LR, STEP, EPS, RESAMPLE = "lr", "step", "eps", "resample"
HYPER_INPUTS = (LR, STEP, EPS, RESAMPLE)

# Batch inputs of the text tasks, int64.
INPUT_IDS, ATTENTION_MASK, LABELS = "input_ids", "attention_mask", "labels"
TEXT_BATCH_INPUTS = (INPUT_IDS, ATTENTION_MASK, LABELS)


def param_input(name: str) -> str:
    """State input of trainable tensor ``name`` (its module path)."""
    return PARAM_PREFIX + name


def slot_input(optimizer: str, slot: str, name: str) -> str:
    """State input of an optimizer slot: ``adamw.exp_avg.<name>``, ``sgd.momentum.<name>``."""
    return f"{optimizer}.{slot}.{name}"


def next_name(input_name: str) -> str:
    """Output that carries ``input_name``'s value for the next step."""
    return NEXT_PREFIX + input_name


def lozo_v(name: str) -> str:
    return LOZO_V_PREFIX + name


def lozo_n(name: str) -> str:
    return LOZO_N_PREFIX + name


def noise_u(name: str) -> str:
    return NOISE_U_PREFIX + name


def noise_v(name: str) -> str:
    return NOISE_V_PREFIX + name


def noise_z(name: str) -> str:
    return NOISE_Z_PREFIX + name
