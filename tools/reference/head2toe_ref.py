"""Independent PyTorch reference for Head2Toe features, and their golden fixtures.

Written from docs/METHOD.md ("Head2Toe") only, on top of vit_ref's backbone. Two rules:

official (the default, as google-research/head2toe's flatten_and_concat with cls_token_pool
'normal' and the taps of configs_eval/finetune_h2t.py 'imagenetvitB16'):
  taps, in this order (names as the official code's):
    root_output_with_cls      patch embeddings with CLS prepended, before the position embedding
    position_embedded_input   after it (block 0's input)
    per block m: encoder_{m}_pre_attn (LN1 output), encoder_{m}_attn (attention output before
      the residual), encoder_{m}_mlp_1 (MLP hidden after GELU), encoder_{m}_mlp_2 (MLP output
      before the residual)
    encoded_sequence          the final normalised sequence [B, L, D]
    cls_embedded              its CLS row [B, D] (not pooled)
  a token tap [B, L, C] with target size S: if C >= S, the mean over all L tokens; else
  pool_size = int(L / (S / C)) (0 also means the mean over all tokens, as the official code's
  `if pool_size > 0` does) and a 'valid' average pooling of that size and stride:
  floor(L / pool_size) groups of consecutive tokens, the remainder dropped. Flattened [g, C]
  row-major. Each tap L2-normalised on its own, a zero vector staying zero.

adaptive (this project's earlier rule, kept for old adapters):
  taps embed, block{m}.{ln1, attn, mlp_hidden, mlp_out}, final_cls;
  g = min(L, max(1, floor(S / C))) groups as torch's adaptive_avg_pool1d (neighbouring groups may
  share a token); each tap divided by max(||x||, 1e-12).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import vit_ref as R

BLOCK_TAPS = {
    # official name suffix -> vit_ref's per-block tap
    "official": (("pre_attn", "ln1"), ("attn", "attn"), ("mlp_1", "mlp_hidden"), ("mlp_2", "mlp_out")),
    "adaptive": (("ln1", "ln1"), ("attn", "attn"), ("mlp_hidden", "mlp_hidden"), ("mlp_out", "mlp_out")),
}


# --------------------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------------------

def official_pool_size(L: int, C: int, S: int) -> int:
    """Tokens per group; 0 = the mean over all tokens (C >= S, or S / C > L)."""
    if C >= S:
        return 0
    return int(L / (S / C))


def official_groups(L: int, C: int, S: int) -> int:
    p = official_pool_size(L, C, S)
    return 1 if p == 0 else L // p


def pool_official(t: torch.Tensor, S: int) -> torch.Tensor:
    """t [B,L,C] -> [B, g*C] with torch's avg_pool1d (kernel = stride = pool size, no padding,
    which drops the remainder), or the token mean."""
    B, L, C = t.shape
    p = official_pool_size(L, C, S)
    if p == 0:
        return t.mean(dim=1)
    pooled = F.avg_pool1d(t.transpose(1, 2), kernel_size=p, stride=p).transpose(1, 2)  # [B, g, C]
    return pooled.reshape(B, -1)


def adaptive_groups(L: int, g: int) -> List[Tuple[int, int]]:
    """torch adaptive_avg_pool1d bins: group i covers [floor(i L/g), ceil((i+1) L/g))."""
    return [((i * L) // g, -((-(i + 1) * L) // g)) for i in range(g)]


def adaptive_group_count(L: int, C: int, S: int) -> int:
    return min(L, max(1, S // C))


def pool_adaptive(t: torch.Tensor, S: int) -> torch.Tensor:
    """t [B,L,C] -> [B, g*C], g = min(L, max(1, floor(S / C))), group-major flatten."""
    B, L, C = t.shape
    g = adaptive_group_count(L, C, S)
    pooled = torch.stack([t[:, s:e].mean(dim=1) for s, e in adaptive_groups(L, g)], dim=1)
    return pooled.reshape(B, g * C)


def unit_rows(v: torch.Tensor) -> torch.Tensor:
    """Official 'unit_vector': v / ||v|| per row, a zero row stays zero."""
    n = v.norm(dim=-1, keepdim=True)
    return torch.where(n == 0, torch.zeros_like(v), v / torch.where(n == 0, torch.ones_like(n), n))


def clamped_unit_rows(v: torch.Tensor) -> torch.Tensor:
    """Adaptive rule: torch's F.normalize (v / max(||v||, 1e-12))."""
    return F.normalize(v, dim=-1, eps=1e-12)


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------

