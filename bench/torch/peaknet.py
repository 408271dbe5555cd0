#!/usr/bin/env python3
"""PeakNet in PyTorch: an independent cross-check of the TypeScript models and the eager baseline
for bench/nn.bench.ts.

Written from the structure spec (not from the TS code), so parameter counts that agree here and there
are real evidence. Run with Debian's interpreter (`/usr/bin/python3`, package python3-torch).

  peaknet.py --count NAME                 parameter counts per component, JSON
  peaknet.py --bench NAME --batch 4 --size 256 --steps 5
                                          inference (no_grad) and training-step times, JSON
  peaknet.py --forward NAME --weights CKPT --image IN --out OUT
                                          logits of a safetensors image under a braggflow checkpoint
  peaknet.py --serve NAME --batch 4 --size 256
                                          times one step per `infer`/`train` line on stdin (JSON
                                          lines out), so a caller can interleave with its own runs
"""
import argparse
import json
import re
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VARIANTS = {
    "atto": ([40, 80, 160, 320], [2, 2, 6, 2]),
    "femto": ([48, 96, 192, 384], [2, 2, 6, 2]),
    "pico": ([64, 128, 256, 512], [2, 2, 6, 2]),
    "nano": ([80, 160, 320, 640], [2, 2, 8, 2]),
    "tiny": ([96, 192, 384, 768], [3, 3, 9, 3]),
    "base": ([128, 256, 512, 1024], [3, 3, 27, 3]),
    "large": ([192, 384, 768, 1536], [3, 3, 27, 3]),
    "huge": ([352, 704, 1408, 2816], [3, 3, 27, 3]),
}


def parse_name(name):
    match = re.fullmatch(r"peaknet-([a-z]+)-(\d+)x(\d+)(?:-h(\d+))?", name)
    if not match or match.group(1) not in VARIANTS:
        raise SystemExit(f"peaknet.py: '{name}' is not peaknet-<{'|'.join(VARIANTS)}>-<blocks>x<F>[-h<H>]")
    dims, depths = VARIANTS[match.group(1)]
    return dict(
        dims=dims,
        depths=depths,
        blocks=int(match.group(2)),
        features=int(match.group(3)),
        head=int(match.group(4) or 256),
    )


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of an NCHW tensor (ConvNeXt's channels_first LayerNorm)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global response normalisation (ConvNeXtV2), channels-last input."""

    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x):
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class Stem(nn.Module):
    def __init__(self, in_channels, dim):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, dim, 4, stride=4)
        self.norm = LayerNorm2d(dim)

    def forward(self, x):
        return self.norm(self.conv(x))


