"""Generate the golden fixtures the TensorFlow.js implementation is tested against.

    /usr/bin/python3 tools/reference/make_fixtures.py

Deterministic (fixed seeds, reference computed in float64 and saved as float32).
Runs a set of self-checks first and aborts if any fails. See tools/reference/README.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import types
import zipfile
import contextlib

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref as R  # noqa: E402
import head2toe_ref as H  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORE = os.path.join(ROOT, "packages", "core", "test", "fixtures")
VQT = os.path.join(ROOT, "packages", "vqt", "test", "fixtures")
H2T = os.path.join(ROOT, "packages", "head2toe", "test", "fixtures")

PATCH, DIM, DEPTH, HEADS, MLP_RATIO, NUM_CLASSES, BATCH = 8, 48, 3, 3, 4, 10, 2


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def random_timm_weights(seed: int, img_size: int, num_classes: int = NUM_CLASSES) -> dict:
    """Random float32 weights in timm naming with roughly trained-ViT scales, large enough
    that attention is far from uniform and GELU is exercised in its non-linear range."""
    rng = np.random.default_rng(seed)
    n = lambda *shape, std=1.0: (rng.standard_normal(shape) * std).astype(np.float32)  # noqa
    D, Hd = DIM, DIM * MLP_RATIO
    N = (img_size // PATCH) ** 2
    sd = {
        "patch_embed.proj.weight": n(D, 3, PATCH, PATCH, std=0.05),
        "patch_embed.proj.bias": n(D, std=0.05),
        "cls_token": n(1, 1, D, std=0.1),
        "pos_embed": n(1, 1 + N, D, std=0.1),
        "norm.weight": 1 + n(D, std=0.1),
        "norm.bias": n(D, std=0.05),
    }
    for i in range(DEPTH):
        t = f"blocks.{i}."
        sd[t + "norm1.weight"] = 1 + n(D, std=0.1)
        sd[t + "norm1.bias"] = n(D, std=0.05)
        # q and k rows std 0.2 (peaked attention), v rows std 0.1
        sd[t + "attn.qkv.weight"] = np.concatenate([n(2 * D, D, std=0.2), n(D, D, std=0.1)], 0)
        sd[t + "attn.qkv.bias"] = n(3 * D, std=0.05)
        sd[t + "attn.proj.weight"] = n(D, D, std=0.05)
        sd[t + "attn.proj.bias"] = n(D, std=0.05)
        sd[t + "norm2.weight"] = 1 + n(D, std=0.1)
        sd[t + "norm2.bias"] = n(D, std=0.05)
        sd[t + "mlp.fc1.weight"] = n(Hd, D, std=0.1)
        sd[t + "mlp.fc1.bias"] = n(Hd, std=0.05)
        sd[t + "mlp.fc2.weight"] = n(D, Hd, std=0.05)
        sd[t + "mlp.fc2.bias"] = n(D, std=0.05)
    if num_classes:
        sd["head.weight"] = n(num_classes, D, std=0.02)
        sd["head.bias"] = n(num_classes, std=0.05)
    return sd


def random_variant_weights(seed: int, img_size: int, patch: int, variant: dict,
                           num_classes: int = NUM_CLASSES) -> dict:
    """random_timm_weights plus what the variant adds (from a second generator), in timm's
    names: reg_token, norm_pre, blocks.i.ls1/ls2.gamma, blocks.i.attn.q_norm/k_norm, fc_norm
    instead of norm; pos_embed rows as no_embed_class and the registers need; no patch
    embedding bias with pre_norm."""
    global PATCH
    saved, PATCH = PATCH, patch
    try:
        sd = random_timm_weights(seed, img_size, num_classes)
    finally:
        PATCH = saved
    rng = np.random.default_rng(seed + 7)
    n = lambda *shape, std=1.0: (rng.standard_normal(shape) * std).astype(np.float32)  # noqa
    D, d = DIM, DIM // HEADS
    R = variant.get("reg_tokens", 0)
    N = (img_size // patch) ** 2
    rows = N if variant.get("no_embed_class") else 1 + R + N
    sd["pos_embed"] = n(1, rows, D, std=0.1)
    if R:
        sd["reg_token"] = n(1, R, D, std=0.3)
    if variant.get("pre_norm"):
        sd["norm_pre.weight"] = 1 + n(D, std=0.1)
        sd["norm_pre.bias"] = n(D, std=0.05)
        del sd["patch_embed.proj.bias"]
    for i in range(DEPTH):
        t = f"blocks.{i}."
        if variant.get("layer_scale"):
            # gains far from 1 so that a loader ignoring them would be far off
            sd[t + "ls1.gamma"] = 0.5 + n(D, std=0.2)
            sd[t + "ls2.gamma"] = 0.5 + n(D, std=0.2)
        if variant.get("qk_norm"):
            for which in ("q_norm", "k_norm"):
                sd[t + f"attn.{which}.weight"] = 1 + n(d, std=0.3)
                sd[t + f"attn.{which}.bias"] = n(d, std=0.3)
    use_fc_norm = variant.get("global_pool") == "avg" if variant.get("fc_norm") is None else variant["fc_norm"]
    if use_fc_norm:
        sd["fc_norm.weight"] = sd.pop("norm.weight")
        sd["fc_norm.bias"] = sd.pop("norm.bias")
    return sd


@contextlib.contextmanager
def fixed_zip_timestamps():
    """np.savez stamps each zip entry with the current time; pin it so that re-running the
    script reproduces the .npz files byte for byte (the layout stays numpy's own)."""
    saved = zipfile.time
    zipfile.time = types.SimpleNamespace(time=lambda: 0.0,
                                         localtime=lambda *a: (1980, 1, 1, 0, 0, 0, 1, 1, 0))
    try:
        yield
    finally:
        zipfile.time = saved


def random_input(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((BATCH, 3, size, size)).astype(np.float32)


def save_npy(folder: str, name: str, a) -> None:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    np.save(os.path.join(folder, name), np.ascontiguousarray(a, dtype=np.float32))


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def metadata(img_size: int) -> dict:
    return {"format": "pt", "arch": "vit", "img_size": str(img_size), "patch_size": str(PATCH),
            "embed_dim": str(DIM), "depth": str(DEPTH), "num_heads": str(HEADS),
            "mlp_ratio": str(MLP_RATIO)}


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch.float64)


# --------------------------------------------------------------------------------------
# self-checks
# --------------------------------------------------------------------------------------

def check(cond: bool, what: str) -> None:
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        raise SystemExit(f"self-check failed: {what}")


def self_checks() -> None:
    print("self-checks")
    sd = random_timm_weights(1234, 32)
    model = R.vit_from_timm_state_dict(sd, HEADS)
    img = t64(random_input(99, 32))
    T = 3
    q = torch.from_numpy(np.random.default_rng(5).uniform(-0.5, 0.5, (DEPTH, T, DIM)))

    # 1. VQT direct formula == full attention over [x; P] with the P rows masked as keys/values.
    with torch.no_grad():
        o = model.forward_all(img, queries=q)
        for m, blk in enumerate(model.blocks):
            x = o["block_inputs"][m]
            L = x.shape[1]
            p = q[m].unsqueeze(0).expand(x.shape[0], -1, -1)
            xp = torch.cat([x, p], dim=1)
            mask = torch.zeros(L + T, L + T, dtype=torch.bool)
            mask[:, :L] = True  # every row may attend only to the original tokens
            ln = blk.norm1(xp)
            y1 = xp + blk.attn.attend(ln, ln, mask)
            y = y1 + blk.mlp(blk.norm2(y1))
            e_q = (y[:, L:] - o["query_outputs"][m]).abs().max().item()
            e_x = (y[:, :L] - o["blocks"][m]).abs().max().item()
            check(e_q < 1e-12 and e_x < 1e-12,
                  f"block {m}: VQT direct == masked full attention (err q {e_q:.1e}, x {e_x:.1e})")

        # 2. blocks / cls never depend on the queries
        o0 = model.forward_all(img)
        o2 = model.forward_all(img, queries=q * 7 + 1)
        same = all(torch.equal(a, b) and torch.equal(a, c)
                   for a, b, c in zip(o0["blocks"], o["blocks"], o2["blocks"]))
        check(same and torch.equal(o0["cls"], o["cls"]), "blocks/cls independent of queries")
        check(not torch.allclose(o["query_outputs"][0], o2["query_outputs"][0]),
              "query outputs do depend on the queries")

        # 3. attention is not close to uniform with these weights
        blk = model.blocks[0]
        ln = blk.norm1(o["embed"])
        Dq = DIM
        qq = blk.attn._split(F.linear(ln, blk.attn.qkv.weight[:Dq], blk.attn.qkv.bias[:Dq]))
        kk = blk.attn._split(F.linear(ln, blk.attn.qkv.weight[Dq:2 * Dq],
                                      blk.attn.qkv.bias[Dq:2 * Dq]))
        a = (qq @ kk.transpose(-2, -1) / math.sqrt(DIM // HEADS)).softmax(-1)
        mx = a.max(-1).values.mean().item()
        check(mx > 3.0 / a.shape[-1], f"attention non-uniform (mean max weight {mx:.3f}, "
                                      f"uniform {1 / a.shape[-1]:.3f})")

        # 4. patch embedding conv == reshape + matmul
        w = model.patch_embed.proj.weight  # [D,3,p,p]
        B = img.shape[0]
        g = 32 // PATCH
        patches = img.reshape(B, 3, g, PATCH, g, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(
            B, g * g, 3 * PATCH * PATCH)
        pe = patches @ w.reshape(DIM, -1).T + model.patch_embed.proj.bias
        check((pe - model.patch_embed(img)).abs().max().item() < 1e-12, "conv patch embed == matmul")

    # 5. Google npz <-> timm round trip (exact)
    g = R.timm_to_google_npz(sd, HEADS)
    back = R.google_npz_to_timm(g)
    check(set(back) == set(sd) and all(np.array_equal(back[k], sd[k]) for k in sd),
          "timm -> google npz -> timm is exact")
    check(g["Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel"].shape
          == (DIM, HEADS, DIM // HEADS) and g["embedding/kernel"].shape == (PATCH, PATCH, 3, DIM),
          "google layouts: query kernel [D,H,d], embedding HWIO")

    # 6. position-embedding resampling: torch (timm semantics) == independent numpy kernel
    pos = np.random.default_rng(3).standard_normal((1, 1 + 49, DIM)).astype(np.float32)
    for old, new in [(6, 4), (4, 6), (6, 6), (4, 7), (7, 3), (2, 5)]:
        pos_o = pos[:, :1 + old * old]
        a = R.resample_abs_pos_embed(t64(pos_o), (new, new), (old, old)).numpy()
        b = R.resample_abs_pos_embed_np(pos_o, (new, new), (old, old))
        check(np.abs(a - b).max() < 1e-12, f"pos resample {old}->{new}: torch == numpy "
                                           f"(err {np.abs(a - b).max():.1e})")
    # and the antialiased kernel is not the plain bicubic one (a=-0.5 vs -0.75), even upsampling
    x = t64(pos[:, 1:17]).reshape(1, 4, 4, DIM).permute(0, 3, 1, 2)
    up_aa = F.interpolate(x, size=(6, 6), mode="bicubic", antialias=True, align_corners=False)
    up = F.interpolate(x, size=(6, 6), mode="bicubic", antialias=False, align_corners=False)
    check((up_aa - up).abs().max().item() > 1e-3, "antialias=True differs from False when upsampling")

    # 7. Head2Toe token pooling (official and adaptive) and normalisation: head2toe_ref.py
    H.self_checks(check)

    # 8. bf16 rounding == torch's float32 -> bfloat16 conversion (round-to-nearest-even)
    v = np.random.default_rng(8).standard_normal(100000).astype(np.float32) * 3
    v = np.concatenate([v, np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8)], np.float32)])
    ours = R.round_to_bf16(v)
    theirs = torch.from_numpy(v).to(torch.bfloat16).to(torch.float32).numpy()
    check(np.array_equal(ours, theirs), "bf16 round-to-nearest-even == torch")

    # 9. safetensors round trip
    path = "/tmp/_vit_ref_selfcheck.safetensors"
    R.save_safetensors(path, sd, "F32", metadata(32))
    sd2, meta = R.load_safetensors(path)
    check(all(np.array_equal(sd2[k], sd[k]) for k in sd) and meta["embed_dim"] == str(DIM),
          "safetensors F32 round trip")
    os.remove(path)

    # 10. float32 forward agrees with the float64 reference (sanity of the tolerance budget)
    with torch.no_grad():
        m32 = R.vit_from_timm_state_dict(sd, HEADS, torch.float32)
        c32 = m32.forward_all(img.float())["cls"].double()
        c64 = model.forward_all(img)["cls"]
        err = (c32 - c64).abs().max().item()
    check(err < 1e-4, f"float32 vs float64 forward (max err {err:.1e})")


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------

def core_case(name: str, seed: int, img_size: int, run_size: int, fmt: str,
              dtype: str = "F32", description: str = "") -> dict:
    folder = os.path.join(CORE, name)
    os.makedirs(folder, exist_ok=True)
    sd = random_timm_weights(seed, img_size)
    if fmt == "npz":
        g = R.timm_to_google_npz(sd, HEADS)
        with fixed_zip_timestamps():
            np.savez_compressed(os.path.join(folder, "model.npz"), **g)
            np.savez(os.path.join(folder, "model_stored.npz"), **g)
        loaded = dict(np.load(os.path.join(folder, "model.npz")))
        loaded2 = dict(np.load(os.path.join(folder, "model_stored.npz")))
        assert all(np.array_equal(loaded[k], loaded2[k]) for k in loaded)
        model = R.vit_from_google_npz(loaded, HEADS)
    else:
        path = os.path.join(folder, "model.safetensors")
        R.save_safetensors(path, sd, dtype, metadata(img_size))
        loaded, _ = R.load_safetensors(path)  # f16 / bf16 come back rounded, widened to f32
        if dtype == "F16":
            assert all(np.array_equal(loaded[k], R.round_to_f16(sd[k])) for k in sd)
        elif dtype == "BF16":
            assert all(np.array_equal(loaded[k], R.round_to_bf16(sd[k])) for k in sd)
        model = R.vit_from_timm_state_dict(loaded, HEADS)
    x = random_input(seed + 1, run_size)
    with torch.no_grad():
        o = model.forward_all(t64(x))
    save_npy(folder, "input.npy", x)
    save_npy(folder, "cls.npy", o["cls"])
    save_npy(folder, "blocks.npy", torch.stack(o["blocks"]))
    cfg = {"format": fmt, "imageSize": img_size, "runImageSize": run_size, "patchSize": PATCH,
           "dim": DIM, "depth": DEPTH, "heads": HEADS, "mlpRatio": MLP_RATIO, "dtype": dtype,
           "batch": BATCH, "numClasses": NUM_CLASSES, "seed": seed, "description": description}
    write_json(os.path.join(folder, "config.json"), cfg)
    return {"model": model, "input": x}


# Variant cases: the reference's VisionTransformer arguments, and the same in the TS VitConfig names.
VARIANT_CASES = [
    ("tiny_ls_reg_quickgelu", 7000, 8, 32, {"layer_scale": True, "reg_tokens": 2, "no_embed_class": True,
                                            "act": "quick_gelu"},
     "LayerScale (ls1/ls2 gamma), 2 register tokens (reg_token, no position embedding: "
     "no_embed_class), QuickGELU; blocks.npy without the registers"),
    ("tiny_prenorm_qknorm_gap", 8000, 14, 42, {"pre_norm": True, "qk_norm": True, "global_pool": "avg",
                                               "no_embed_class": True, "eps": 1e-5},
     "patch 14 (grid 3x3), norm_pre (no patch bias), qk-norm, global average pooling with "
     "fc_norm (no norm), no_embed_class, LayerNorm eps 1e-5; cls.npy is the pooled fc-normed feature"),
    ("tiny_reg_resample", 9000, 8, 32, {"reg_tokens": 3},
     "3 register tokens with position embeddings (no_embed_class off: pos_embed has 1 + 3 + 16 rows), "
     "checkpoint grid 4x4 run at 48 (6x6): the CLS and register rows are kept, the patch rows "
     "resampled; blocks.npy without the registers", 48),
]

TS_NAMES = {"layer_scale": "layerScale", "reg_tokens": "registerTokens", "no_embed_class": "noEmbedClass",
            "pre_norm": "preNorm", "qk_norm": "qkNorm", "global_pool": "globalPool", "fc_norm": "fcNorm",
            "eps": "eps", "act": "activation"}


def variant_case(name: str, seed: int, patch: int, img_size: int, variant: dict, description: str,
                 run_size: int = 0) -> None:
    run_size = run_size or img_size
    folder = os.path.join(CORE, name)
    os.makedirs(folder, exist_ok=True)
    sd = random_variant_weights(seed, img_size, patch, variant)
    path = os.path.join(folder, "model.safetensors")
    meta = {**metadata(img_size), "patch_size": str(patch)}
    R.save_safetensors(path, sd, "F32", meta)
    loaded, _ = R.load_safetensors(path)
    model = R.vit_from_timm_state_dict(loaded, HEADS, **variant)
    x = random_input(seed + 1, run_size)
    T = 2
    queries = np.random.default_rng(seed + 2).uniform(-0.3, 0.3, (DEPTH, T, DIM)).astype(np.float32)
    with torch.no_grad():
        cls, blocks, zq = R.vqt_query_outputs(model, t64(x), t64(queries))
    save_npy(folder, "input.npy", x)
    save_npy(folder, "cls.npy", cls)
    save_npy(folder, "blocks.npy", blocks)
    save_npy(folder, "queries.npy", queries)
    save_npy(folder, "query_outputs.npy", zq)
    ts_variant = {TS_NAMES[k]: ("quickGelu" if v == "quick_gelu" else v) for k, v in variant.items()}
    write_json(os.path.join(folder, "config.json"), {
        "format": "safetensors", "imageSize": img_size, "runImageSize": run_size, "patchSize": patch,
        "dim": DIM, "depth": DEPTH, "heads": HEADS, "mlpRatio": MLP_RATIO, "dtype": "F32",
        "batch": BATCH, "numClasses": NUM_CLASSES, "seed": seed, "variant": ts_variant,
        "referenceArguments": variant, "numQueries": T, "description": description,
    })


def variant_self_checks() -> None:
    """VQT's direct formula == masked full attention, and registers are attended to, on every
    variant model (the identities the TS side-query path relies on, or not, with qk-norm)."""
    print("variant self-checks")
    for name, seed, patch, img_size, variant, _, *run in VARIANT_CASES:
        run_size = run[0] if run else img_size
        sd = random_variant_weights(seed, img_size, patch, variant)
        model = R.vit_from_timm_state_dict(sd, HEADS, **variant)
        img = t64(random_input(seed + 1, run_size))
        q = torch.from_numpy(np.random.default_rng(5).uniform(-0.5, 0.5, (DEPTH, 3, DIM)))
        with torch.no_grad():
            o = model.forward_all(img, queries=q)
            worst = 0.0
            for m, blk in enumerate(model.blocks):
                x = o["block_inputs"][m]
                L, T = x.shape[1], q.shape[1]
                xp = torch.cat([x, q[m].unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
                mask = torch.zeros(L + T, L + T, dtype=torch.bool)
                mask[:, :L] = True
                ln = blk.norm1(xp)
                y1 = xp + blk.ls1(blk.attn.attend(ln, ln, mask))
                y = y1 + blk.ls2(blk.mlp(blk.norm2(y1)))
                worst = max(worst, (y[:, L:] - o["query_outputs"][m]).abs().max().item())
            check(worst < 1e-12, f"{name}: VQT direct == masked full attention (err {worst:.1e})")
            if variant.get("reg_tokens"):
                # a shifted register (LayerNorm ignores a rescaling) must change the query outputs
                shift = torch.from_numpy(np.random.default_rng(9).standard_normal(model.reg_token.shape))
                model.reg_token.add_(shift)
                o2 = model.forward_all(img, queries=q)
                changed = (o2["query_outputs"][0] - o["query_outputs"][0]).abs().max().item()
                check(changed > 1e-3, f"{name}: the queries attend to the registers (change {changed:.1e})")
                model.reg_token.sub_(shift)
            blocks = o["blocks"][0]
            check(blocks.shape[1] == 1 + (run_size // patch) ** 2, f"{name}: block outputs drop the registers")


def tiny_case_config(ckpt_rel: str, ckpt_sha: str) -> dict:
    """The config.json keys every case on the shared tiny checkpoint starts with (in this order)."""
    return {
        "checkpoint": ckpt_rel,
        "checkpointRelativeTo": "the folder of this config.json",
        "checkpointSha256": ckpt_sha,
        "format": "safetensors", "imageSize": 32, "runImageSize": 32, "patchSize": PATCH,
        "dim": DIM, "depth": DEPTH, "heads": HEADS, "mlpRatio": MLP_RATIO, "dtype": "F32",
        "batch": BATCH,
    }


def vqt_case(model, x: np.ndarray, ckpt_rel: str, ckpt_sha: str) -> None:
    folder = os.path.join(VQT, "vqt_tiny")
    os.makedirs(folder, exist_ok=True)
    T = 2
    bound = math.sqrt(6.0 / (3 * PATCH * PATCH + DIM))
    queries = np.random.default_rng(4242).uniform(-bound, bound, (DEPTH, T, DIM)).astype(np.float32)
    with torch.no_grad():
        cls, blocks, zq = R.vqt_query_outputs(model, t64(x), t64(queries))
        feats = {m: R.vqt_features(cls, zq, m) for m in ("l2", "none", "mean")}
    save_npy(folder, "input.npy", x)
    save_npy(folder, "queries.npy", queries)
    save_npy(folder, "cls.npy", cls)
    save_npy(folder, "query_outputs.npy", zq)
    save_npy(folder, "features_l2.npy", feats["l2"])
    save_npy(folder, "features_none.npy", feats["none"])
    save_npy(folder, "features_mean.npy", feats["mean"])
    write_json(os.path.join(folder, "config.json"), {
        **tiny_case_config(ckpt_rel, ckpt_sha), "numQueries": T, "queryInitBound": bound, "querySeed": 4242,
        "featureDims": {"l2": DIM * (1 + DEPTH * T), "none": DIM * (1 + DEPTH * T),
                        "mean": DIM * (1 + DEPTH)},
        "description": "queries.npy [depth,T,D]; query_outputs.npy Z'_m [depth,B,T,D] (not "
                       "final-normed); cls.npy final-normed CLS [B,D]; features_l2 = "
                       "[L2(cls), L2(flatten Z'_1), ..]; features_none = same without L2; "
                       "features_mean = [L2(cls), L2(mean_T Z'_1), ..]",
    })


def h2t_cases(model, x: np.ndarray, ckpt_rel: str, ckpt_sha: str) -> None:
    print("  head2toe geometry: " + H.describe_geometry())
    H.write_fixtures(model, x, H2T, tiny_case_config(ckpt_rel, ckpt_sha), save_npy, write_json)


def main() -> None:
    self_checks()
    variant_self_checks()
    print("writing fixtures")
    f32 = core_case("tiny_f32", 1000, 32, 32, "safetensors", "F32",
                    "safetensors F32, includes head.weight [10,48] / head.bias")
    core_case("tiny_npz", 2000, 32, 32, "npz", "F32",
              "Google ViT npz names; model.npz deflated (savez_compressed), "
              "model_stored.npz the same arrays stored (savez)")
    core_case("tiny_f16", 3000, 32, 32, "safetensors", "F16",
              "all tensors F16; reference uses the f16 values widened to f32")
    core_case("tiny_bf16", 4000, 32, 32, "safetensors", "BF16",
              "all tensors BF16 (round-to-nearest-even of f32); reference uses them widened")
    core_case("tiny_resample_up", 5000, 32, 48, "safetensors", "F32",
              "checkpoint grid 4x4, run at 48 (grid 6x6): pos_embed resampled bicubic antialias")
    core_case("tiny_resample_down", 6000, 48, 32, "safetensors", "F32",
              "checkpoint grid 6x6, run at 32 (grid 4x4): pos_embed resampled bicubic antialias")
    for case in VARIANT_CASES:
        variant_case(*case)
    ckpt = os.path.join(CORE, "tiny_f32", "model.safetensors")
    sha = sha256(ckpt)
    rel = "../../../../core/test/fixtures/tiny_f32/model.safetensors"
    vqt_case(f32["model"], f32["input"], rel, sha)
    h2t_cases(f32["model"], f32["input"], rel, sha)
    for base in [VQT + "/vqt_tiny"] + [os.path.join(H2T, case[0]) for case in H.CASES]:
        assert os.path.samefile(os.path.join(base, rel), ckpt), base
    print("fixture sizes")
    for top in (CORE, VQT, H2T):
        for case in sorted(os.listdir(top)):
            d = os.path.join(top, case)
            for fn in sorted(os.listdir(d)):
                p = os.path.join(d, fn)
                extra = ""
                if fn.endswith(".npy"):
                    extra = str(list(np.load(p).shape))
                print(f"  {os.path.relpath(p, ROOT):70s} {os.path.getsize(p):8d} B {extra}")


if __name__ == "__main__":
    main()
