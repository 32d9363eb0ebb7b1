"""Independent PyTorch reference for AdaptFormer and LoRA on the ViT of vit_ref.py, and the
golden fixtures of packages/adaptformer and packages/lora.

    /usr/bin/python3 tools/reference/peft_ref.py

Written from docs/METHOD.md (AdaptFormer) and PEFT's LoRA (y = x W^T + b + (alpha/r) x A^T B^T,
A [r, in], B [out, r]; merge_and_unload folds W += (alpha/r) B A), not from the TypeScript code.
Each fixture is a complete adapter directory (adapter_config.json + adapter_model.safetensors,
torch [out, in] layouts) around the shared tiny_f32 checkpoint, plus the expected outputs
computed in float64 from the stored float32 weights and saved as float32 .npy:

    cls.npy     [B, D]              final-normalised CLS of the adapted backbone
    logits.npy  [B, classes]        head(cls)
    blocks.npy  [depth, B, 1+N, D]  each adapted block's output (before the final norm)

Self-checks run first (the script aborts if one fails): zero-initialised adapters are the
identity; an AdaptFormer module equals torch.nn.Linear layers with the same weights; LoRA on the
fused qkv equals LoRA on q, k and v separately; merged LoRA weights give the unmerged outputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref as R  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)
torch.manual_seed(0)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CKPT = os.path.join(ROOT, "packages", "core", "test", "fixtures", "tiny_f32", "model.safetensors")
INPUT = os.path.join(ROOT, "packages", "core", "test", "fixtures", "tiny_f32", "input.npy")
HEADS = 3
NUM_CLASSES = 5
TARGETS = ("q", "k", "v", "proj", "fc1", "fc2")


# --------------------------------------------------------------------------------------
# AdaptFormer
# --------------------------------------------------------------------------------------

def adaptformer_block(blk: R.Block, x: torch.Tensor, module: Optional[dict], scale: float) -> torch.Tensor:
    """x1 = x + proj(MSA(LN1 x)); out = x1 + MLP(LN2 x1) + s * up(ReLU(down(x1))).
    module: {down.weight [r,D], down.bias [r], up.weight [D,r], up.bias [D]} or None (plain block)."""
    x1 = x + blk.attn(blk.norm1(x))
    out = x1 + blk.mlp(blk.norm2(x1))
    if module is not None:
        hidden = F.relu(F.linear(x1, module["down.weight"], module["down.bias"]))
        out = out + scale * F.linear(hidden, module["up.weight"], module["up.bias"])
    return out


def adaptformer_forward(model: R.VisionTransformer, img: torch.Tensor, modules: Dict[int, dict],
                        scale: float) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    x = model.embed(img)
    blocks = []
    for m, blk in enumerate(model.blocks):
        x = adaptformer_block(blk, x, modules.get(m), scale)
        blocks.append(x)
    return model.norm(x)[:, 0], blocks


# --------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------

def frozen_linears(blk: R.Block) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """The block's six Linears as torch (weight [out, in], bias), q/k/v cut from the fused qkv."""
    D = blk.attn.proj.weight.shape[0]
    w, b = blk.attn.qkv.weight, blk.attn.qkv.bias
    return {
        "q": (w[:D], b[:D]), "k": (w[D:2 * D], b[D:2 * D]), "v": (w[2 * D:], b[2 * D:]),
        "proj": (blk.attn.proj.weight, blk.attn.proj.bias),
        "fc1": (blk.mlp.fc1.weight, blk.mlp.fc1.bias),
        "fc2": (blk.mlp.fc2.weight, blk.mlp.fc2.bias),
    }


def lora_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, lora: Optional[dict],
                scaling: float) -> torch.Tensor:
    """PEFT's lora.Linear.forward without dropout: x W^T + b + scaling * (x A^T) B^T."""
    y = F.linear(x, weight, bias)
    if lora is not None:
        y = y + scaling * F.linear(F.linear(x, lora["lora_A"]), lora["lora_B"])
    return y