class Downsample(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.norm = LayerNorm2d(dim_in)
        self.conv = nn.Conv2d(dim_in, dim_out, 2, stride=2)

    def forward(self, x):
        return self.conv(self.norm(x))


class Stage(nn.Module):
    def __init__(self, dim_in, dim, depth):
        super().__init__()
        self.downsample = Downsample(dim_in, dim) if dim_in is not None else None
        self.blocks = nn.Sequential(*[Block(dim) for _ in range(depth)])
        self.out_norm = LayerNorm2d(dim)

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        x = self.blocks(x)
        # The normalised copy feeds the neck; the next stage continues from x.
        return x, self.out_norm(x)


class ConvNeXtV2(nn.Module):
    def __init__(self, dims, depths, in_channels=1):
        super().__init__()
        self.stem = Stem(in_channels, dims[0])
        self.stages = nn.ModuleList(
            [Stage(dims[i - 1] if i > 0 else None, dims[i], depths[i]) for i in range(4)]
        )

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x, out = stage(x)
            outs.append(out)
        return outs


def resize(x, like):
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class FusionNode(nn.Module):
    """Fast normalised fusion, then separable conv (1x1 depthwise + 1x1 pointwise, no bias), norm, GELU.

    The norm has 2F params: a channel LayerNorm by default (what the TS model uses: no running stats,
    batch-size independent), or BatchNorm / GroupNorm as in the original PeakNet."""

    def __init__(self, features, norm):
        super().__init__()
        self.depthwise = nn.Conv2d(features, features, 1, groups=features, bias=False)
        self.pointwise = nn.Conv2d(features, features, 1, bias=False)
        if norm == "batch":
            self.norm = nn.BatchNorm2d(features)
        elif norm == "layer":
            self.norm = LayerNorm2d(features, eps=1e-5)
        else:
            self.norm = nn.GroupNorm(norm, features)

    def forward(self, inputs, weights):
        w = F.relu(weights[: len(inputs)])
        fused = sum(wi * xi for wi, xi in zip(w, inputs)) / (w.sum() + 1e-4)
        return F.gelu(self.norm(self.pointwise(self.depthwise(fused))))


class BiFPNBlock(nn.Module):
    """Nodes are keyed by the level they produce (0..3 = strides 4..32): td.2, td.1, td.0, bu.1, bu.2, bu.3."""

    def __init__(self, features, norm):
        super().__init__()
        self.w_td = nn.Parameter(torch.ones(3, 2))
        self.w_bu = nn.Parameter(torch.ones(3, 3))
        self.td = nn.ModuleDict({str(level): FusionNode(features, norm) for level in (2, 1, 0)})
        self.bu = nn.ModuleDict({str(level): FusionNode(features, norm) for level in (1, 2, 3)})

    def forward(self, p):
        p4, p8, p16, p32 = p
        td16 = self.td["2"]([p16, resize(p32, p16)], self.w_td[0])
        td8 = self.td["1"]([p8, resize(td16, p8)], self.w_td[1])
        out4 = self.td["0"]([p4, resize(td8, p4)], self.w_td[2])
        out8 = self.bu["1"]([p8, td8, resize(out4, p8)], self.w_bu[0])
        out16 = self.bu["2"]([p16, td16, resize(out8, p16)], self.w_bu[1])
        # The coarsest level has no top-down result: its input fills both of the first two slots.
        out32 = self.bu["3"]([p32, p32, resize(out16, p32)], self.w_bu[2])
        return [out4, out8, out16, out32]


class BiFPN(nn.Module):
    def __init__(self, blocks, features, norm):
        super().__init__()
        self.blocks = nn.ModuleList([BiFPNBlock(features, norm) for _ in range(blocks)])

    def forward(self, feats):
        for block in self.blocks:
            feats = block(feats)
        return feats


def group_count(channels, preferred=32):
    """The usual 32 groups, or the largest divisor of channels below it."""
    for g in range(min(preferred, channels), 1, -1):
        if channels % g == 0:
            return g
    return 1


class HeadLayer(nn.Module):
    def __init__(self, channels_in, hidden, groups):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, hidden, 3, padding=1)
        self.norm = nn.GroupNorm(groups, hidden)

    def forward(self, x):
        return F.gelu(self.norm(self.conv(x)))


class Lateral(nn.Module):
    def __init__(self, n, features, hidden, groups):
        super().__init__()
        self.layers = nn.ModuleList([HeadLayer(features if k == 0 else hidden, hidden, groups) for k in range(n)])


class Head(nn.Module):
    """Per level: (3x3 conv + GroupNorm + GELU [+ x2 up]) x n, n = 1, 1, 2, 3; sum; 1x1 -> classes; x4; 3x3."""

    def __init__(self, features, hidden, classes, groups):
        super().__init__()
        self.lateral = nn.ModuleList([Lateral(n, features, hidden, groups) for n in (1, 1, 2, 3)])
        self.segmask = nn.Conv2d(hidden, classes, 1)
        self.final_conv = nn.Conv2d(classes, classes, 3, padding=1)

    def forward(self, feats):
        total = None
        for level, (lateral, x) in enumerate(zip(self.lateral, feats)):
            for layer in lateral.layers:
                x = layer(x)
                if level > 0:
                    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            total = x if total is None else total + x
        y = F.interpolate(self.segmask(total), scale_factor=4, mode="bilinear", align_corners=False)
        return self.final_conv(y)


