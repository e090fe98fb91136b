"""Tiny random-weight pipelines of the real architectures, for trying and testing without a GPU.

`build_tiny(architecture, folder)` creates an SD 1.5 or SDXL ControlNet pipeline whose parts
are the real classes at toy sizes (32/64 channels, a VAE that downsamples by 8 as the real one, a 5-layer CLIP with a 514-token byte-level
vocabulary written here, since no tokenizer can be downloaded), and saves it with
`save_pretrained`. pipelines.py loads it back with `from_pretrained`, the very same path as
real weights. Its images are noise: the weights are random.

Beside it, in ip_adapter/, a tiny random IP-Adapter Plus (Face) in h94/IP-Adapter's own layout
(`models/ip-adapter-plus-face_sd15.safetensors` or `sdxl_models/...sdxl_vit-h.safetensors`, and a
tiny CLIPVisionModelWithProjection in `models/image_encoder`), built as diffusers' tests build
theirs (`create_ip_adapter_plus_state_dict`); pipelines.py loads it with `pipe.load_ip_adapter`
from that folder, as it loads the real one from the Hub.

The saved folder is made portable (`make_portable`): it loads under the library versions installed
here and under those the Hugging Face inference toolkit pins (transformers 4.51, diffusers 0.33),
so a `--tiny` endpoint bundle runs in that toolkit too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

TINY_VERSION = 5  # bump when the configs change, so cached folders are rebuilt
TINY_ARCHITECTURES = ("sd15", "sdxl")
_SEED = 0


def tiny_models_dir() -> Path:
    from avatargen.settings import data_dir

    return data_dir() / "tiny-models"


def tiny_folder(architecture: str, root: Path | None = None) -> Path:
    return (root or tiny_models_dir()) / f"{architecture}-controlnet-v{TINY_VERSION}"


def ensure_tiny(architecture: str, root: Path | None = None) -> Path:
    """The cached tiny folder for `architecture`, built on first use (about a second)."""
    folder = tiny_folder(architecture, root)
    if (folder / "model_index.json").is_file():
        return folder
    return build_tiny(architecture, folder)


def build_tiny(architecture: str, folder: Path) -> Path:
    if architecture not in TINY_ARCHITECTURES:
        raise ValueError(
            f"no tiny model for architecture '{architecture}' (have {', '.join(TINY_ARCHITECTURES)})"
        )
    import torch

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: two processes building at once never see half a folder.
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        torch.manual_seed(_SEED)
        pipe = _build_sdxl(staging) if architecture == "sdxl" else _build_sd15(staging)
        pipe.save_pretrained(staging / "pipe", safe_serialization=True)
        make_portable(staging / "pipe")
        write_tiny_ip_adapter(pipe.unet, staging / "pipe" / IP_ADAPTER_FOLDER, architecture)
        (staging / "pipe" / "TINY.txt").write_text(
            "Random-weight tiny pipeline built by avatargen for tests: its images are noise.\n"
        )
        try:
            os.replace(staging / "pipe", folder)
        except OSError:
            if not (folder / "model_index.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


# ---------------------------------------------------------------- the identity adapter
IP_ADAPTER_FOLDER = "ip_adapter"  # = pipelines.IP_ADAPTER_FOLDER (this module stays light to import)
# The same names as the shipped catalog's [models.identity_adapter] (h94/IP-Adapter's layout).
TINY_ADAPTER = {
    "sd15": ("models", "ip-adapter-plus-face_sd15.safetensors", "models/image_encoder"),
    "sdxl": ("sdxl_models", "ip-adapter-plus-face_sdxl_vit-h.safetensors", "models/image_encoder"),
}
_ENCODER_WIDTH = 32  # the tiny image encoder's hidden size: the resampler's input width


def tiny_adapter_fields(architecture: str) -> dict[str, str]:
    """The ModelSpec fields that point at the tiny adapter inside a tiny model folder."""
    subfolder, weight_name, encoder = TINY_ADAPTER[architecture]
    return {
        "ip_adapter_subfolder": subfolder,
        "ip_adapter_weight_name": weight_name,
        "ip_adapter_image_encoder_folder": encoder,
    }


def write_tiny_ip_adapter(
    unet, folder: Path, architecture: str, encoder: dict | None = None, resampler: dict | None = None
) -> Path:
    """A random IP-Adapter Plus for `unet`, saved as the original checkpoints are: one safetensors
    file of `image_proj.*` (the Perceiver resampler, original key names) and `ip_adapter.*` (to_k_ip /
    to_v_ip of every cross-attention, numbered 1, 3, 5, ... as in the original repo), plus the
    image encoder folder. `encoder` (CLIPVisionConfig fields) and `resampler` override the toy sizes:
    bench/serve_gpu.py builds the real ones (a ViT-H encoder, a 16-query resampler)."""
    import torch
    from diffusers.models.attention_processor import IPAdapterAttnProcessor
    from diffusers.models.embeddings import IPAdapterPlusImageProjection
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    subfolder, weight_name, encoder_folder = TINY_ADAPTER[architecture]
    cross = unet.config.cross_attention_dim
    weights: dict[str, torch.Tensor] = {}
    key_id = 1
    for name in unet.attn_processors:  # diffusers' loader walks them in this order, numbering alike
        if name.endswith("attn1.processor"):
            continue  # self-attention: no image tokens
        hidden = _processor_width(unet, name)
        sd = IPAdapterAttnProcessor(hidden_size=hidden, cross_attention_dim=cross, scale=1.0).state_dict()
        weights[f"ip_adapter.{key_id}.to_k_ip.weight"] = sd["to_k_ip.0.weight"]
        weights[f"ip_adapter.{key_id}.to_v_ip.weight"] = sd["to_v_ip.0.weight"]
        key_id += 2
    encoder_config = {
        "hidden_size": _ENCODER_WIDTH,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "image_size": 32,
        "patch_size": 8,
        **(encoder or {}),
    }
    # heads x dim_head must be a multiple of 64 (the loader reads heads = to_q rows // 64); depth 4.
    sizes = {"hidden_dims": 32, "dim_head": 64, "heads": 1, "num_queries": 4, **(resampler or {})}
    projection = IPAdapterPlusImageProjection(
        embed_dims=encoder_config["hidden_size"], output_dims=cross, depth=4, **sizes
    )
    for key, value in _original_resampler_keys(projection.state_dict()).items():
        weights[f"image_proj.{key}"] = value
    target = folder / subfolder
    target.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in weights.items()}, target / weight_name, metadata={"format": "pt"}
    )
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**encoder_config))
    image_encoder.save_pretrained(folder / encoder_folder, safe_serialization=True)
    (folder / "TINY.txt").write_text("Random-weight IP-Adapter Plus built by avatargen for tests.\n")
    return folder


def _processor_width(unet, name: str) -> int:
    channels = unet.config.block_out_channels
    if name.startswith("mid_block"):
        return channels[-1]
    block = int(name.split(".")[1])
    return list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block]


def _original_resampler_keys(state: dict) -> dict:
    """diffusers' resampler names -> the original IP-Adapter checkpoint's (what the loader converts
    back): layers.N.{ln0,ln1,attn.*} -> layers.N.0.{norm1,norm2,to_*}, ff -> layers.N.1.*, to_k +
    to_v -> one to_kv."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] != "layers":
            out[key] = value
            continue
        head, rest = ".".join(parts[:2]), ".".join(parts[2:])
        renames = {
            "ln0.weight": "0.norm1.weight",
            "ln0.bias": "0.norm1.bias",
            "ln1.weight": "0.norm2.weight",
            "ln1.bias": "0.norm2.bias",
            "attn.to_q.weight": "0.to_q.weight",
            "attn.to_out.0.weight": "0.to_out.weight",
            "ff.0.weight": "1.0.weight",
            "ff.0.bias": "1.0.bias",
            "ff.1.net.0.proj.weight": "1.1.weight",
            "ff.1.net.2.weight": "1.3.weight",
        }
        if rest == "attn.to_k.weight":
            out[f"{head}.0.to_kv.weight"] = torch_cat(value, state[f"{head}.attn.to_v.weight"])
        elif rest == "attn.to_v.weight":
            continue
        elif rest in renames:
            out[f"{head}.{renames[rest]}"] = value
        else:
            raise ValueError(f"unexpected resampler weight {key}")  # diffusers changed its names
    return out