def lora_block(blk: R.Block, x: torch.Tensor, module: Dict[str, dict], scaling: float) -> torch.Tensor:
    """The timm block with LoRA on any of its six Linears (module: target -> {lora_A, lora_B})."""
    lin = frozen_linears(blk)
    f = lambda name, t: lora_linear(t, *lin[name], module.get(name), scaling)  # noqa: E731
    B, L, D = x.shape
    H = blk.attn.heads
    d = D // H
    ln1 = blk.norm1(x)
    split = lambda t: t.reshape(B, L, H, d).transpose(1, 2)  # noqa: E731
    q, k, v = split(f("q", ln1)), split(f("k", ln1)), split(f("v", ln1))
    a = (q @ k.transpose(-2, -1) / math.sqrt(d)).softmax(-1)
    x1 = x + f("proj", (a @ v).transpose(1, 2).reshape(B, L, D))
    return x1 + f("fc2", F.gelu(f("fc1", blk.norm2(x1))))


def lora_forward(model: R.VisionTransformer, img: torch.Tensor, modules: Dict[int, Dict[str, dict]],
                 scaling: float) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    x = model.embed(img)
    blocks = []
    for m, blk in enumerate(model.blocks):
        x = lora_block(blk, x, modules.get(m, {}), scaling)
        blocks.append(x)
    return model.norm(x)[:, 0], blocks


def lora_merge(sd: Dict[str, np.ndarray], modules: Dict[int, Dict[str, dict]], scaling: float) -> Dict[str, np.ndarray]:
    """merge_and_unload on a timm state dict: W += scaling * B A (q/k/v rows of the fused qkv)."""
    out = {k: v.astype(np.float64).copy() for k, v in sd.items()}
    D = sd["cls_token"].shape[-1]
    where = {"q": ("attn.qkv.weight", 0), "k": ("attn.qkv.weight", D), "v": ("attn.qkv.weight", 2 * D),
             "proj": ("attn.proj.weight", 0), "fc1": ("mlp.fc1.weight", 0), "fc2": ("mlp.fc2.weight", 0)}
    for m, targets in modules.items():
        for name, lora in targets.items():
            key, row = where[name]
            delta = scaling * (lora["lora_B"].numpy() @ lora["lora_A"].numpy())
            out[f"blocks.{m}.{key}"][row:row + delta.shape[0]] += delta
    return out


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------

def kaiming_uniform_a_sqrt5(rng: np.random.Generator, out_features: int, in_features: int) -> np.ndarray:
    """torch.nn.init.kaiming_uniform_(w, a=sqrt(5)) on [out, in]: U(+-1/sqrt(in))."""
    bound = 1.0 / math.sqrt(in_features)
    return rng.uniform(-bound, bound, (out_features, in_features)).astype(np.float32)


def t64(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def save_npy(folder: str, name: str, a) -> None:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    np.save(os.path.join(folder, name), np.ascontiguousarray(a, dtype="<f4"))


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"SELF-CHECK FAILED: {what}")
    print(f"  ok  {what}")


def load_backbone() -> Tuple[R.VisionTransformer, Dict[str, np.ndarray]]:
    sd, _ = R.load_safetensors(CKPT)
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    return R.vit_from_timm_state_dict(sd, HEADS, torch.float64), sd


def adapter_config(method: str, model: R.VisionTransformer, options: dict) -> dict:
    return {
        "method": method,
        "formatVersion": 1,
        "backbone": {
            "name": "model.safetensors",
            "sha256": sha256(CKPT),
            "config": {"imageSize": model.img_size, "patchSize": model.patch_size, "dim": model.dim,
                       "depth": model.depth, "heads": model.heads, "mlpRatio": model.mlp_ratio, "eps": R.LN_EPS},
        },
        "numClasses": NUM_CLASSES,
        "options": options,
        "training": {"source": "tools/reference/peft_ref.py (random adapter weights)"},
    }


def write_case(folder: str, method: str, model, x: np.ndarray, options: dict, tensors: Dict[str, np.ndarray],
               cls: torch.Tensor, blocks: List[torch.Tensor], head_w: np.ndarray, head_b: np.ndarray) -> None:
    os.makedirs(folder, exist_ok=True)
    R.save_safetensors(os.path.join(folder, "adapter_model.safetensors"),
                       {**tensors, "head.weight": head_w, "head.bias": head_b},
                       metadata={"format": "vqt-ts-adapter", "method": method})
    write_json(os.path.join(folder, "adapter_config.json"), adapter_config(method, model, options))
    logits = F.linear(cls, t64(head_w), t64(head_b))
    save_npy(folder, "input.npy", x)
    save_npy(folder, "cls.npy", cls)
    save_npy(folder, "logits.npy", logits)
    save_npy(folder, "blocks.npy", torch.stack(blocks))


