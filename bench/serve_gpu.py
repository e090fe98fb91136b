"""GPU figure for the server half (issue 6, item 8): seconds per 512x512, 20-step image of the
SD 1.5 ControlNet architecture, diffusers' defaults against avatargen's settings, in one run.

Random weights at the real sizes (UNet 320/640/1280/1280, ControlNet of the same shape, the SD
VAE, a 12-layer 768-wide CLIP text encoder): speed does not depend on the weights, and nothing
is downloaded. Configurations timed:
  defaults  what `StableDiffusionControlNetPipeline.from_pretrained(...)` gives: float32, the
            default attention processor, no memory-format change
  ours      what avatargen.serve.pipelines does on CUDA: float16, SDPA attention (explicit),
            channels_last UNet + ControlNet; with --compile also torch.compile on the UNet
  identity  ours + the identity adapter (issue 12): an IP-Adapter Plus Face at its real size
            (ViT-H/14 image encoder, 16-query resampler; random weights) loaded with diffusers'
            load_ip_adapter as pipelines.py does, one face reference at scale 0.6 (--tiny: the
            tiny adapter of serve --tiny)
The median of --runs timed images follows one warm-up image (compile happens there).
Prints one line per configuration, the ratio defaults / ours and the ratio identity / ours. With
--batch N, 'ours' is timed again making N images per pipeline call (N prompts, poses and seeds, as
`serve --max-batch N` makes of N queued requests of the same size and steps), and the N images are
compared with the same seeds made one per call (max pixel difference, 0-255): serve batches by
default (--max-batch 4, chosen on CPU figures), worth keeping on a GPU if images/s rises and the
difference stays at rounding.

Usage: python bench/serve_gpu.py [--runs 3] [--steps 20] [--size 512] [--compile] [--batch 4]
       python bench/serve_gpu.py --tiny     # CPU smoke check: tiny model, 64x64, 2 steps
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def build_full_sd15(staging: Path, dtype):
    """SD 1.5 + ControlNet at real sizes with random weights (the tokenizer is the tiny one)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        PNDMScheduler,
        StableDiffusionControlNetPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from avatargen.serve.tiny import BOS_ID, EOS_ID, TOKENIZER_VOCAB, write_tiny_tokenizer

    torch.manual_seed(0)
    blocks = {
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "in_channels": 4,
        "down_block_types": (
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    }
    unet = UNet2DConditionModel(
        sample_size=64,
        out_channels=4,
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        **blocks,
    )
    controlnet = ControlNetModel(conditioning_embedding_out_channels=(16, 32, 96, 256), **blocks)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=TOKENIZER_VOCAB,
            bos_token_id=BOS_ID,
            eos_token_id=EOS_ID,
            pad_token_id=EOS_ID,
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    )
    folder = write_tiny_tokenizer(staging / "tok")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True
    )
    pipe = StableDiffusionControlNetPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        controlnet=controlnet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(dtype=dtype)


def build_tiny_sd15(staging: Path, dtype):
    from diffusers import StableDiffusionControlNetPipeline

    from avatargen.serve.tiny import build_tiny

    folder = build_tiny("sd15", staging / "tiny")
    return StableDiffusionControlNetPipeline.from_pretrained(str(folder), torch_dtype=dtype)


