#!/usr/bin/env python3
"""GGUF fixtures for Tests/GGUFTests (run by a developer, never by CI; needs the `gguf` package, e.g.
in the ignored .venv-peer: `.venv-peer/bin/python Tests/Resources/gguf/make_fixtures.py`).

Writes next to this file:
  quants.gguf              one tensor per supported type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
                           Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), each 2 rows of 512 random values quantised by
                           gguf's `quants.quantize` (K types: the llama.cpp reference quantisers through
                           the same package where it has them, else random block bytes with sane f16
                           scales), plus metadata of every value type (scalars, strings, arrays,
                           an array of arrays), GGUF version 3, alignment 64
  quants.expected.safetensors  gguf's `quants.dequantize` of each tensor (F32), by name
  metadata.json            the metadata values as JSON, for the reader's tests
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file
import gguf
from gguf import GGMLQuantizationType as T, quants

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(2024)
ROWS, COLS = 2, 512
types = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]

w = gguf.GGUFWriter(os.path.join(HERE, "quants.gguf"), arch="llama")
w.data_alignment = 64
w.add_uint32("general.alignment", 64)
meta = {"test.u8": 200, "test.i8": -100, "test.u16": 60000, "test.i16": -30000, "test.u32": 4000000000, "test.i32": -2000000000,
        "test.f32": 0.25, "test.bool": True, "test.string": "héllo ✓", "test.u64": 2 ** 40 + 1, "test.i64": -(2 ** 40), "test.f64": 1e-300}
w.add_uint8("test.u8", 200); w.add_int8("test.i8", -100); w.add_uint16("test.u16", 60000); w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4000000000); w.add_int32("test.i32", -2000000000); w.add_float32("test.f32", 0.25)
w.add_bool("test.bool", True); w.add_string("test.string", "héllo ✓"); w.add_uint64("test.u64", 2 ** 40 + 1)
w.add_int64("test.i64", -(2 ** 40)); w.add_float64("test.f64", 1e-300)
w.add_array("test.strings", ["a", "", "Ġthe", "日本"]); meta["test.strings"] = ["a", "", "Ġthe", "日本"]
w.add_array("test.ints", [1, -2, 3]); meta["test.ints"] = [1, -2, 3]
w.add_array("test.nested", [[1, 2], [3]]); meta["test.nested"] = [[1, 2], [3]]
expected = {}
for t in types:
    x = (rng.standard_normal((ROWS, COLS)) * rng.uniform(0.01, 2)).astype(np.float32)
    x[0, :7] = [0, -0.0, 1e-8, -3.5, 2.75, 65504, -1e-3]
    name = f"t.{t.name}"
    if t == T.F32:
        data, raw_dtype = x, None
    else:
        try:
            data = quants.quantize(x, t)
        except NotImplementedError:   # no reference quantiser here: random blocks with finite f16 scales
            bs, ts = gguf.GGML_QUANT_SIZES[t]
            data = rng.integers(0, 256, size=(ROWS, COLS // bs * ts), dtype=np.uint8)
            blocks = data.reshape(-1, ts)
            for off in {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}[t]:
                blocks[:, off:off + 2] = np.frombuffer(np.float16(rng.uniform(-0.05, 0.05, blocks.shape[0])).tobytes(), np.uint8).reshape(-1, 2)
        raw_dtype = t
    w.add_tensor(name, data, raw_dtype=raw_dtype)
    expected[name] = quants.dequantize(data, t).astype(np.float32).reshape(ROWS, COLS) if t != T.F32 else x
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
save_file(expected, os.path.join(HERE, "quants.expected.safetensors"))
json.dump(meta, open(os.path.join(HERE, "metadata.json"), "w"), indent=1, ensure_ascii=False)
print("wrote", len(types), "tensors;", os.path.getsize(os.path.join(HERE, "quants.gguf")), "bytes")