def torch_cat(first, second):
    import torch

    return torch.cat([first, second], dim=0)


# ---------------------------------------------------------------- portability
def make_portable(folder: Path) -> None:
    """Rewrite what transformers 5 saves in a form transformers 4.51 reads too (5 reads both):

    - tokenizers: 5 writes only the fast tokenizer.json, which 4.51's CLIPTokenizer (the slow class
      the pipeline's model_index.json names) cannot read; vocab.json + merges.txt are read by both,
      and give the same token ids.
    - CLIPTextModel weights: 5 saves them without the "text_model." prefix (its model lost that
      wrapper) and strips the prefix when loading; 4.51 needs the prefix and would silently leave
      every weight it cannot find at random (with a mere warning).
    """
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    for part, entry in index.items():
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == "transformers"):
            continue
        if entry[1] == "CLIPTokenizer":
            _slow_tokenizer_files(folder / part)
        elif entry[1] == "CLIPTextModel":
            _prefix_weights(folder / part / "model.safetensors", "text_model.")


def _slow_tokenizer_files(folder: Path) -> None:
    (folder / "tokenizer.json").unlink(missing_ok=True)  # one source of truth: the files both read
    write_tiny_tokenizer(folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.pop("backend", None)  # transformers 5's note that tokenizer.json is the source
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _prefix_weights(path: Path, prefix: str) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(path)
    if all(key.startswith(prefix) for key in weights):
        return
    renamed = {key if key.startswith(prefix) else prefix + key: value for key, value in weights.items()}
    save_file(renamed, path, metadata={"format": "pt"})


# ---------------------------------------------------------------- tokenizer
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_tiny_tokenizer(folder: Path) -> Path:
    """A CLIP tokenizer with no merges: every byte, with and without '</w>', plus the two specials
    (514 tokens), so any prompt tokenizes without an unknown token."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder


TOKENIZER_VOCAB = 514
BOS_ID, EOS_ID = 512, 513


def _tokenizer(staging: Path, name: str):
    from transformers import CLIPTokenizer

    folder = write_tiny_tokenizer(staging / name)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_config(**extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=EOS_ID,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=TOKENIZER_VOCAB,
        hidden_act="gelu",
        max_position_embeddings=77,
        **extra,
    )


# The ControlNet's pose encoder downsamples len-1 times: it must match the VAE's factor of 8.
_CONDITIONING = (16, 16, 32, 32)


def _vae():
    from diffusers import AutoencoderKL

    # Four blocks, like the real VAE: latents are 1/8 of the image, so a 512x512 request costs
    # a 64x64 latent (with two blocks it would be 256x256 and attention alone takes a minute).
    return AutoencoderKL(
        block_out_channels=[16, 32, 32, 32],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=16,
        layers_per_block=1,
        mid_block_add_attention=False,  # attention over every latent pixel is what makes 1024x1024 slow
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )


def _unet_and_controlnet(**architecture):
    """A two-level UNet and its ControlNet twin: the same blocks, so the ControlNet's residuals fit."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    blocks = {
        "block_out_channels": (32, 64),
        "layers_per_block": 2,
        "in_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        **architecture,
    }
    unet = UNet2DConditionModel(
        sample_size=32, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **blocks
    )
    controlnet = ControlNetModel(conditioning_embedding_out_channels=_CONDITIONING, **blocks)
    _unzero(controlnet)
    return unet, controlnet


