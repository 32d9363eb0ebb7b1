"""Timing anchor for bench:vqt-vs-pytorch: one VQT training step as the official code runs it,
a frozen forward, and one full fine-tuning step (every weight trained, head on the final CLS).

Written from docs/METHOD.md, independent of the TypeScript code. The whole frozen backbone stays
in the autograd graph (the reference implementation does not detach it), per block the T query
tokens join the tokens before LN1, attend to the original tokens only, go through the MLP and are
dropped; the head reads [L2(final CLS), L2(flatten Z'_1), ..., L2(flatten Z'_M)].
Random ViT-B/16 weights (the weights do not change the cost). Prints one JSON object.

Usage: /usr/bin/python3 tools/reference/pytorch_vqt_step.py [--batch 8] [--steps 3] [--threads 2]
"""
import argparse
import json
import math
import platform
import statistics
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = torch.nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = torch.nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x, queries=None):
        """x [B, L, D]; queries [B, T, D] or None. Returns (block output, query outputs or None)."""
        b, length, dim = x.shape
        t = 0 if queries is None else queries.shape[1]
        rows = x if queries is None else torch.cat([x, queries], 1)
        h, d = self.heads, dim // self.heads
        qkv = self.qkv(self.norm1(rows)).reshape(b, length + t, 3, h, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1][:, :, :length], qkv[2][:, :, :length]  # keys/values: original tokens only
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), -1)
        mixed = (attn @ v).transpose(1, 2).reshape(b, length + t, dim)
        rows = rows + self.proj(mixed)
        rows = rows + self.fc2(F.gelu(self.fc1(self.norm2(rows))))
        return rows[:, :length], (rows[:, length:] if t else None)


class Vit(torch.nn.Module):
    def __init__(self, image=224, patch=16, dim=768, depth=12, heads=12):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, dim, patch, patch)
        tokens = (image // patch) ** 2 + 1
        self.cls = torch.nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos = torch.nn.Parameter(0.02 * torch.randn(1, tokens, dim))
        self.blocks = torch.nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = torch.nn.LayerNorm(dim, eps=1e-6)

    def forward(self, images, queries=None, query_dropout=None):
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        outputs = []
        for m, block in enumerate(self.blocks):
            p = None
            if queries is not None:
                p = queries[m].unsqueeze(0).expand(x.shape[0], -1, -1)
                p = query_dropout(p) if query_dropout is not None else p
            x, z = block(x, p)
            outputs.append(z)
        return self.norm(x)[:, 0], outputs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--classes', type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vit = Vit()
    for p in vit.parameters():
        p.requires_grad_(False)
    depth, dim, queries_per_block = 12, 768, 1
    bound = math.sqrt(6 / (3 * 16 * 16 + dim))
    queries = torch.nn.Parameter(torch.empty(depth, queries_per_block, dim).uniform_(-bound, bound))
    head = torch.nn.Linear(dim * (1 + depth * queries_per_block), args.classes)
    dropout = torch.nn.Dropout(0.1)
    optimizer = torch.optim.Adam([queries, *head.parameters()], lr=1e-3, weight_decay=1e-4)
    images = torch.randn(args.batch, 3, 224, 224)
    labels = torch.randint(0, args.classes, (args.batch,))

    def step():
        started = time.perf_counter()
        cls, outputs = vit(images, queries, dropout)
        features = torch.cat([F.normalize(cls, dim=-1)] + [F.normalize(z.flatten(1), dim=-1) for z in outputs], 1)
        loss = F.cross_entropy(head(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started

    def forward():
        started = time.perf_counter()
        with torch.no_grad():
            vit(images)
        return time.perf_counter() - started

    # Full fine-tuning: every backbone weight trainable, a head on the final CLS, the same Adam.
    tuned = Vit()
    full_head = torch.nn.Linear(dim, args.classes)
    full_optimizer = torch.optim.Adam([*tuned.parameters(), *full_head.parameters()], lr=1e-4, weight_decay=1e-4)

    def full_step():
        started = time.perf_counter()
        cls, _ = tuned(images)
        loss = F.cross_entropy(full_head(cls), labels)
        full_optimizer.zero_grad()
        loss.backward()
        full_optimizer.step()
        return time.perf_counter() - started

    step()
    forward()
    steps = [step() for _ in range(args.steps)]
    forwards = [forward() for _ in range(args.steps)]
    full_step()
    full_steps = [full_step() for _ in range(args.steps)]
    print(json.dumps({
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'blas': next((part.split('=', 1)[1] for part in torch.__config__.show().replace(',', '\n').split() if part.startswith('BLAS_INFO=')), 'unknown'),
        'machine': platform.machine(),
        'batch': args.batch,
        'vqtStepSecondsPerImage': statistics.median(steps) / args.batch,
        'vqtStepRuns': steps,
        'forwardSecondsPerBatch': statistics.median(forwards),
        'forwardRuns': forwards,
        'fullStepSecondsPerImage': statistics.median(full_steps) / args.batch,
        'fullStepRuns': full_steps,
    }))


if __name__ == '__main__':
    main()