def adaptformer_modules(tensors: Dict[str, np.ndarray], blocks: Sequence[int]) -> Dict[int, dict]:
    return {m: {part: t64(tensors[f"adaptformer.blocks.{m}.{part}"])
                for part in ("down.weight", "down.bias", "up.weight", "up.bias")} for m in blocks}


def lora_modules(tensors: Dict[str, np.ndarray], blocks: Sequence[int], targets: Sequence[str]) -> Dict[int, Dict[str, dict]]:
    return {m: {t: {p: t64(tensors[f"lora.blocks.{m}.{t}.{p}"]) for p in ("lora_A", "lora_B")} for t in targets}
            for m in blocks}


def self_checks(model: R.VisionTransformer, sd: Dict[str, np.ndarray], x: torch.Tensor) -> None:
    print("self-checks")
    rng = np.random.default_rng(7)
    D = model.dim
    with torch.no_grad():
        plain = model.forward_all(x)
        # 1. zero-initialised adapters (up = 0, B = 0) change nothing
        r = 4
        zero_af = {m: {"down.weight": t64(kaiming_uniform_a_sqrt5(rng, r, D)), "down.bias": t64(np.zeros(r)),
                       "up.weight": t64(np.zeros((D, r))), "up.bias": t64(np.zeros(D))} for m in range(model.depth)}
        cls, _ = adaptformer_forward(model, x, zero_af, 0.1)
        check(torch.equal(cls, plain["cls"]), "AdaptFormer with up = 0 is the identity")
        zero_lora = {m: {t: {"lora_A": t64(kaiming_uniform_a_sqrt5(rng, r, D * 4 if t == "fc2" else D)),
                             "lora_B": t64(np.zeros((D * 4 if t == "fc1" else D, r)))} for t in TARGETS}
                     for m in range(model.depth)}
        cls, _ = lora_forward(model, x, zero_lora, 2.0)
        check(float((cls - plain["cls"]).abs().max()) < 1e-13, "LoRA with B = 0 is the identity")
        # plain lora_block equals vit_ref's block
        y = model.embed(x)
        check(float((lora_block(model.blocks[0], y, {}, 1.0) - model.blocks[0](y)).abs().max()) < 1e-13,
              "lora_block with no LoRA equals vit_ref.Block")
        # 2. the AdaptFormer branch equals nn.Linear modules with these weights (torch [out, in])
        down, up = nn.Linear(D, r).double(), nn.Linear(r, D).double()
        module = {"down.weight": down.weight, "down.bias": down.bias, "up.weight": up.weight, "up.bias": up.bias}
        x1 = y + model.blocks[0].attn(model.blocks[0].norm1(y))
        expected = x1 + model.blocks[0].mlp(model.blocks[0].norm2(x1)) + 0.1 * up(F.relu(down(x1)))
        check(float((adaptformer_block(model.blocks[0], y, module, 0.1) - expected).abs().max()) < 1e-13,
              "AdaptFormer branch equals nn.Linear(D, r) -> ReLU -> nn.Linear(r, D), times s")
        # 3. LoRA on q, k, v separately equals LoRA on the fused qkv with block-diagonal A/B
        loras = {t: {"lora_A": t64(rng.standard_normal((r, D)) * 0.1), "lora_B": t64(rng.standard_normal((D, r)) * 0.1)}
                 for t in ("q", "k", "v")}
        A = torch.cat([loras[t]["lora_A"] for t in ("q", "k", "v")], 0)            # [3r, D]
        Bm = torch.block_diag(*[loras[t]["lora_B"] for t in ("q", "k", "v")])      # [3D, 3r]
        ln1 = model.blocks[0].norm1(y)
        fused = lora_linear(ln1, model.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.bias,
                            {"lora_A": A, "lora_B": Bm}, 0.5)
        lin = frozen_linears(model.blocks[0])
        separate = torch.cat([lora_linear(ln1, *lin[t], loras[t], 0.5) for t in ("q", "k", "v")], -1)
        check(float((fused - separate).abs().max()) < 1e-13, "LoRA on q, k, v equals LoRA on the fused qkv (block-diagonal)")
        # 4. merge_and_unload: merged weights give the unmerged outputs
        full = {m: {t: {"lora_A": t64(rng.standard_normal((r, D * 4 if t == "fc2" else D)) * 0.1),
                        "lora_B": t64(rng.standard_normal((D * 4 if t == "fc1" else D, r)) * 0.1)} for t in TARGETS}
                for m in range(model.depth)}
        cls, _ = lora_forward(model, x, full, 0.5)
        merged = R.vit_from_timm_state_dict(lora_merge(sd, full, 0.5), HEADS, torch.float64)
        # vit_from_timm_state_dict rounds through float32: compare at float32 precision
        diff = float((merged.forward_all(x)["cls"] - cls).abs().max())
        check(diff < 1e-5, f"merged LoRA weights give the unmerged outputs (max diff {diff:.1e}, float32 weights)")
        check(float((cls - plain["cls"]).abs().max()) > 1e-2, "LoRA with nonzero B changes the output")