@torch.no_grad()
def raw_taps(model: R.VisionTransformer, img: torch.Tensor, pooling: str) -> List[Tuple[str, torch.Tensor]]:
    """The unpooled taps of one forward, in feature order."""
    o = model.forward_all(img, taps=True)
    out: List[Tuple[str, torch.Tensor]] = []
    if pooling == "official":
        B = img.shape[0]
        root = torch.cat([model.cls_token.expand(B, -1, -1), model.patch_embed(img)], dim=1)
        out.append(("root_output_with_cls", root))
        out.append(("position_embedded_input", o["embed"]))
        for m, t in enumerate(o["taps"]):
            for suffix, key in BLOCK_TAPS["official"]:
                out.append((f"encoder_{m}_{suffix}", t[key]))
        out.append(("encoded_sequence", model.norm(o["blocks"][-1])))
        out.append(("cls_embedded", o["cls"]))
    elif pooling == "adaptive":
        out.append(("embed", o["embed"]))
        for m, t in enumerate(o["taps"]):
            for suffix, key in BLOCK_TAPS["adaptive"]:
                out.append((f"block{m}.{suffix}", t[key]))
        out.append(("final_cls", o["cls"]))
    else:
        raise ValueError(f"unknown pooling {pooling!r}")
    return out


@torch.no_grad()
def head2toe_features(model: R.VisionTransformer, img: torch.Tensor, target: int,
                      pooling: str = "official") -> Tuple[torch.Tensor, List[dict]]:
    """Returns (features [B,F], layout): layout entries name, width, offset and, for token taps,
    channels, groups (and poolSize for 'official': tokens per group, 0 = mean over all)."""
    pool: Callable[[torch.Tensor, int], torch.Tensor] = pool_official if pooling == "official" else pool_adaptive
    normalise = unit_rows if pooling == "official" else clamped_unit_rows
    pieces, layout, offset = [], [], 0
    for name, value in raw_taps(model, img, pooling):
        entry: Dict[str, int | str] = {"name": name}
        if value.dim() == 3:
            _, L, C = value.shape
            flat = pool(value, target)
            entry["channels"] = C
            if pooling == "official":
                entry["groups"] = official_groups(L, C, target)
                entry["poolSize"] = official_pool_size(L, C, target)
            else:
                entry["groups"] = adaptive_group_count(L, C, target)
            assert flat.shape[1] == entry["groups"] * C, name
        else:
            flat = value
        entry.update(width=flat.shape[1], offset=offset)
        offset += flat.shape[1]
        pieces.append(normalise(flat))
        layout.append(entry)
    return torch.cat(pieces, dim=1), layout


# --------------------------------------------------------------------------------------
# self-checks
# --------------------------------------------------------------------------------------

