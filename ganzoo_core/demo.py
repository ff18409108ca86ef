"""``ganzoo demo CKPT...``: a local web page (Gradio, the optional ``ganzoo-core[demo]``) to try checkpoints by hand.

One tab per checkpoint, chosen by what the objective can do:

- an image translator (``ImageTranslator``: pix2pix, CycleGAN, StarGAN) gets an image upload, its options (a choice
  as radio buttons, target labels as check boxes) and the translation;
- a text-to-image objective (a config naming its ``encoder``) gets a caption box, a count and a seed;
- an unconditional generator gets a seed and an interpolation slider that walks from the seed's latent to the next
  seed's (spherical interpolation), drawing a grid.

Each tab draws its first result when the page opens. The server listens on 127.0.0.1 unless ``--host`` says
otherwise, and every control is also an API endpoint (``/translate_0``, ``/text_0``, ``/generate_0``, numbered by
tab) for ``gradio_client``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ganzoo_core.errors import GanzooError

DEMO_HINT = "pip install 'ganzoo-core[demo]'"


def _gradio() -> Any:
    try:
        import gradio
    except ImportError as err:
        raise GanzooError(f"ganzoo demo needs Gradio: {DEMO_HINT}") from err
    return gradio


def to_pil(images: Tensor, nrow: int | None = None) -> Image.Image:
    """Images in [-1, 1] (N, C, H, W) as one PIL grid (a single image as itself)."""
    from ganzoo_core.visual import make_grid, to_pil

    if len(images) == 1:
        return to_pil(images[0])
    array = make_grid(images.float().cpu(), nrow)
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between latents ``a`` and ``b`` (row by row), the usual walk in a Gaussian latent."""
    af, bf = a.flatten(1), b.flatten(1)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))[:, None]
    so = torch.sin(omega)
    lerp = (1 - t) * af + t * bf
    out = torch.where(so > 1e-6, (torch.sin((1 - t) * omega) * af + torch.sin(t * omega) * bf) / so.clamp_min(1e-12),
                      lerp)
    return out.view_as(a)


# -- what a checkpoint can do --------------------------------------------------------------------------------------


def demo_kind(objective: Any) -> str:
    """``"translate"``, ``"text"``, ``"generate"``, or ``""`` when the page has nothing to offer for it."""
    from ganzoo_core.translate import is_translator

    if is_translator(objective):
        return "translate"
    if getattr(getattr(objective, "cfg", None), "encoder", None) and hasattr(objective, "sample"):
        return "text"
    networks = getattr(objective, "networks", None)
    g = networks["G"] if networks is not None and "G" in networks else None
    if g is not None and hasattr(g, "example_inputs") and len(g.example_inputs(1)) == 1:
        return "generate"
    return ""


def translate_fn(objective: Any) -> Callable[..., Image.Image]:
    from ganzoo_core.translate import fit, resolve_options

    spec = objective.translation_options

    def run(image: Image.Image | None, *controls: Any) -> Image.Image:
        if image is None:
            raise _gradio().Error("upload an image first")
        given: dict[str, Any] = {}
        for (name, opt), value in zip(spec.items(), controls):
            given[name] = {k: 1.0 for k in (value or [])} if opt.kind == "attributes" else value
        x = fit(image.convert("RGB"), objective.translation_size)[None]
        with torch.no_grad():
            out = objective.translate_images(x.to(_device(objective)), **resolve_options(objective, given))
        return to_pil(out)

    return run


def text_fn(objective: Any, encoder: Any) -> Callable[..., Image.Image]:
    from ganzoo_core.text import encode_texts

    def run(caption: str, n: float, seed: float) -> Image.Image:
        caption = (caption or "").strip()
        if not caption:
            raise _gradio().Error("type a caption first")
        emb = encode_texts(encoder, [caption]).to(_device(objective))
        with torch.no_grad():
            images = objective.sample(int(n), batch={"text_emb": emb.repeat(int(n), 1)}, seed=int(seed))
        return to_pil(images, nrow=math.ceil(math.sqrt(int(n))))

    return run


def generate_fn(objective: Any) -> Callable[..., Image.Image]:
    g = objective.networks["G"]
    (example,) = g.example_inputs(1)

    def latent(seed: int, n: int) -> Tensor:
        return torch.randn((n, *example.shape[1:]), generator=torch.Generator().manual_seed(seed))

    def run(seed: float, t: float, n: float) -> Image.Image:
        z = slerp(latent(int(seed), int(n)), latent(int(seed) + 1, int(n)), float(t))
        with torch.no_grad():
            images = g(z.to(_device(objective)))
        return to_pil(images, nrow=math.ceil(math.sqrt(int(n))))

    return run


def _hidden(listener: Any) -> dict[str, Any]:
    """Keyword that keeps an event out of the API page: ``api_visibility`` (Gradio 6) or ``show_api`` (4-5)."""
    import inspect

    params = inspect.signature(listener).parameters
    return {"api_visibility": "undocumented"} if "api_visibility" in params else {"show_api": False}


