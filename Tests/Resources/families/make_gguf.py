#!/usr/bin/env python3
"""GGUF twins of the llama-tiny and gpt2-tiny reference models, written the way llama.cpp's
convert_hf_to_gguf.py writes these architectures (tensor names, Q/K permuted for ggml's rotary
layout, GPT-2's Conv1D weights transposed and c_attn as attn_qkv, the tied GPT-2 head duplicated
as output.weight), F32 — and checked by loading each with transformers' own GGUF reader
(from_pretrained(dir, gguf_file=…)), which un-permutes and maps them independently.
Run by a developer, never by CI (needs torch, transformers, gguf, e.g. in .venv-peer):

    .venv-peer/bin/python Tests/Resources/families/make_gguf.py
"""
import os

import numpy as np
import torch
import gguf
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))


def permute(w, n_head):   # convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def add(writer, name, x):
    writer.add_tensor(name, np.ascontiguousarray(x.astype(np.float32)))


def llama():
    import json
    d = os.path.join(HERE, "llama-tiny")
    c = json.load(open(os.path.join(d, "config.json")))
    sd = {k: v.numpy() for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    w = gguf.GGUFWriter(os.path.join(HERE, "llama-tiny.gguf"), arch="llama")
    H, KVH = c["num_attention_heads"], c["num_key_value_heads"]
    w.add_block_count(c["num_hidden_layers"]); w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"]); w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(H); w.add_head_count_kv(KVH); w.add_rope_freq_base(c["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"]); w.add_rope_dimension_count(c["hidden_size"] // H)
    w.add_vocab_size(c["vocab_size"]); w.add_file_type(0)
    add(w, "token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        add(w, f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        add(w, f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], H))
        add(w, f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], KVH))
        add(w, f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        add(w, f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        add(w, f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        add(w, f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        add(w, f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        add(w, f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    add(w, "output_norm.weight", sd["model.norm.weight"])
    return w, "llama-tiny.gguf"


def gpt2():
    import json
    d = os.path.join(HERE, "gpt2-tiny")
    c = json.load(open(os.path.join(d, "config.json")))
    sd = {k: v.numpy() for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    w = gguf.GGUFWriter(os.path.join(HERE, "gpt2-tiny.gguf"), arch="gpt2")
    w.add_block_count(c["n_layer"]); w.add_context_length(c["n_positions"]); w.add_embedding_length(c["n_embd"])
    w.add_feed_forward_length(4 * c["n_embd"]); w.add_head_count(c["n_head"]); w.add_layer_norm_eps(c["layer_norm_epsilon"])
    w.add_vocab_size(c["vocab_size"]); w.add_file_type(0)
    add(w, "token_embd.weight", sd["transformer.wte.weight"])
    add(w, "position_embd.weight", sd["transformer.wpe.weight"])
    for i in range(c["n_layer"]):
        p = f"transformer.h.{i}."
        for ours, theirs in [("attn_norm", "ln_1"), ("ffn_norm", "ln_2")]:
            add(w, f"blk.{i}.{ours}.weight", sd[p + theirs + ".weight"]); add(w, f"blk.{i}.{ours}.bias", sd[p + theirs + ".bias"])
        for ours, theirs in [("attn_qkv", "attn.c_attn"), ("attn_output", "attn.c_proj"), ("ffn_up", "mlp.c_fc"), ("ffn_down", "mlp.c_proj")]:
            add(w, f"blk.{i}.{ours}.weight", sd[p + theirs + ".weight"].T)
            add(w, f"blk.{i}.{ours}.bias", sd[p + theirs + ".bias"])
    add(w, "output_norm.weight", sd["transformer.ln_f.weight"]); add(w, "output_norm.bias", sd["transformer.ln_f.bias"])
    add(w, "output.weight", sd["transformer.wte.weight"])   # the converter writes the tied head out
    return w, "gpt2-tiny.gguf"


for make in (llama, gpt2):
    w, name = make()
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    ref = load_file(os.path.join(HERE, name.replace(".gguf", ".reference.safetensors")))
    # transformers' GGUF config mapping misses GPT-2's n_positions and vocab_size (it reads them from
    # n_ctx and the tokenizer): given explicitly.
    extra = {"n_positions": 64, "vocab_size": 97} if name.startswith("gpt2") else {}
    m = AutoModelForCausalLM.from_pretrained(HERE, gguf_file=name, torch_dtype=torch.float64, **extra).eval()
    with torch.no_grad():
        logits = m(input_ids=ref["tokens"].long()).logits
    print(f"{name}: {os.path.getsize(os.path.join(HERE, name))} bytes; transformers' GGUF reader gives logits within "
          f"{(logits - ref['logits']).abs().max().item():.2e} of the reference")