def _unzero(controlnet) -> None:
    """A real ControlNet starts from zero convolutions (its output is nothing until trained), and
    PyTorch's default init with biases turns a sparse skeleton image into an almost constant
    feature map: left so, the pose never reaches the UNet and every pose gives the same image.
    Here the pose encoder gets He-initialised weights without biases (its features follow the
    skeleton's lines) and the zero convolutions random weights, so the tiny model's output depends
    visibly on the pose: the tiny path shows that the pose travels all the way to the model."""
    import torch

    embedding = controlnet.controlnet_cond_embedding
    with torch.no_grad():
        for conv in (embedding.conv_in, *embedding.blocks):
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            torch.nn.init.zeros_(conv.bias)
        for conv in (embedding.conv_out, *controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block):
            torch.nn.init.normal_(conv.weight, std=1.0 if conv is embedding.conv_out else 0.2)
            torch.nn.init.zeros_(conv.bias)


def _build_sd15(staging: Path):
    from diffusers import StableDiffusionControlNetPipeline
    from transformers import CLIPTextModel

    unet, controlnet = _unet_and_controlnet(cross_attention_dim=32, norm_num_groups=1)
    return StableDiffusionControlNetPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=_tokenizer(staging, "tok"),
        unet=unet,
        controlnet=controlnet,
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _build_sdxl(staging: Path):
    from diffusers import StableDiffusionXLControlNetPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    # SDXL's extras: two text encoders (concatenated 32+32 = 64 for cross-attention) and the
    # "text_time" embedding of pooled text (32) + six size/crop numbers (6 x 8).
    unet, controlnet = _unet_and_controlnet(
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
    )
    return StableDiffusionXLControlNetPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=_tokenizer(staging, "tok"),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(projection_dim=32)),
        tokenizer_2=_tokenizer(staging, "tok2"),
        unet=unet,
        controlnet=controlnet,
        scheduler=_scheduler(),
        add_watermarker=False,
    )