def _device(objective: Any) -> torch.device:
    return next(objective.parameters()).device


# -- the page ------------------------------------------------------------------------------------------------------


def build_demo(checkpoints: Sequence[tuple[str, Any]], *, encoder: Any = None, title: str = "ganzoo demo") -> Any:
    """A ``gradio.Blocks`` page with one tab per ``(label, objective)``; ``encoder``: the text encoder for
    text-to-image tabs (default: each objective's ``cfg.encoder``)."""
    gr = _gradio()
    from ganzoo_core.interfaces import TranslationOption

    with gr.Blocks(title=title) as page:
        gr.Markdown(f"# {title}")
        for i, (label, objective) in enumerate(checkpoints):
            objective.eval()
            kind = demo_kind(objective)
            with gr.Tab(label):
                if kind == "translate":
                    spec: dict[str, TranslationOption] = dict(objective.translation_options)
                    with gr.Row():
                        image = gr.Image(type="pil", label="input image", image_mode="RGB")
                        out = gr.Image(type="pil", label="translation", format="png")
                    controls = []
                    for name, opt in spec.items():
                        if opt.kind == "attributes":
                            controls.append(gr.CheckboxGroup(choices=list(opt.choices or ()), label=f"{name}: "
                                                             "targets on (the others off)"))
                        else:
                            controls.append(gr.Radio(choices=list(opt.choices or ()), value=opt.default, label=name))
                    button = gr.Button("Translate")
                    button.click(translate_fn(objective), [image, *controls], out, api_name=f"translate_{i}")
                elif kind == "text":
                    from ganzoo_core.text import text_encoder_for

                    enc = encoder if encoder is not None else text_encoder_for(objective, where=label)
                    caption = gr.Textbox(label="caption", value="")
                    with gr.Row():
                        n = gr.Slider(1, 16, value=4, step=1, label="images")
                        seed = gr.Number(value=0, precision=0, label="seed")
                    out = gr.Image(type="pil", label="samples", format="png")
                    gr.Button("Generate").click(text_fn(objective, enc), [caption, n, seed], out,
                                                api_name=f"text_{i}")
                elif kind == "generate":
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="seed")
                        t = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="interpolate to the next seed")
                        n = gr.Slider(1, 64, value=16, step=1, label="images")
                    out = gr.Image(type="pil", label="samples", format="png")
                    fn = generate_fn(objective)
                    for control in (seed, t, n):
                        control.change(fn, [seed, t, n], out, **_hidden(control.change))
                    gr.Button("Generate").click(fn, [seed, t, n], out, api_name=f"generate_{i}")
                    page.load(fn, [seed, t, n], out, **_hidden(page.load))
                else:
                    gr.Markdown(f"{type(objective).__name__} has no image to show here (not a generator, a "
                                "text-to-image model or an image translator).")
    return page


def add_demo_command(subparsers: Any) -> None:
    """``ganzoo demo CKPT... [--host 127.0.0.1] [--port PORT] [--encoder NAME --encoder-weights PATH]``."""
    from ganzoo_core.argtypes import device as device_arg

    p = subparsers.add_parser(
        "demo", help="a local web page to try checkpoints (Gradio)",
        description="Serve a page with one tab per checkpoint: type captions (text-to-image), upload an image "
                    f"(image translators), or move a seed / interpolation slider (generators). Needs {DEMO_HINT}.")
    p.add_argument("checkpoints", type=Path, nargs="+", metavar="CKPT", help="ganzoo checkpoints")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--encoder", help="text encoder for text-to-image tabs (default: the objective's cfg.encoder)")
    p.add_argument("--encoder-weights", type=Path, metavar="PATH", help="the encoder's trained or released weights")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ganzoo_core._api import create
    from ganzoo_core.hub import load
    from ganzoo_core.text import text_encoder_for

    _gradio()  # fail early, with the install hint
    loaded = [(f"{load_name(path)} ({path.name})", load(path, device=args.device)) for path in args.checkpoints]
    encoder = None
    if args.encoder or args.encoder_weights:  # else each text-to-image tab builds the encoder its checkpoint records
        texts = [o for _, o in loaded if getattr(getattr(o, "cfg", None), "encoder", None)]
        if not texts and not args.encoder:
            raise GanzooError("--encoder-weights needs --encoder NAME (no checkpoint names its encoder)")
        encoder = (text_encoder_for(texts[0], args.encoder, weights=args.encoder_weights) if texts else
                   create("encoder", args.encoder, **({"weights": args.encoder_weights} if args.encoder_weights else {})))
    page = build_demo(loaded, encoder=encoder)
    page.launch(server_name=args.host, server_port=args.port, inbrowser=False)
    return 0


def load_name(path: Path) -> str:
    """The registry name a source (checkpoint, model folder, hf-hub:ORG/NAME, pretrained name) rebuilds."""
    from ganzoo_core.checkpoints import read_info
    from ganzoo_core.hub import resolve_source

    return read_info(resolve_source(path)).name
