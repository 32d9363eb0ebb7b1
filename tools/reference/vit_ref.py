"""Independent PyTorch reference for the ViT backbone and VQT features.

Written from docs/METHOD.md only (timm semantics). It is deliberately small and
explicit so that it can serve as the ground truth the TensorFlow.js code is
checked against. Needs python3-torch and numpy (dev tools only).

Contents
  * safetensors read/write (by hand, no `safetensors` package)
  * bf16 / f16 rounding helpers
  * VisionTransformer with timm parameter names (norm1, attn.qkv, attn.proj,
    norm2, mlp.fc1, mlp.fc2, cls_token, pos_embed, patch_embed.proj, norm, head) and
    timm's variants (each off by default): reg_token (register tokens after CLS),
    no_embed_class (pos_embed without the CLS/register rows), norm_pre (pre-norm),
    blocks.i.ls1/ls2.gamma (LayerScale), attn.q_norm/k_norm (qk-norm over each head's
    width), global average pooling of the patch tokens with fc_norm, QuickGELU, LN eps
  * loaders: timm-name state dict, Google ViT npz names (+ the inverse mapping)
  * resample_abs_pos_embed (timm semantics: bicubic, antialias=True) and an
    independent numpy implementation of the same separable antialiased kernel
  * vqt_query_outputs / vqt_features
  * (Head2Toe features: head2toe_ref.py)
"""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6

# --------------------------------------------------------------------------------------
# safetensors (hand-written)
# --------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2),
              "F64": (np.float64, 8), "I64": (np.int64, 8), "I32": (np.int32, 4)}


