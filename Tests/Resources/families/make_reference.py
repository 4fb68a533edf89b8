#!/usr/bin/env python3
"""Reference models and numbers for the Llama and GPT-2 parity tests (Tests/MPOKitTests/FamilyParityTests.swift).

Run by a developer, never by CI (it needs torch and transformers, e.g. in the ignored .venv-peer):
    .venv-peer/bin/python Tests/Resources/families/make_reference.py
writes, next to this file, for each family:
    <name>/config.json, <name>/model.safetensors   save_pretrained of a small random model (float32)
    <name>.reference.safetensors                    tokens/targets (I32, 2×16), and from the model in float64
                                                    (eager attention): logits (2,16,V), loss (mean cross-entropy)
                                                    and grad.<parameter name> for every parameter (Hugging Face names)
`--check DIR` instead loads a directory written by `mpo-train export` with transformers and prints its
float32 logits on the reference batch next to the reference's (the save → from_pretrained round trip).
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
B, T, V = 2, 16, 97


def models():
    llama = LlamaConfig(vocab_size=V, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
                        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=50000.0,
                        tie_word_embeddings=True, initializer_range=0.1, attention_bias=False, mlp_bias=False)
    gpt2 = GPT2Config(vocab_size=V, n_embd=48, n_head=4, n_layer=2, n_positions=64, n_inner=None, layer_norm_epsilon=1e-5,
                      activation_function="gelu_new", initializer_range=0.1, tie_word_embeddings=True,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return [("llama-tiny", LlamaForCausalLM, llama), ("gpt2-tiny", GPT2LMHeadModel, gpt2)]


def batch():
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    return tokens, targets


def make():
    tokens, targets = batch()
    for name, cls, cfg in models():
        torch.manual_seed(2024)
        cfg._attn_implementation = "eager"
        model = cls(cfg).float().eval()
        with torch.no_grad():   # non-trivial norms and biases (they start at 1 and 0)
            for n, p in model.named_parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
        out_dir = os.path.join(HERE, name)
        model.save_pretrained(out_dir, safe_serialization=True)
        m64 = cls.from_pretrained(out_dir, attn_implementation="eager", torch_dtype=torch.float64).eval()
        logits = m64(input_ids=tokens).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        loss.backward()
        ref = {"tokens": tokens.to(torch.int32).contiguous(), "targets": targets.to(torch.int32).contiguous(),
               "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
        for n, p in m64.named_parameters():
            ref["grad." + n] = p.grad.detach().contiguous()
        save_file(ref, os.path.join(HERE, name + ".reference.safetensors"))
        print(f"{name}: loss {loss.item():.10f}, {sum(p.numel() for p in m64.parameters())} parameters, "
              f"grads {len([k for k in ref if k.startswith('grad.')])}")


def check(directory):
    from safetensors.torch import load_file
    tokens, _ = batch()
    cfg_name = "llama-tiny" if "llama" in open(os.path.join(directory, "config.json")).read() else "gpt2-tiny"
    cls = LlamaForCausalLM if cfg_name == "llama-tiny" else GPT2LMHeadModel
    model = cls.from_pretrained(directory, attn_implementation="eager").float().eval()
    with torch.no_grad():
        logits = model(input_ids=tokens).logits.double()
    ref = load_file(os.path.join(HERE, cfg_name + ".reference.safetensors"))["logits"]
    print(f"{directory}: loaded by transformers as {cls.__name__}; max |logits − reference| = {(logits - ref).abs().max().item():.3e}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", help="a directory written by mpo-train export")
    a = ap.parse_args()
    check(a.check) if a.check else make()