def main() -> None:
    model, sd = load_backbone()
    x = np.load(INPUT)
    xt = t64(x)
    self_checks(model, sd, xt)
    rng = np.random.default_rng(9090)
    D, depth = model.dim, model.depth
    head_w = (rng.standard_normal((NUM_CLASSES, D)) * 0.5).astype(np.float32)
    head_b = (rng.standard_normal(NUM_CLASSES) * 0.1).astype(np.float32)
    rel = os.path.relpath(CKPT, ROOT)

    print("writing fixtures")
    # AdaptFormer: bottleneck 8 on blocks 0 and 2 (block 1 plain), s = 0.1. The up projection and the
    # biases are random (not their zero init) so that the adapter visibly changes every output.
    af_blocks, r, scale = [0, 2], 8, 0.1
    af = {}
    for m in af_blocks:
        af[f"adaptformer.blocks.{m}.down.weight"] = kaiming_uniform_a_sqrt5(rng, r, D)
        af[f"adaptformer.blocks.{m}.down.bias"] = (rng.standard_normal(r) * 0.1).astype(np.float32)
        af[f"adaptformer.blocks.{m}.up.weight"] = (rng.standard_normal((D, r)) * 0.5).astype(np.float32)
        af[f"adaptformer.blocks.{m}.up.bias"] = (rng.standard_normal(D) * 0.1).astype(np.float32)
    with torch.no_grad():
        cls, blocks = adaptformer_forward(model, xt, adaptformer_modules(af, af_blocks), scale)
        plain = model.forward_all(xt)["cls"]
    check(float((cls - plain).abs().max()) > 1e-2, "the AdaptFormer fixture's adapter changes the CLS")
    folder = os.path.join(ROOT, "packages", "adaptformer", "test", "fixtures", "adaptformer_tiny")
    write_case(folder, "adaptformer", model, x,
               {"bottleneck": r, "scale": scale, "dropout": 0.1, "blocks": af_blocks},
               af, cls, blocks, head_w, head_b)

    # LoRA: rank 4, alpha 6 (scaling 1.5) on all six Linears of blocks 1 and 2 (block 0 plain).
    lora_blocks, rank, alpha = [1, 2], 4, 6.0
    lora = {}
    for m in lora_blocks:
        for t in TARGETS:
            fan_in = 4 * D if t == "fc2" else D
            fan_out = 4 * D if t == "fc1" else D
            lora[f"lora.blocks.{m}.{t}.lora_A"] = kaiming_uniform_a_sqrt5(rng, rank, fan_in)
            lora[f"lora.blocks.{m}.{t}.lora_B"] = (rng.standard_normal((fan_out, rank)) * 0.05).astype(np.float32)
    with torch.no_grad():
        modules = lora_modules(lora, lora_blocks, TARGETS)
        cls, blocks = lora_forward(model, xt, modules, alpha / rank)
    check(float((cls - plain).abs().max()) > 1e-2, "the LoRA fixture's deltas change the CLS")
    folder = os.path.join(ROOT, "packages", "lora", "test", "fixtures", "lora_tiny")
    write_case(folder, "lora", model, x,
               {"rank": rank, "alpha": alpha, "targets": list(TARGETS), "dropout": 0, "blocks": lora_blocks},
               lora, cls, blocks, head_w, head_b)
    print(f"  backbone {rel} (sha256 {sha256(CKPT)[:12]}...)")


if __name__ == "__main__":
    main()
