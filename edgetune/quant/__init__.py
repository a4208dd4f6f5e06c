"""Frozen-weight formats: int8 per-channel, int4 group-wise, GGUF Q4_0/Q4_1/Q8_0 blocks."""
from edgetune.quant.api import QUANT_MODES, WEIGHT_MODES, Int4Config, Int8Config, config_from, quantize
from edgetune.quant.gguf_blocks import GGUFFile, blocks_to_weight
from edgetune.quant.int4 import quantize_int4
from edgetune.quant.int8 import quantize_int8
from edgetune.quant.modules import QuantEmbedding, QuantLinear, quantized_matmul, uses_integer_activations
from edgetune.quant.weight import QuantizedWeight, dequantize, dequantize_reference, sqnr_db

__all__ = ["QUANT_MODES", "WEIGHT_MODES", "Int4Config", "Int8Config", "config_from", "quantize", "GGUFFile", "blocks_to_weight",
           "quantize_int4", "quantize_int8", "QuantEmbedding", "QuantLinear", "quantized_matmul",
           "uses_integer_activations", "QuantizedWeight",
           "dequantize", "dequantize_reference", "sqnr_db"]
