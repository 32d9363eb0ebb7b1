"""Independent PyTorch reference for VQT stacked on an adapting method (paper sec. 4.3, issue 12),
and the golden fixtures of packages/vqt/test/fixtures/stack_*.

    /usr/bin/python3 tools/reference/stack_ref.py

Imports the backbone (vit_ref.py), AdaptFormer and LoRA (peft_ref.py) and VPT (vpt_ref.py); written
from docs/METHOD.md (## Composing), not from the TypeScript code.

A stack's queries are rows appended to the ADAPTED sequence that nobody attends to: every block runs
over [x; Q_m] (x: the block's adapted input, VPT's prompts included) with the query rows masked out
as keys and values, through the adapted block (LoRA deltas on every row's q, k, v, proj, fc1, fc2;
AdaptFormer's branch beside every row's MLP). The query rows' outputs are Z'_m; the original rows
are the adapted model's tokens. The head reads [L2(final CLS), L2(flatten Z'_1), ..., L2(flatten Z'_M)].

Each fixture is a complete stacked adapter directory (adapter_config.json with `method: "<base>+vqt"`
and `options: {<base>: {...}, vqt: {...}}`; adapter_model.safetensors with the base's tensors under
their own names, `vqt.queries` [depth, T, D], `head.weight` [classes, F], `head.bias`) around the
shared tiny_f32 checkpoint, plus the expected outputs computed in float64 from the stored float32
weights and saved as float32 .npy:

    input.npy          [B, 3, 32, 32]       tiny_f32's input
    head_features.npy  [B, D (1 + M T)]     the head's input
    logits.npy         [B, classes]
    cls.npy            [B, D]               final-normalised CLS of the adapted model
    block_<m>.npy      [B, L_m, D]          adapted block m's output, as the hooks leave it: 1+N
                                            tokens, or 1+T+N while VPT-Shallow carries its prompts
    query_outputs.npy  [depth, B, T, D]     Z'_m (not final-normed)

Self-checks run first (the script aborts if one fails):
1. The masked formulation's original rows equal the base method's own forward (peft_ref / vpt_ref),
   and are the same for two different query sets: the queries never change the adapted tokens.
2. The masked formulation's query rows equal a direct query path written without masks (queries
   read LN1 of the adapted block input; LoRA's k/v deltas on the keys and values; the base's
   deltas and branch on the queries' own rows). For VPT it also equals vpt_ref's query outputs.
3. The base matters: the stacked head features differ from VQT on the plain backbone, and for LoRA
   the k/v deltas and the q/proj/fc deltas each change the query outputs.
Deterministic; rewrites the four fixture folders. Takes a few seconds.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_ref as P  # noqa: E402
import vit_ref as R  # noqa: E402
import vpt_ref as V  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

ROOT = P.ROOT
OUT = os.path.join(ROOT, "packages", "vqt", "test", "fixtures")
NUM_CLASSES = 5
T_QUERIES = 2    # two queries per block, so the row-major flatten of Z'_m is exercised
T_PROMPTS = 2


# --------------------------------------------------------------------------------------
# The stacked block: [x; Q] through the adapted block, query rows masked out as keys/values
# --------------------------------------------------------------------------------------

class Base:
    """An adapting method's weights for one forward: LoRA deltas, AdaptFormer modules, VPT prompts."""

    def __init__(self, lora: Optional[Dict[int, Dict[str, dict]]] = None, lora_scaling: float = 1.0,
                 adapters: Optional[Dict[int, dict]] = None, adapter_scale: float = 0.1,
                 prompts: Optional[torch.Tensor] = None, deep: bool = True):
        self.lora, self.lora_scaling = lora or {}, lora_scaling
        self.adapters, self.adapter_scale = adapters or {}, adapter_scale
        self.prompts, self.deep = prompts, deep

    def linear(self, blk: R.Block, m: int, name: str, t: torch.Tensor) -> torch.Tensor:
        return P.lora_linear(t, *P.frozen_linears(blk)[name], self.lora.get(m, {}).get(name), self.lora_scaling)

    def branch(self, m: int, x1: torch.Tensor) -> Optional[torch.Tensor]:
        module = self.adapters.get(m)
        if module is None:
            return None
        hidden = F.relu(F.linear(x1, module["down.weight"], module["down.bias"]))
        return self.adapter_scale * F.linear(hidden, module["up.weight"], module["up.bias"])

    def inserts(self, m: int) -> bool:
        return self.prompts is not None and (self.deep or m == 0)

    def drops(self, m: int, depth: int) -> bool:
        return self.prompts is not None and (self.deep or m == depth - 1)