class PeakNet(nn.Module):
    """Parameter names equal the TS model's keys (backbone.stages.2.blocks.5.pwconv1.weight, ...); only
    shapes differ where PyTorch idiom does: Linear [out, in] vs 1x1 conv [out, in, 1, 1], GRN [1,1,1,C] vs [C]."""

    def __init__(self, dims, depths, blocks, features, head, classes=2, bifpn_norm="layer", head_groups=32):
        super().__init__()
        self.backbone = ConvNeXtV2(dims, depths)
        self.adapters = nn.ModuleList([nn.Conv2d(d, features, 1) for d in dims])
        self.bifpn = BiFPN(blocks, features, bifpn_norm)
        self.head = Head(features, head, classes, group_count(head, head_groups))

    def forward(self, x):
        feats = [adapter(f) for adapter, f in zip(self.adapters, self.backbone(x))]
        return self.head(self.bifpn(feats))


def focal_loss(logits, target, alpha=(0.25, 0.75), gamma=2.0):
    """2-class focal loss on softmax probabilities, mean over pixels; target is 0 (bg) / 1 (peak)."""
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    weight = torch.where(target == 1, alpha[1], alpha[0])
    return (-weight * (1 - logp.exp()).pow(gamma) * logp).mean()


def count(model):
    parts = dict(
        backbone=model.backbone,
        adapters=model.adapters,
        bifpn=model.bifpn,
        head=model.head,
    )
    out = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
    out["neck"] = out["adapters"] + out["bifpn"]
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


SAFETENSORS_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U8": torch.uint8}


def read_safetensors(path):
    """{name: tensor} from a safetensors file (the braggflow checkpoint format), without the package."""
    with open(path, "rb") as f:
        data = f.read()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    start = 8 + header_length
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = SAFETENSORS_DTYPES[entry["dtype"]]
        buffer = bytearray(data[start + begin : start + end])
        out[name] = torch.frombuffer(buffer, dtype=dtype).reshape(entry["shape"]) if end > begin else torch.zeros(entry["shape"], dtype=dtype)
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, tensor in tensors.items():
        blob = tensor.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = dict(dtype="F32", shape=list(tensor.shape), data_offsets=[offset, offset + len(blob)])
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)


def load_weights(model, path):
    """Loads a braggflow checkpoint: same names; 1x1-conv weights go into Linear layers and GRN's [C]
    into [1,1,1,C] by reshaping (element counts must agree)."""
    weights = read_safetensors(path)
    missing = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name not in weights:
                missing.append(name)
                continue
            value = weights[name]
            if value.numel() != param.numel():
                raise SystemExit(f"peaknet.py: {path}: tensor {name}: {list(value.shape)} does not fit {list(param.shape)}")
            param.copy_(value.reshape(param.shape))
    if missing:
        raise SystemExit(f"peaknet.py: {path}: missing tensors {missing[:5]}")