def self_checks(check: Callable[[bool, str], None]) -> None:
    t = torch.randn(2, 17, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    ok = True
    for gg in range(1, 18):
        ours = pool_adaptive(t, gg * 5).reshape(2, gg, 5)
        ref = F.adaptive_avg_pool1d(t.transpose(1, 2), gg).transpose(1, 2)
        ok &= (ours - ref).abs().max().item() < 1e-12
    check(ok, "adaptive token pooling == F.adaptive_avg_pool1d for g = 1..17")

    # official pooling == an explicit loop over consecutive groups, remainder dropped
    ok = True
    for S in range(1, 5 * 17 + 10):
        ours = pool_official(t, S)
        p = official_pool_size(17, 5, S)
        if p == 0:
            ref = t.mean(dim=1)
        else:
            ref = torch.cat([t[:, i * p:(i + 1) * p].mean(dim=1) for i in range(17 // p)], dim=1)
        ok &= ours.shape == ref.shape and (ours - ref).abs().max().item() < 1e-12
    check(ok, "official token pooling == consecutive groups of int(L / (S / C)), remainder dropped, S = 1..94")

    # the worked example of the issue: ViT-B/16, 197 tokens, C = 768, S = 2048 -> 2 groups of 73
    check(official_pool_size(197, 768, 2048) == 73 and official_groups(197, 768, 2048) == 2
          and official_pool_size(197, 3072, 2048) == 0, "ViT-B/16 at S = 2048: pool 73, 2 groups; MLP hidden a mean")

    z = torch.zeros(2, 4, dtype=torch.float64)
    z[1, 2] = 3.0
    check(torch.equal(unit_rows(z)[0], z[0]) and unit_rows(z)[1, 2].item() == 1.0, "unit_vector keeps a zero row zero")


# --------------------------------------------------------------------------------------
# fixtures (packages/head2toe/test/fixtures)
# --------------------------------------------------------------------------------------

CASES = (
    # folder, pooling, S, why
    ("h2t_tiny", "official", 96,
     "official, S = 96: D-wide taps 2 groups of 8 tokens (0-7, 8-15; token 16 dropped), "
     "MLP hidden (C 192 >= S) the token mean"),
    ("h2t_tiny_s336", "official", 336,
     "official, S = 336: D-wide taps 8 groups of 2 tokens (adaptive would give 7 overlapping); "
     "MLP hidden one group of tokens 0-8 (adaptive: the mean of all 17)"),
    ("h2t_tiny_adaptive", "adaptive", 96,
     "adaptive (the earlier rule, for old adapters), S = 96: D-wide taps 2 groups 0-8 and 8-16"),
    ("h2t_tiny_adaptive_s336", "adaptive", 336,
     "adaptive, S = 336: D-wide taps 7 groups, MLP hidden the mean"),
)


def write_fixtures(model: R.VisionTransformer, x: np.ndarray, root: str, case_config: dict,
                   save_npy: Callable, write_json: Callable) -> None:
    """One folder per case: config.json, taps.json, features.npy [B,F]; the input is
    h2t_tiny/input.npy (tiny_f32's input), referenced by the others' config `input`."""
    img = torch.from_numpy(x).to(torch.float64)
    L = model.pos_embed.shape[1]
    for folder_name, pooling, S, why in CASES:
        folder = os.path.join(root, folder_name)
        os.makedirs(folder, exist_ok=True)
        feats, layout = head2toe_features(model, img, S, pooling)
        if folder_name == "h2t_tiny":
            save_npy(folder, "input.npy", x)
        save_npy(folder, "features.npy", feats)
        write_json(os.path.join(folder, "taps.json"), layout)
        write_json(os.path.join(folder, "config.json"), {
            **case_config, "input": "input.npy" if folder_name == "h2t_tiny" else "../h2t_tiny/input.npy",
            "pooling": pooling, "targetSize": S, "numTokens": L,
            "featureDim": feats.shape[1], "taps": "taps.json", "description": why,
        })


def describe_geometry() -> str:
    """A line for the log: where official and adaptive differ on the tiny ViT."""
    L, D = 17, 48
    parts = []
    for S in (96, 336):
        parts.append(f"S={S}: C=48 official {official_groups(L, D, S)} x {official_pool_size(L, D, S)} tokens, "
                     f"adaptive {adaptive_group_count(L, D, S)}; C=192 official "
                     f"{official_groups(L, 4 * D, S)} x {official_pool_size(L, 4 * D, S)}, adaptive {adaptive_group_count(L, 4 * D, S)}")
    return "; ".join(parts)


if __name__ == "__main__":
    print(describe_geometry())