def stacked_block(blk: R.Block, m: int, base: Base, x: torch.Tensor, q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """x [B, L, D] the block's adapted input (prompts already inserted), q [B, T, D] the queries.
    The adapted block over [x; q] where no row attends to a query row. Returns (x out, Z')."""
    full = torch.cat([x, q], dim=1)
    B, n, D = full.shape
    L = x.shape[1]
    H = blk.attn.heads
    d = D // H
    lin = lambda name, t: base.linear(blk, m, name, t)  # noqa: E731
    split = lambda t: t.reshape(B, n, H, d).transpose(1, 2)  # noqa: E731
    ln1 = blk.norm1(full)
    qh, kh, vh = split(lin("q", ln1)), split(lin("k", ln1)), split(lin("v", ln1))
    scores = qh @ kh.transpose(-2, -1) / math.sqrt(d)
    keys_allowed = torch.arange(n) < L  # query rows are never keys or values
    a = scores.masked_fill(~keys_allowed, float("-inf")).softmax(-1)
    x1 = full + lin("proj", (a @ vh).transpose(1, 2).reshape(B, n, D))
    out = x1 + lin("fc2", F.gelu(lin("fc1", blk.norm2(x1))))
    extra = base.branch(m, x1)
    if extra is not None:
        out = out + extra
    return out[:, :L], out[:, L:]


def direct_query_path(blk: R.Block, m: int, base: Base, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The queries' path alone, no masks: Q' from LN1(q), keys/values from LN1(x) (adapted input)."""
    B, L, D = x.shape
    T = q.shape[1]
    H = blk.attn.heads
    d = D // H
    lin = lambda name, t: base.linear(blk, m, name, t)  # noqa: E731
    heads = lambda t, rows: t.reshape(B, rows, H, d).transpose(1, 2)  # noqa: E731
    ln_x, ln_q = blk.norm1(x), blk.norm1(q)
    Q, K, Vv = heads(lin("q", ln_q), T), heads(lin("k", ln_x), L), heads(lin("v", ln_x), L)
    a = (Q @ K.transpose(-2, -1) / math.sqrt(d)).softmax(-1)
    p1 = q + lin("proj", (a @ Vv).transpose(1, 2).reshape(B, T, D))
    z = p1 + lin("fc2", F.gelu(lin("fc1", blk.norm2(p1))))
    extra = base.branch(m, p1)
    return z if extra is None else z + extra


def stacked_forward(model: R.VisionTransformer, img: torch.Tensor, base: Base, queries: torch.Tensor,
                    direct: bool = False) -> dict:
    """queries [depth, T, D]. Returns cls [B, D], blocks (each block's output [B, L_m, D]: VPT-Shallow's
    carried prompts included), query_outputs [depth, B, T, D].
    direct: compute Z' with direct_query_path and the tokens with the unmasked block (self-check)."""
    depth = len(model.blocks)
    x = model.embed(img)
    blocks, zs = [], []
    for m, blk in enumerate(model.blocks):
        if base.inserts(m):
            x = V.insert_prompts(x, base.prompts[m] if base.deep else base.prompts[0])
        q = queries[m].unsqueeze(0).expand(x.shape[0], -1, -1)
        if direct:
            z = direct_query_path(blk, m, base, x, q)
            x, _ = stacked_block(blk, m, base, x, q[:, :0])  # no query rows at all
        else:
            x, z = stacked_block(blk, m, base, x, q)
        if base.drops(m, depth):
            x = V.drop_prompts(x, base.prompts.shape[1])
        blocks.append(x)
        zs.append(z)
    return {"cls": model.norm(x)[:, 0], "blocks": blocks, "query_outputs": torch.stack(zs)}


def head_features(out: dict) -> torch.Tensor:
    return R.vqt_features(out["cls"], out["query_outputs"], "l2")


# --------------------------------------------------------------------------------------
# random base weights (the layouts of the peft_ref / vpt_ref fixtures)
# --------------------------------------------------------------------------------------

def adaptformer_tensors(rng: np.random.Generator, D: int, blocks: List[int], r: int) -> Dict[str, np.ndarray]:
    out = {}
    for m in blocks:
        out[f"adaptformer.blocks.{m}.down.weight"] = P.kaiming_uniform_a_sqrt5(rng, r, D)
        out[f"adaptformer.blocks.{m}.down.bias"] = (rng.standard_normal(r) * 0.1).astype(np.float32)
        out[f"adaptformer.blocks.{m}.up.weight"] = (rng.standard_normal((D, r)) * 0.5).astype(np.float32)
        out[f"adaptformer.blocks.{m}.up.bias"] = (rng.standard_normal(D) * 0.1).astype(np.float32)
    return out


def lora_tensors(rng: np.random.Generator, D: int, blocks: List[int], rank: int) -> Dict[str, np.ndarray]:
    out = {}
    for m in blocks:
        for t in P.TARGETS:
            fan_in = 4 * D if t == "fc2" else D
            fan_out = 4 * D if t == "fc1" else D
            out[f"lora.blocks.{m}.{t}.lora_A"] = P.kaiming_uniform_a_sqrt5(rng, rank, fan_in)
            out[f"lora.blocks.{m}.{t}.lora_B"] = (rng.standard_normal((fan_out, rank)) * 0.1).astype(np.float32)
    return out


def check(cond: bool, what: str) -> None:
    P.check(cond, what)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------

def write_case(name: str, method: str, model: R.VisionTransformer, x: np.ndarray, options: dict,
               tensors: Dict[str, np.ndarray], queries: np.ndarray, out: dict,
               head_w: np.ndarray, head_b: np.ndarray) -> None:
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    R.save_safetensors(os.path.join(folder, "adapter_model.safetensors"),
                       {**tensors, "vqt.queries": queries, "head.weight": head_w, "head.bias": head_b},
                       metadata={"format": "vqt-ts-adapter", "method": method})
    config = P.adapter_config(method, model, options)
    config["training"] = {"source": "tools/reference/stack_ref.py (random adapter weights)"}
    P.write_json(os.path.join(folder, "adapter_config.json"), config)
    features = head_features(out)
    P.save_npy(folder, "input.npy", x)
    P.save_npy(folder, "head_features.npy", features)
    P.save_npy(folder, "logits.npy", F.linear(features, P.t64(head_w), P.t64(head_b)))
    P.save_npy(folder, "cls.npy", out["cls"])
    for m, block in enumerate(out["blocks"]):
        P.save_npy(folder, f"block_{m}.npy", block)
    P.save_npy(folder, "query_outputs.npy", out["query_outputs"])
    for fn in sorted(os.listdir(folder)):
        path = os.path.join(folder, fn)
        shape = list(np.load(path).shape) if fn.endswith(".npy") else ""
        print(f"  {os.path.relpath(path, ROOT):70s} {os.path.getsize(path):7d} B {shape}")


def main() -> None:
    model, _ = P.load_backbone()
    x = np.load(P.INPUT)
    img = P.t64(x)
    D, depth, p = model.dim, model.depth, model.patch_size
    bound = math.sqrt(6.0 / (3 * p * p + D))
    rng = np.random.default_rng(1212)

    af_blocks, bottleneck, af_scale = [0, 2], 8, 0.1
    af = adaptformer_tensors(rng, D, af_blocks, bottleneck)
    lora_blocks, rank, alpha = [1, 2], 4, 6.0
    lora = lora_tensors(rng, D, lora_blocks, rank)
    prompts_deep = rng.uniform(-bound, bound, (depth, T_PROMPTS, D)).astype(np.float32)
    prompts_shallow = rng.uniform(-bound, bound, (1, T_PROMPTS, D)).astype(np.float32)
    head_w = (rng.standard_normal((NUM_CLASSES, D * (1 + depth * T_QUERIES))) * 0.5).astype(np.float32)
    head_b = (rng.standard_normal(NUM_CLASSES) * 0.1).astype(np.float32)
    query_seed = 4343
    queries = np.random.default_rng(query_seed).uniform(-bound, bound, (depth, T_QUERIES, D)).astype(np.float32)
    other_queries = rng.uniform(-1, 1, (depth, T_QUERIES, D)).astype(np.float32)

    lora_modules = P.lora_modules(lora, lora_blocks, P.TARGETS)
    cases = {
        "stack_adaptformer": ("adaptformer+vqt", Base(adapters=P.adaptformer_modules(af, af_blocks), adapter_scale=af_scale),
                              {"bottleneck": bottleneck, "scale": af_scale, "dropout": 0.1, "blocks": af_blocks}, af),
        "stack_lora": ("lora+vqt", Base(lora=lora_modules, lora_scaling=alpha / rank),
                       {"rank": rank, "alpha": alpha, "targets": list(P.TARGETS), "dropout": 0, "blocks": lora_blocks}, lora),
        "stack_vpt": ("vpt+vqt", Base(prompts=P.t64(prompts_deep), deep=True),
                      {"prompts": T_PROMPTS, "deep": True, "dropout": 0.1, "initRange": bound, "seed": 777},
                      {"vpt.prompts": prompts_deep}),
        "stack_vpt_shallow": ("vpt-shallow+vqt", Base(prompts=P.t64(prompts_shallow), deep=False),
                              {"prompts": T_PROMPTS, "deep": False, "dropout": 0.1, "initRange": bound, "seed": 778},
                              {"vpt.prompts": prompts_shallow}),
    }
    Q = P.t64(queries)

    print("self-checks")
    results = {}
    with torch.no_grad():
        plain_vqt = R.vqt_features(*[R.vqt_query_outputs(model, img, Q)[i] for i in (0, 2)], "l2")
        # The stacked block with a base that does nothing is vit_ref's VQT.
        none = stacked_forward(model, img, Base(), Q)
        check(max_diff(head_features(none), plain_vqt) < 1e-13, "masked stacked block with no base == vit_ref VQT (features)")
        for name, (method, base, _, _) in cases.items():
            out = stacked_forward(model, img, base, Q)
            results[name] = out
            # 1. the adapted tokens: the base method's own forward, whatever the queries
            if base.adapters:
                own_cls, own_blocks = P.adaptformer_forward(model, img, base.adapters, base.adapter_scale)
            elif base.lora:
                own_cls, own_blocks = P.lora_forward(model, img, base.lora, base.lora_scaling)
            else:
                own = V.vpt_forward(model, img, base.prompts, base.deep, queries=Q)
                own_cls, own_blocks = own["cls"], own["blocks"]
                err = max_diff(own["query_outputs"], out["query_outputs"])
                check(err < 1e-12, f"{method}: query outputs == vpt_ref's VQT on VPT ({err:.1e})")
            err = max([max_diff(out["cls"], own_cls)] + [max_diff(a, b) for a, b in zip(out["blocks"], own_blocks)])
            check(err < 1e-12, f"{method}: tokens and CLS == the base method's own forward ({err:.1e})")
            other = stacked_forward(model, img, base, P.t64(other_queries))
            check(all(torch.equal(a, b) for a, b in zip(other["blocks"], out["blocks"])) and torch.equal(other["cls"], out["cls"]),
                  f"{method}: another query set leaves every token unchanged (bitwise)")
            check(max_diff(other["query_outputs"], out["query_outputs"]) > 1e-2, f"{method}: the query outputs depend on the queries")
            # 2. masked rows == the direct query path
            direct = stacked_forward(model, img, base, Q, direct=True)
            err = max([max_diff(direct["query_outputs"], out["query_outputs"])] + [max_diff(a, b) for a, b in zip(direct["blocks"], out["blocks"])])
            check(err < 1e-12, f"{method}: masked rows == direct query path ({err:.1e})")
            # 3. the base shows in the head features
            change = max_diff(head_features(out), plain_vqt)
            check(change > 1e-2, f"{method}: head features differ from VQT on the plain backbone ({change:.3f})")
        # LoRA: the k/v deltas (explicit keys/values) and the q/proj/fc deltas each change Z'.
        lora_out = results["stack_lora"]["query_outputs"]
        for dropped in (("k", "v"), ("q",), ("proj",), ("fc1", "fc2")):
            kept = {m: {t: v for t, v in mod.items() if t not in dropped} for m, mod in lora_modules.items()}
            z = stacked_forward(model, img, Base(lora=kept, lora_scaling=alpha / rank), Q)["query_outputs"]
            check(max_diff(z, lora_out) > 1e-3, f"lora+vqt: dropping the {'/'.join(dropped)} deltas changes Z' ({max_diff(z, lora_out):.3f})")

    print("writing fixtures")
    vqt_options = {"queries": T_QUERIES, "dropout": 0.1, "featureNorm": "l2", "initRange": bound, "seed": query_seed}
    for name, (method, _, base_options, tensors) in cases.items():
        base_name = method.split("+")[0]
        write_case(name, method, model, x, {base_name: base_options, "vqt": vqt_options}, tensors, queries,
                   results[name], head_w, head_b)


if __name__ == "__main__":
    main()