# The real plus-face adapter's sizes: OpenCLIP ViT-H/14 (632M parameters), and a resampler of 16
# queries, 12 heads of 64, into SD 1.5's 768-wide cross-attention.
VIT_H = {
    "hidden_size": 1280,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "intermediate_size": 5120,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
PLUS_FACE_RESAMPLER = {"hidden_dims": 768, "dim_head": 64, "heads": 12, "num_queries": 16}


def add_identity_adapter(pipe, staging: Path, tiny: bool) -> None:
    """Write a random IP-Adapter Plus for this UNet in h94/IP-Adapter's layout and load it with
    `load_ip_adapter`, the call avatargen.serve.pipelines makes."""
    from avatargen.serve.tiny import TINY_ADAPTER, write_tiny_ip_adapter

    sizes = {} if tiny else {"encoder": VIT_H, "resampler": PLUS_FACE_RESAMPLER}
    folder = write_tiny_ip_adapter(pipe.unet, staging / "ip_adapter", "sd15", **sizes)
    subfolder, weight_name, encoder_folder = TINY_ADAPTER["sd15"]
    pipe.load_ip_adapter(
        str(folder), subfolder=subfolder, weight_name=weight_name, image_encoder_folder=encoder_folder
    )
    pipe.set_ip_adapter_scale(0.6)


def face_image():
    from PIL import Image

    try:
        from skimage import data
    except ImportError:  # scikit-image is a dev dependency; the content does not change the speed
        return Image.new("RGB", (220, 220), (200, 160, 130))
    return Image.fromarray(data.astronaut()[0:220, 140:360])


def time_pipeline(pipe, size: int, steps: int, runs: int, batch: int = 1, **extra) -> tuple[float, float]:
    """(warm-up seconds, median seconds per image), `batch` images per pipeline call."""
    one = image_timer(pipe, size, steps, batch, **extra)
    warm = one()
    return warm, statistics.median(one() for _ in range(runs))


def image_timer(pipe, size: int, steps: int, batch: int = 1, **extra):
    """A function that makes `batch` images in one call and returns the seconds per image."""
    import torch
    from PIL import Image

    pose = Image.new("RGB", (size, size), "black")
    device = pipe.device

    def one() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            pipe(
                ["a portrait"] * batch,
                image=[pose] * batch,
                width=size,
                height=size,
                num_inference_steps=steps,
                guidance_scale=7.5,
                generator=[torch.Generator("cpu").manual_seed(seed) for seed in range(batch)],
                **extra,
            )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / batch

    return one


def batch_vs_solo(pipe, size: int, steps: int, batch: int) -> int:
    """The largest pixel difference (0-255) between `batch` images made in one call and the same
    seeds made one per call: float rounding only, if each image follows its own generator."""
    import numpy as np
    import torch
    from PIL import Image

    poses = [Image.new("RGB", (size, size), (40 * i, 0, 0)) for i in range(batch)]
    common = {"width": size, "height": size, "num_inference_steps": steps, "guidance_scale": 7.5}

    def images(prompts, seeds, pose_list):
        with torch.inference_mode():
            out = pipe(
                prompts,
                image=pose_list,
                generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
                **common,
            )
        return [np.asarray(image, dtype=int) for image in out.images]

    prompts = [f"a portrait {i}" for i in range(batch)]
    together = images(prompts, range(batch), poses)
    alone = [images([prompts[i]], [i], [poses[i]])[0] for i in range(batch)]
    return max(int(np.abs(a - b).max()) for a, b in zip(alone, together, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="default 20 (2 with --tiny)")
    parser.add_argument("--size", type=int, default=None, help="default 512 (64 with --tiny)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the UNet in 'ours'")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke check on the tiny model")
    parser.add_argument("--batch", type=int, default=1, help="also time N images per pipeline call")
    args = parser.parse_args()

    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    steps = args.steps or (2 if args.tiny else 20)
    size = args.size or (64 if args.tiny else 512)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        parser.error("no CUDA device: this figure needs a GPU (use --tiny for a CPU smoke check)")
    build = build_tiny_sd15 if args.tiny else build_full_sd15
    ours_dtype = torch.float16 if device == "cuda" else torch.float32  # as pipelines.py decides
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {size}x{size}, {steps} steps, median of {args.runs}")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # diffusers' defaults
        pipe = build(Path(tmp) / "a", torch.float32).to(device)
        pipe.set_progress_bar_config(disable=True)
        processor = type(next(iter(pipe.unet.attn_processors.values()))).__name__
        warm, per_image = time_pipeline(pipe, size, steps, args.runs)
        results["defaults"] = per_image
        print(f"defaults: float32, {processor}: {per_image:.3f} s/image (warm-up {warm:.2f} s)")
        del pipe
        if device == "cuda":
            torch.cuda.empty_cache()

        # ours
        def build_ours(staging: Path):
            pipe = build(staging, ours_dtype).to(device)
            pipe.set_progress_bar_config(disable=True)
            pipe.unet.set_attn_processor(AttnProcessor2_0())
            pipe.controlnet.set_attn_processor(AttnProcessor2_0())
            if device == "cuda":
                pipe.unet.to(memory_format=torch.channels_last)
                pipe.controlnet.to(memory_format=torch.channels_last)
            if args.compile:
                pipe.unet = torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)
            return pipe

        pipe = build_ours(Path(tmp) / "b")
        warm, per_image = time_pipeline(pipe, size, steps, args.runs)
        results["ours"] = per_image
        label = f"{str(ours_dtype).removeprefix('torch.')}, SDPA"
        label += (", channels_last" if device == "cuda" else "") + (", compile" if args.compile else "")
        print(f"ours: {label}: {per_image:.3f} s/image, {1 / per_image:.2f} images/s (warm-up {warm:.2f} s)")
        if args.batch > 1:
            warm, batched = time_pipeline(pipe, size, steps, args.runs, args.batch)
            print(
                f"ours, {args.batch} images per call: {batched:.3f} s/image, {1 / batched:.2f} images/s: "
                f"{per_image / batched:.2f}x one per call (warm-up {warm:.2f} s)"
            )
            print(
                f"ours, {args.batch} images per call against one per call, same seeds: max pixel "
                f"difference {batch_vs_solo(pipe, size, steps, args.batch)} (0-255)"
            )

        # ours + the identity adapter on a second copy, one face reference (one adapter: a list
        # inside the list), timed turn about with `ours` so that load on the machine hits both alike.
        identity = build_ours(Path(tmp) / "c")
        add_identity_adapter(identity, Path(tmp) / "d", tiny=args.tiny)
        plain_one = image_timer(pipe, size, steps)
        identity_one = image_timer(identity, size, steps, ip_adapter_image=[[face_image()]])
        warm = identity_one()
        pairs = [(plain_one(), identity_one()) for _ in range(args.runs)]
        per_image = statistics.median(b for _, b in pairs)
        results["identity/ours"] = statistics.median(b / a for a, b in pairs)
        encoder = type(identity.image_encoder).__name__
        print(
            f"identity: ours + IP-Adapter Plus ({encoder}): {per_image:.3f} s/image "
            f"(warm-up {warm:.2f} s; ours in the same turns {statistics.median(a for a, _ in pairs):.3f} s)"
        )

    print(f"ratio defaults/ours: {results['defaults'] / results['ours']:.2f}x")
    print(f"ratio identity/ours: {results['identity/ours']:.2f}x (same size and steps, median of turn pairs)")


if __name__ == "__main__":
    main()