def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round float32 -> bfloat16 (round to nearest, ties to even) and return the uint16 bits."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32).astype(np.uint64)
    rounding = 0x7FFF + ((bits >> 16) & 1)
    return ((bits + rounding) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bf16 value, returned as float32."""
    return bf16_bits_to_f32(f32_to_bf16_bits(a)).reshape(np.shape(a))


def round_to_f16(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float16).astype(np.float32)


def save_safetensors(path: str, tensors: Dict[str, np.ndarray], dtype: str = "F32",
                     metadata: Optional[Dict[str, str]] = None) -> None:
    """Write a safetensors file. `tensors` are float arrays; all are stored as `dtype`
    (F32, F16 or BF16). Tensors are laid out contiguously in sorted name order."""
    header: Dict[str, object] = {}
    blobs: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if dtype == "F32":
            raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        elif dtype == "F16":
            raw = np.ascontiguousarray(a.astype(np.float32).astype("<f2")).tobytes()
        elif dtype == "BF16":
            raw = f32_to_bf16_bits(a.astype(np.float32)).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Read a safetensors file; every float tensor is returned as float32 numpy
    (F16 / BF16 are widened exactly)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out: Dict[str, np.ndarray] = {}
    for name, info in header.items():
        dt = info["dtype"]
        s, e = info["data_offsets"]
        npdt, _ = _ST_DTYPES[dt]
        arr = np.frombuffer(data[base + s: base + e], dtype=np.dtype(npdt).newbyteorder("<"))
        if dt == "BF16":
            arr = bf16_bits_to_f32(arr)
        elif dt in ("F16", "F64"):
            arr = arr.astype(np.float32)
        out[name] = arr.reshape(info["shape"]).copy()
    return out, meta


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------

class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int, bias: bool = True):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,3,H,W] -> [B,N,D]
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool = False, eps: float = LN_EPS):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        # qk-norm (timm): a LayerNorm over each head's d values, shared by the heads
        self.q_norm = nn.LayerNorm(dim // heads, eps=eps) if qk_norm else None
        self.k_norm = nn.LayerNorm(dim // heads, eps=eps) if qk_norm else None

    def _split(self, t: torch.Tensor) -> torch.Tensor:  # [B,L,D] -> [B,H,L,d]
        B, L, D = t.shape
        return t.reshape(B, L, self.heads, D // self.heads).transpose(1, 2)

    def attend(self, q_in: torch.Tensor, kv_in: torch.Tensor,
               kv_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """proj(MSA) with queries from q_in and keys/values from kv_in (both already LN1'd).
        kv_mask: optional bool [Lq, Lk], True = key allowed."""
        D = q_in.shape[-1]
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(q_in, w[:D], b[:D])
        k = F.linear(kv_in, w[D:2 * D], b[D:2 * D])
        v = F.linear(kv_in, w[2 * D:], b[2 * D:])
        q, k, v = self._split(q), self._split(k), self._split(v)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        d = D // self.heads
        s = q @ k.transpose(-2, -1) / math.sqrt(d)
        if kv_mask is not None:
            s = s.masked_fill(~kv_mask, float("-inf"))
        a = s.softmax(dim=-1)
        o = (a @ v).transpose(1, 2).reshape(q_in.shape[0], q_in.shape[1], D)
        return self.proj(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(x, x)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """OpenAI CLIP's activation: x * sigmoid(1.702 x)."""
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": F.gelu, "quick_gelu": quick_gelu}  # F.gelu is the exact erf GELU


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """timm LayerScale: a learned per-channel gain on a residual branch."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float = LN_EPS,
                 layer_scale: bool = False, qk_norm: bool = False, act: str = "gelu"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qk_norm, eps)
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor, taps: Optional[dict] = None) -> torch.Tensor:
        ln1 = self.norm1(x)
        attn_out = self.attn(ln1)
        x1 = x + self.ls1(attn_out)
        hidden = self.mlp.act(self.mlp.fc1(self.norm2(x1)))
        mlp_out = self.mlp.fc2(hidden)
        if taps is not None:
            taps.update(ln1=ln1, attn=attn_out, mlp_hidden=hidden, mlp_out=mlp_out)
        return x1 + self.ls2(mlp_out)

    def query_path(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """VQT: queries p [B,T,D] attend to the ORIGINAL tokens x [B,L,D] of this block
        (all of them: CLS, registers, patches). Returns Z' [B,T,D]. x is not modified."""
        p1 = p + self.ls1(self.attn.attend(self.norm1(p), self.norm1(x)))
        return p1 + self.ls2(self.mlp(self.norm2(p1)))


class VisionTransformer(nn.Module):
    def __init__(self, img_size: int = 224, patch_size: int = 16, dim: int = 768,
                 depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0,
                 num_classes: int = 0, eps: float = LN_EPS, reg_tokens: int = 0,
                 no_embed_class: bool = False, pre_norm: bool = False,
                 layer_scale: bool = False, qk_norm: bool = False,
                 global_pool: str = "token", fc_norm: Optional[bool] = None,
                 act: str = "gelu"):
        """Variants follow timm's VisionTransformer arguments of the same names
        (layer_scale = init_values set). fc_norm None means global_pool == 'avg'; with
        fc_norm the final LayerNorm moves after the pooling (no `norm`). pre_norm drops
        the patch embedding's bias, as timm does."""
        super().__init__()
        self.img_size, self.patch_size, self.dim = img_size, patch_size, dim
        self.depth, self.heads, self.mlp_ratio = depth, heads, mlp_ratio
        self.reg_tokens, self.no_embed_class, self.global_pool = reg_tokens, no_embed_class, global_pool
        self.num_prefix_tokens = 1 + reg_tokens
        use_fc_norm = global_pool == "avg" if fc_norm is None else fc_norm
        n = (img_size // patch_size) ** 2
        self.patch_embed = PatchEmbed(patch_size, dim, bias=not pre_norm)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, dim)) if reg_tokens else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n if no_embed_class else self.num_prefix_tokens + n, dim))
        self.norm_pre = nn.LayerNorm(dim, eps=eps) if pre_norm else None
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, eps, layer_scale, qk_norm, act)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps) if not use_fc_norm else None
        self.fc_norm = nn.LayerNorm(dim, eps=eps) if use_fc_norm else None
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else None

    # -- embedding -------------------------------------------------------------------
    def pos_embed_for(self, h: int, w: int) -> torch.Tensor:
        p = self.patch_size
        gh, gw = h // p, w // p
        g0 = self.img_size // p
        if (gh, gw) == (g0, g0):
            return self.pos_embed
        prefix = 0 if self.no_embed_class else self.num_prefix_tokens
        return resample_abs_pos_embed(self.pos_embed, (gh, gw), (g0, g0), prefix)

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] -> block 0's input [B,1+R+N,D]: CLS, registers, patches, with the
        position embedding (patches only with no_embed_class) and norm_pre."""
        B = img.shape[0]
        x = self.patch_embed(img)
        prefix = [self.cls_token.expand(B, -1, -1)]
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(B, -1, -1))
        pos = self.pos_embed_for(img.shape[2], img.shape[3])
        if self.no_embed_class:
            x = torch.cat(prefix + [x + pos], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + pos
        return self.norm_pre(x) if self.norm_pre is not None else x

    def image_feature(self, x: torch.Tensor) -> torch.Tensor:
        """Last block output [B,L,D] -> [B,D]: norm, pool (CLS, or the mean of the patch
        tokens), fc_norm."""
        if self.norm is not None:
            x = self.norm(x)
        f = x[:, 0] if self.global_pool == "token" else x[:, self.num_prefix_tokens:].mean(dim=1)
        return self.fc_norm(f) if self.fc_norm is not None else f

    def without_registers(self, x: torch.Tensor) -> torch.Tensor:
        return x if not self.reg_tokens else torch.cat([x[:, :1], x[:, self.num_prefix_tokens:]], 1)

    # -- forward ---------------------------------------------------------------------
    def forward_all(self, img: torch.Tensor, queries: Optional[torch.Tensor] = None,
                    taps: bool = False) -> dict:
        """Returns dict: cls [B,D] (final-normalised CLS), blocks list of [B,1+N,D]
        (each block's output, before the final norm), and optionally
        query_outputs list of [B,T,D] (VQT, queries: [depth,T,D]) and taps (Head2Toe)."""
        x = self.embed(img)
        out: dict = {"embed": x, "blocks": [], "block_inputs": []}
        if queries is not None:
            out["query_outputs"] = []
        if taps:
            out["taps"] = []
        for m, blk in enumerate(self.blocks):
            out["block_inputs"].append(x)
            if queries is not None:
                p = queries[m].unsqueeze(0).expand(x.shape[0], -1, -1).to(x.dtype)
                out["query_outputs"].append(blk.query_path(x, p))
            t = {} if taps else None
            x = blk(x, t)
            if taps:
                out["taps"].append(t)
            out["blocks"].append(self.without_registers(x))
        out["cls"] = self.image_feature(x)
        return out

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        c = self.forward_all(img)["cls"]
        return self.head(c) if self.head is not None else c


# --------------------------------------------------------------------------------------
# Position-embedding resampling
# --------------------------------------------------------------------------------------

def resample_abs_pos_embed(pos: torch.Tensor, new_size: Tuple[int, int],
                           old_size: Tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """timm.layers.resample_abs_pos_embed: keep the prefix (CLS) rows; reshape the patch rows
    to [1,D,gh,gw]; F.interpolate(size, mode='bicubic', antialias=True, align_corners=False);
    flatten back. (timm casts to float32 for the interpolation; here the dtype is kept so
    the reference can be computed in float64.)"""
    prefix, grid = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    D = pos.shape[-1]
    grid = grid.reshape(1, old_size[0], old_size[1], D).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_size), mode="bicubic", antialias=True,
                         align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, D)
    return torch.cat([prefix, grid], dim=1)


def _bicubic_aa_filter(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def aa_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out,in] resampling matrix of torch's antialiased bicubic (PIL-style, a = -0.5,
    support widened by the scale when downsampling, weights renormalised over the
    in-range taps, align_corners=False). Written independently of torch as a cross-check
    and as a spec for other implementations."""
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1.0 else 2.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    m = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        w = np.array([_bicubic_aa_filter((j + xmin - center + 0.5) * invscale)
                      for j in range(xmax - xmin)])
        tot = w.sum()
        if tot != 0.0:
            w = w / tot
        m[i, xmin:xmax] = w
    return m


def resample_abs_pos_embed_np(pos: np.ndarray, new_size, old_size) -> np.ndarray:
    """numpy twin of resample_abs_pos_embed (separable: rows then columns)."""
    D = pos.shape[-1]
    grid = pos[0, 1:].reshape(old_size[0], old_size[1], D).astype(np.float64)
    mh = aa_bicubic_matrix(old_size[0], new_size[0])
    mw = aa_bicubic_matrix(old_size[1], new_size[1])
    g = np.einsum("ih,hwd->iwd", mh, grid)
    g = np.einsum("jw,iwd->ijd", mw, g)
    return np.concatenate([pos[0, :1].astype(np.float64), g.reshape(-1, D)], 0)[None]


# --------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------

def _infer_geometry(sd: Dict[str, np.ndarray], reg_tokens: int = 0,
                    no_embed_class: bool = False) -> dict:
    D = sd["cls_token"].shape[-1]
    p = sd["patch_embed.proj.weight"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    n = sd["pos_embed"].shape[1] - (0 if no_embed_class else 1 + reg_tokens)
    g = int(round(math.sqrt(n)))
    hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
    return {"dim": D, "patch_size": p, "depth": depth, "img_size": g * p,
            "mlp_ratio": hidden / D}


def vit_from_timm_state_dict(sd: Dict[str, np.ndarray], heads: int,
                             dtype: torch.dtype = torch.float64, **variant) -> VisionTransformer:
    """variant: the VisionTransformer variant arguments (reg_tokens, no_embed_class, ...),
    given explicitly: this reference does not guess them from the names."""
    g = _infer_geometry(sd, variant.get("reg_tokens", 0), variant.get("no_embed_class", False))
    nc = sd["head.weight"].shape[0] if "head.weight" in sd else 0
    model = VisionTransformer(g["img_size"], g["patch_size"], g["dim"], g["depth"], heads,
                              g["mlp_ratio"], num_classes=nc, **variant)
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32).copy()) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"missing={missing} unexpected={unexpected}")
    return model.to(dtype).eval()


