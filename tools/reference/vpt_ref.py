"""Independent PyTorch reference for VPT-Deep and VPT-Shallow, and the golden fixtures of
packages/vpt (test/fixtures/vpt_tiny).

    /usr/bin/python3 tools/reference/vpt_ref.py

Written from docs/METHOD.md (## VPT-Deep), on the backbone of vit_ref.py, in float64.

VPT-Deep: before block m (for the blocks that have prompts) the block's T prompts are inserted
right after CLS, [CLS, P_m, patches]; after the block their outputs are dropped, so the next
block gets fresh prompts. VPT-Shallow: one set of prompts inserted before the first prompted
block and carried through all later blocks; dropped after the last block. No position
embedding on prompts. The head reads the final normalised CLS. With `first_block` k > 0 (the
"last blocks" setting) blocks before k run unchanged.

Self-checks (abort on failure):
1. Insert-then-drop (this file) equals the KMnP/vpt code's formulation, which keeps the
   sequence length and overwrites the prompt slots [1:1+T] before every block after the first.
2. The prompts change the CLS; with first_block = depth - k the blocks before it are exactly
   the frozen model's.
3. torch.autograd.gradcheck of the loss w.r.t. the prompts (float64 finite differences), deep
   and shallow.
4. Deep with one prompted block (the last) equals shallow started at the last block.
5. VQT queries on the VPT-Deep model read LN1 of the prompt-extended sequence: equal to a full
   attention over [x_ext; Q] with the query rows masked out as keys/values.
Deterministic; rewrites the fixture folder. Takes a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref as R  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORE_CASE = os.path.join(ROOT, "packages", "core", "test", "fixtures", "tiny_f32")
OUT = os.path.join(ROOT, "packages", "vpt", "test", "fixtures", "vpt_tiny")
CKPT_REL = "../../../../core/test/fixtures/tiny_f32/model.safetensors"

HEADS, T, CLASSES = 3, 2, 5
LABELS = [1, 3]


def insert_prompts(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """x [B, L, D], p [T, D] -> [B, L + T, D]: [CLS, P, rest]."""
    B = x.shape[0]
    return torch.cat([x[:, :1], p.unsqueeze(0).expand(B, -1, -1), x[:, 1:]], dim=1)


def drop_prompts(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.cat([x[:, :1], x[:, 1 + t:]], dim=1)


def vpt_forward(model: R.VisionTransformer, img: torch.Tensor, prompts: torch.Tensor, deep: bool,
                first_block: int = 0, queries: Optional[torch.Tensor] = None) -> dict:
    """prompts: deep [depth - first_block, T, D], shallow [1, T, D].
    queries (VQT stacked on VPT, [depth, Tq, D]): read LN1 of each block's (extended) input.
    Returns cls [B, D] (final-normed), blocks (each block's output, prompts dropped for deep),
    and query_outputs [depth, B, Tq, D] when queries are given."""
    depth = len(model.blocks)
    t = prompts.shape[1]
    assert prompts.shape[0] == (depth - first_block if deep else 1)
    x = model.embed(img)
    out = {"blocks": [], "query_outputs": []}
    for m, blk in enumerate(model.blocks):
        if m >= first_block and (deep or m == first_block):
            x = insert_prompts(x, prompts[m - first_block] if deep else prompts[0])
        if queries is not None:
            q = queries[m].unsqueeze(0).expand(x.shape[0], -1, -1)
            out["query_outputs"].append(blk.query_path(x, q))
        x = blk(x)
        if m >= first_block and (deep or m == depth - 1):
            x = drop_prompts(x, t)
        out["blocks"].append(x)
    out["cls"] = model.norm(x)[:, 0]
    if queries is not None:
        out["query_outputs"] = torch.stack(out["query_outputs"])
    return out


def vpt_forward_kmnp(model: R.VisionTransformer, img: torch.Tensor, prompts: torch.Tensor,
                     deep: bool) -> torch.Tensor:
    """KMnP/vpt's formulation (vit_backbones/vit.py, PromptedTransformer): prompts are inserted
    once after the embedding; for deep prompts, before every later block the slots [1:1+T]
    are overwritten by that block's prompts; the final norm is applied to the whole sequence
    and CLS is read. Returns the CLS [B, D]."""
    t = prompts.shape[1]
    B = img.shape[0]
    x = insert_prompts(model.embed(img), prompts[0])
    for m, blk in enumerate(model.blocks):
        if deep and m > 0:
            x = torch.cat([x[:, :1], prompts[m].unsqueeze(0).expand(B, -1, -1), x[:, 1 + t:]], dim=1)
        x = blk(x)
    return model.norm(x)[:, 0]


def loss_of(cls: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(cls, w, b), torch.tensor(LABELS))


def check(cond: bool, what: str) -> None:
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        raise SystemExit(f"self-check failed: {what}")


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_npy(name: str, a) -> None:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a, dtype=np.float32))


def main() -> None:
    ckpt = os.path.join(CORE_CASE, "model.safetensors")
    sd, _ = R.load_safetensors(ckpt)
    model = R.vit_from_timm_state_dict(sd, HEADS)  # float64
    depth, D, p = len(model.blocks), model.dim, model.patch_size
    x_np = np.load(os.path.join(CORE_CASE, "input.npy"))
    img = torch.from_numpy(x_np).to(torch.float64)

    bound = math.sqrt(6.0 / (3 * p * p + D))
    rng = np.random.default_rng(777)
    prompts_deep = rng.uniform(-bound, bound, (depth, T, D)).astype(np.float32)
    prompts_shallow = rng.uniform(-bound, bound, (1, T, D)).astype(np.float32)
    prompts_last2 = rng.uniform(-bound, bound, (2, T, D)).astype(np.float32)
    head_w = (rng.standard_normal((CLASSES, D)) * 0.3).astype(np.float32)
    head_b = (rng.standard_normal(CLASSES) * 0.05).astype(np.float32)
    queries = rng.uniform(-bound, bound, (depth, 1, D)).astype(np.float32)
    t64 = lambda a: torch.from_numpy(np.asarray(a)).to(torch.float64)  # noqa: E731
    W, Bh = t64(head_w), t64(head_b)

    print("self-checks")
    with torch.no_grad():
        plain = model.forward_all(img)
        deep = vpt_forward(model, img, t64(prompts_deep), True)
        shallow = vpt_forward(model, img, t64(prompts_shallow), False)
        last2 = vpt_forward(model, img, t64(prompts_last2), True, first_block=depth - 2)
        e1 = (deep["cls"] - vpt_forward_kmnp(model, img, t64(prompts_deep), True)).abs().max().item()
        e2 = (shallow["cls"] - vpt_forward_kmnp(model, img, t64(prompts_shallow), False)).abs().max().item()
        check(e1 < 1e-12 and e2 < 1e-12, f"insert/drop == KMnP slot overwrite (deep {e1:.1e}, shallow {e2:.1e})")
        changed = min((deep["cls"] - plain["cls"]).abs().max().item(), (shallow["cls"] - plain["cls"]).abs().max().item(),
                      (last2["cls"] - plain["cls"]).abs().max().item())
        check(changed > 1e-3, f"prompts change the CLS (min max-abs change {changed:.3f})")
        same = (last2["blocks"][depth - 3] - plain["blocks"][depth - 3]).abs().max().item()
        check(same == 0.0, "last-2 prompts: blocks before depth-2 are the frozen model's, bit for bit")
        one_deep = vpt_forward(model, img, t64(prompts_last2[1:]), True, first_block=depth - 1)["cls"]
        one_shallow = vpt_forward(model, img, t64(prompts_last2[1:]), False, first_block=depth - 1)["cls"]
        check((one_deep - one_shallow).abs().max().item() == 0.0, "deep on the last block only == shallow from the last block")

        # VQT on VPT-Deep: queries read LN1 of the extended input, masked-attention formulation.
        stacked = vpt_forward(model, img, t64(prompts_deep), True, queries=t64(queries))
        worst = 0.0
        xm = model.embed(img)
        for m, blk in enumerate(model.blocks):
            xe = insert_prompts(xm, t64(prompts_deep[m]))
            qm = t64(queries[m]).unsqueeze(0).expand(xe.shape[0], -1, -1)
            full = torch.cat([xe, qm], 1)
            L = xe.shape[1]
            n = full.shape[1]
            mask = torch.ones(n, n, dtype=torch.bool)
            mask[:, L:] = False  # nobody attends to the queries
            ln = blk.norm1(full)
            a = full + blk.attn.attend(ln, ln, kv_mask=mask)
            z = (a + blk.mlp(blk.norm2(a)))[:, L:]
            worst = max(worst, (z - stacked["query_outputs"][m]).abs().max().item())
            xm = drop_prompts(blk(xe), T)
        check(worst < 1e-12, f"VQT on VPT-Deep: queries see LN1 of [CLS, P_m, patches] (err {worst:.1e})")
        check((stacked["cls"] - deep["cls"]).abs().max().item() == 0.0, "VQT queries leave the VPT-Deep CLS unchanged")

    grads = {}
    for name, prompts, is_deep, first in (("deep", prompts_deep, True, 0), ("shallow", prompts_shallow, False, 0),
                                          ("last2", prompts_last2, True, depth - 2)):
        P = t64(prompts).requires_grad_(True)
        f = lambda q: loss_of(vpt_forward(model, img, q, is_deep, first)["cls"], W, Bh)  # noqa: E731
        ok = torch.autograd.gradcheck(f, (P,), eps=1e-6, atol=1e-7, rtol=1e-5)
        (g,) = torch.autograd.grad(f(P), P)
        check(ok, f"gradcheck of the loss w.r.t. the {name} prompts (max |grad| {g.abs().max().item():.2e})")
        grads[name] = g

    print("writing fixtures")
    os.makedirs(OUT, exist_ok=True)
    with torch.no_grad():
        results = {"deep": deep, "shallow": shallow, "last2": last2}
        save_npy("input.npy", x_np)
        save_npy("prompts_deep.npy", prompts_deep)
        save_npy("prompts_shallow.npy", prompts_shallow)
        save_npy("prompts_last2.npy", prompts_last2)
        save_npy("head_weight.npy", head_w)
        save_npy("head_bias.npy", head_b)
        for name, r in results.items():
            save_npy(f"cls_{name}.npy", r["cls"])
            save_npy(f"logits_{name}.npy", F.linear(r["cls"], W, Bh))
            save_npy(f"loss_{name}.npy", loss_of(r["cls"], W, Bh).reshape(1))
            save_npy(f"grad_prompts_{name}.npy", grads[name])
        save_npy("vqt_queries.npy", queries)
        save_npy("vqt_on_deep_query_outputs.npy", stacked["query_outputs"])
    config = {
        "checkpoint": CKPT_REL,
        "checkpointRelativeTo": "the folder of this config.json",
        "checkpointSha256": sha256(ckpt),
        "imageSize": 32, "patchSize": p, "dim": D, "depth": depth, "heads": HEADS, "batch": img.shape[0],
        "numPrompts": T, "numClasses": CLASSES, "labels": LABELS, "promptInitBound": bound, "seed": 777,
        "lastBlocks": 2,
        "description": "prompts_deep [depth,T,D], prompts_shallow [1,T,D], prompts_last2 [2,T,D] (blocks "
                       "depth-2..depth-1); head_weight [classes,D] (torch layout), head_bias [classes]; "
                       "cls_* final-normed CLS [B,D]; logits_* [B,classes]; loss_* mean cross-entropy with "
                       "`labels` [1]; grad_prompts_* d loss / d prompts (same shape as the prompts); "
                       "vqt_queries [depth,1,D] and vqt_on_deep_query_outputs [depth,B,1,D]: VQT queries "
                       "reading LN1 of the VPT-Deep extended sequence [CLS, P_m, patches]",
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    assert os.path.samefile(os.path.join(OUT, CKPT_REL), ckpt)
    for fn in sorted(os.listdir(OUT)):
        path = os.path.join(OUT, fn)
        shape = list(np.load(path).shape) if fn.endswith(".npy") else ""
        print(f"  {os.path.relpath(path, ROOT):60s} {os.path.getsize(path):7d} B {shape}")


if __name__ == "__main__":
    main()