def loaded_blas():
    """The BLAS library this process really mapped: Debian's torch uses the system libblas.so.3, and
    the reference (netlib) one makes Linear layers ~10x slower than OpenBLAS."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    return ",".join(sorted(paths)) or "none mapped"


def median(values):
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def bench(model, batch, size, steps, warmup):
    torch.manual_seed(0)
    x = torch.randn(batch, 1, size, size)
    target = (torch.rand(batch, size, size) < 0.01).long()
    model.eval()
    infer = []
    with torch.no_grad():
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                infer.append((time.perf_counter() - t0) * 1e3)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05)
    train = []
    losses = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = focal_loss(model(x), target)
        loss.backward()
        opt.step()
        if i >= warmup:
            train.append((time.perf_counter() - t0) * 1e3)
        losses.append(loss.item())
    return dict(
        inferMs=median(infer),
        inferMsAll=infer,
        trainMs=median(train),
        trainMsAll=train,
        losses=losses,
    )


def serve(model, batch, size, threads):
    """Line protocol for interleaved benchmarking: reads `infer` / `train` / `quit` from stdin, answers
    one JSON line each ({"ms": ...}). The first line out describes the setup."""
    torch.manual_seed(0)
    x = torch.randn(batch, 1, size, size)
    target = (torch.rand(batch, size, size) < 0.01).long()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05)
    print(json.dumps(dict(ready=True, torch=torch.__version__, threads=threads, blas=loaded_blas())), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        t0 = time.perf_counter()
        if command == "infer":
            model.eval()
            with torch.no_grad():
                model(x)
            answer = {}
        elif command == "train":
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = focal_loss(model(x), target)
            loss.backward()
            opt.step()
            answer = dict(loss=loss.item())
        else:
            print(json.dumps(dict(error=f"unknown command {command!r}")), flush=True)
            continue
        answer["ms"] = (time.perf_counter() - t0) * 1e3
        print(json.dumps(answer), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--count", metavar="NAME")
    mode.add_argument("--bench", metavar="NAME")
    mode.add_argument("--serve", metavar="NAME", help="answer infer/train commands on stdin (for nn.bench.ts)")
    mode.add_argument("--forward", metavar="NAME", help="logits of --image under --weights, written to --out")
    parser.add_argument("--weights", help="braggflow checkpoint (safetensors) for --forward")
    parser.add_argument("--image", help="safetensors file with tensor 'image' [B,1,H,W] for --forward")
    parser.add_argument("--out", help="safetensors file to write tensor 'logits' to, for --forward")
    parser.add_argument(
        "--target",
        help="safetensors file with tensor 'target' [B,H,W] (0/1) for --forward: also writes the focal "
        "'loss' and 'grad/<param>' for every parameter",
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bifpn-norm", default="layer", help="'layer' (as the TS model), 'batch', or a GroupNorm group count")
    parser.add_argument("--head-groups", type=int, default=32)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    norm = args.bifpn_norm if args.bifpn_norm in ("batch", "layer") else int(args.bifpn_norm)
    name = args.count or args.bench or args.serve or args.forward
    config = parse_name(name)
    if args.count:
        # Counting needs no memory for weights: build on the meta device when torch has it.
        try:
            with torch.device("meta"):
                model = PeakNet(**config, bifpn_norm=norm, head_groups=args.head_groups)
        except (AttributeError, TypeError):
            model = PeakNet(**config, bifpn_norm=norm, head_groups=args.head_groups)
        json.dump(dict(name=name, torch=torch.__version__, **count(model)), sys.stdout)
        print()
        return
    torch.manual_seed(0)
    model = PeakNet(**config, bifpn_norm=norm, head_groups=args.head_groups)
    if args.serve:
        serve(model, args.batch, args.size, torch.get_num_threads())
        return
    if args.forward:
        if not (args.weights and args.image and args.out):
            raise SystemExit("peaknet.py: --forward needs --weights, --image and --out")
        load_weights(model, args.weights)
        model.eval()
        image = read_safetensors(args.image)["image"].float()
        if not args.target:
            with torch.no_grad():
                write_safetensors(args.out, {"logits": model(image)})
            return
        target = read_safetensors(args.target)["target"].long()
        logits = model(image)
        loss = focal_loss(logits, target)
        loss.backward()
        out = {"logits": logits, "loss": loss.reshape(1)}
        out.update({f"grad/{name}": p.grad for name, p in model.named_parameters()})
        write_safetensors(args.out, out)
        return
    result = bench(model, args.batch, args.size, args.steps, args.warmup)
    json.dump(
        dict(
            name=name,
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            batch=args.batch,
            size=args.size,
            steps=args.steps,
            params=count(model)["total"],
            blas=loaded_blas(),
            **result,
        ),
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