def _gblock(i: int) -> str:
    return f"Transformer/encoderblock_{i}/"


def google_npz_to_timm(npz: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Google ViT npz names/layouts -> timm names/layouts (as in timm's _load_weights)."""
    sd: Dict[str, np.ndarray] = {}
    k = npz["embedding/kernel"]  # [p,p,3,D] HWIO
    sd["patch_embed.proj.weight"] = k.transpose(3, 2, 0, 1)  # [D,3,p,p]
    sd["patch_embed.proj.bias"] = npz["embedding/bias"]
    sd["cls_token"] = npz["cls"]
    sd["pos_embed"] = npz["Transformer/posembed_input/pos_embedding"]
    sd["norm.weight"] = npz["Transformer/encoder_norm/scale"]
    sd["norm.bias"] = npz["Transformer/encoder_norm/bias"]
    if "head/kernel" in npz:
        sd["head.weight"] = npz["head/kernel"].T
        sd["head.bias"] = npz["head/bias"]
    i = 0
    while _gblock(i) + "LayerNorm_0/scale" in npz:
        b, t = _gblock(i), f"blocks.{i}."
        att = b + "MultiHeadDotProductAttention_1/"
        D = npz[att + "query/kernel"].shape[0]
        sd[t + "norm1.weight"] = npz[b + "LayerNorm_0/scale"]
        sd[t + "norm1.bias"] = npz[b + "LayerNorm_0/bias"]
        sd[t + "attn.qkv.weight"] = np.concatenate(
            [npz[att + n + "/kernel"].reshape(D, D).T for n in ("query", "key", "value")], 0)
        sd[t + "attn.qkv.bias"] = np.concatenate(
            [npz[att + n + "/bias"].reshape(D) for n in ("query", "key", "value")], 0)
        sd[t + "attn.proj.weight"] = npz[att + "out/kernel"].reshape(D, D).T
        sd[t + "attn.proj.bias"] = npz[att + "out/bias"]
        sd[t + "norm2.weight"] = npz[b + "LayerNorm_2/scale"]
        sd[t + "norm2.bias"] = npz[b + "LayerNorm_2/bias"]
        sd[t + "mlp.fc1.weight"] = npz[b + "MlpBlock_3/Dense_0/kernel"].T
        sd[t + "mlp.fc1.bias"] = npz[b + "MlpBlock_3/Dense_0/bias"]
        sd[t + "mlp.fc2.weight"] = npz[b + "MlpBlock_3/Dense_1/kernel"].T
        sd[t + "mlp.fc2.bias"] = npz[b + "MlpBlock_3/Dense_1/bias"]
        i += 1
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def timm_to_google_npz(sd: Dict[str, np.ndarray], heads: int) -> Dict[str, np.ndarray]:
    """Inverse of google_npz_to_timm (used to write npz fixtures)."""
    out: Dict[str, np.ndarray] = {}
    D = sd["cls_token"].shape[-1]
    d = D // heads
    out["embedding/kernel"] = sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0)
    out["embedding/bias"] = sd["patch_embed.proj.bias"]
    out["cls"] = sd["cls_token"]
    out["Transformer/posembed_input/pos_embedding"] = sd["pos_embed"]
    out["Transformer/encoder_norm/scale"] = sd["norm.weight"]
    out["Transformer/encoder_norm/bias"] = sd["norm.bias"]
    if "head.weight" in sd:
        out["head/kernel"] = sd["head.weight"].T
        out["head/bias"] = sd["head.bias"]
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        b, t = _gblock(i), f"blocks.{i}."
        att = b + "MultiHeadDotProductAttention_1/"
        out[b + "LayerNorm_0/scale"] = sd[t + "norm1.weight"]
        out[b + "LayerNorm_0/bias"] = sd[t + "norm1.bias"]
        w, bb = sd[t + "attn.qkv.weight"], sd[t + "attn.qkv.bias"]
        for j, n in enumerate(("query", "key", "value")):
            out[att + n + "/kernel"] = w[j * D:(j + 1) * D].T.reshape(D, heads, d)
            out[att + n + "/bias"] = bb[j * D:(j + 1) * D].reshape(heads, d)
        out[att + "out/kernel"] = sd[t + "attn.proj.weight"].T.reshape(heads, d, D)
        out[att + "out/bias"] = sd[t + "attn.proj.bias"]
        out[b + "LayerNorm_2/scale"] = sd[t + "norm2.weight"]
        out[b + "LayerNorm_2/bias"] = sd[t + "norm2.bias"]
        out[b + "MlpBlock_3/Dense_0/kernel"] = sd[t + "mlp.fc1.weight"].T
        out[b + "MlpBlock_3/Dense_0/bias"] = sd[t + "mlp.fc1.bias"]
        out[b + "MlpBlock_3/Dense_1/kernel"] = sd[t + "mlp.fc2.weight"].T
        out[b + "MlpBlock_3/Dense_1/bias"] = sd[t + "mlp.fc2.bias"]
        i += 1
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def vit_from_google_npz(path_or_dict, heads: int,
                        dtype: torch.dtype = torch.float64) -> VisionTransformer:
    npz = dict(np.load(path_or_dict)) if isinstance(path_or_dict, str) else path_or_dict
    return vit_from_timm_state_dict(google_npz_to_timm(npz), heads, dtype)


# --------------------------------------------------------------------------------------
# Feature extractors
# --------------------------------------------------------------------------------------

def l2norm(v: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation of [B,F] (no epsilon: our features are never zero)."""
    return v / v.norm(dim=-1, keepdim=True)


@torch.no_grad()
def vqt_query_outputs(model: VisionTransformer, img: torch.Tensor,
                      queries: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """queries [depth,T,D]. Returns (cls [B,D], blocks [depth,B,1+N,D], Z' [depth,B,T,D])."""
    o = model.forward_all(img, queries=queries)
    return o["cls"], torch.stack(o["blocks"]), torch.stack(o["query_outputs"])


def vqt_features(cls: torch.Tensor, zq: torch.Tensor, mode: str = "l2") -> torch.Tensor:
    """cls [B,D]; zq [depth,B,T,D]. mode: 'l2' (default), 'none', 'mean'."""
    depth, B, T, D = zq.shape
    if mode == "mean":
        pieces = [cls] + [zq[m].mean(dim=1) for m in range(depth)]
    else:
        pieces = [cls] + [zq[m].reshape(B, T * D) for m in range(depth)]
    if mode in ("l2", "mean"):
        pieces = [l2norm(p) for p in pieces]
    elif mode != "none":
        raise ValueError(mode)
    return torch.cat(pieces, dim=1)
