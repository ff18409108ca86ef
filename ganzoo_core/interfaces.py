"""The contracts between the core and the plugins, as small structural protocols (see docs/design.md).

Nothing here is a base class: a plugin's ``nn.Module`` conforms by having these members, and
``ganzoo_core.testing`` checks it. ``isinstance(obj, Generator)`` works because the protocols are runtime-checkable
(it checks that the members exist, not their signatures).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor, nn

Batch = Mapping[str, Tensor]
"""A training batch: ``image`` (B×C×H×W in [-1, 1]), ``label`` (B), and family-specific keys (docs/design.md)."""

ShapeTree = Any
"""A shape tuple, or a tuple / DiscOutput of shape tuples mirroring a module's output structure."""


class DiscOutput(NamedTuple):
    """A discriminator output with a second head (e.g. real/fake logits and domain logits)."""

    logits: Tensor
    aux: Tensor


@runtime_checkable
class Component(Protocol):
    """Anything the registry builds as a network: a frozen config, example inputs and promised output shapes."""

    cfg: Any

    def example_inputs(self, batch_size: int = 2) -> tuple[Any, ...]:
        """Positional arguments for ``forward`` with batch size ``batch_size`` (random, never all zeros)."""
        ...

    def output_shapes(self, batch_size: int = 2) -> ShapeTree:
        """The shape(s) ``forward(*example_inputs(batch_size))`` returns, in the same structure."""
        ...


@runtime_checkable
class Generator(Component, Protocol):
    """Maps a latent, an image or a previous stage's output ``x`` (and an optional condition) to images."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Any: ...


@runtime_checkable
class Discriminator(Component, Protocol):
    """Maps images (and an optional condition) to logits, or to a ``DiscOutput`` when it has a second head."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor | DiscOutput: ...


@runtime_checkable
class Encoder(Component, Protocol):
    """Turns text (a list of strings) or an image batch into ``(B, embed_dim)`` vectors."""

    embed_dim: int

    def encode(self, batch: Sequence[str] | Tensor) -> Tensor: ...


@runtime_checkable
class Loss(Protocol):
    """The three terms an adversarial loss is made of; objectives weight and sum them."""

    def d_real(self, logits: Tensor) -> Tensor:
        """Discriminator loss on logits of samples it should call real."""
        ...

    def d_fake(self, logits: Tensor) -> Tensor:
        """Discriminator loss on logits of samples it should call fake."""
        ...

    def g_fake(self, logits: Tensor) -> Tensor:
        """Generator loss on the discriminator's logits of generated samples."""
        ...


def _tuple(values: Any) -> tuple[Any, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class Phase:
    """One optimizer step of an iteration: which networks it updates, how often, and Adam's settings."""

    name: str  # e.g. "D" or "G"; the key the objective's ``loss`` receives
    networks: tuple[str, ...] = attrs.field(converter=_tuple)  # keys of ``objective.networks`` this step updates
    lr: float = 2e-4
    betas: tuple[float, float] = attrs.field(default=(0.5, 0.999), converter=_tuple)
    weight_decay: float = 0.0
    every: int = 1  # run on steps (counted from 1) divisible by this (every=5: once per five iterations)
    # steps taken as cycles of this many (StarGAN's multi-dataset iteration: one step per dataset): the phase runs on
    # every step of cycles 1, 2, ... whose number is divisible by ``every``; 1: plain steps
    cycle: int = attrs.field(default=1, validator=attrs.validators.ge(1))

    def due(self, step: int) -> bool:
        """Whether this phase runs at engine step ``step`` (counted from 1)."""
        return ((step - 1) // self.cycle + 1) % self.every == 0


@runtime_checkable
class Objective(Protocol):
    """A trainable GAN: its networks by role, its phases, and the loss of each phase.

    The engine runs, each iteration, every phase that is due: ``zero_grad``, ``loss(phase, batch, ctx)``,
    ``backward``, ``step``. ``ctx`` lives for one iteration so a later phase can reuse earlier work.
    """

    cfg: Any
    networks: nn.ModuleDict
    phases: tuple[Phase, ...]

    def loss(self, phase: str, batch: Batch, ctx: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar to minimise for ``phase`` and named terms to log."""
        ...

    def sample(self, n: int, batch: Batch | None = None, seed: int = 0) -> Tensor:
        """``n`` images in [-1, 1] from fixed noise (``seed``) and, for conditional families, ``batch``'s conditions."""
        ...

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """A random batch with every key ``loss`` reads, for tests and benchmarks."""
        ...


def seeded_rng(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` (a random number generator, not a network) on ``device``, for reproducible noise."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Deprecated name of ``seeded_rng`` (easily taken for ``create_generator``, which builds a network)."""
    warnings.warn("ganzoo_core.make_generator is deprecated: use ganzoo_core.seeded_rng (the same seeded "
                  "torch.Generator)", DeprecationWarning, stacklevel=2)
    return seeded_rng(seed, device)


@runtime_checkable
class TextToImage(Protocol):
    """An objective that draws images from captions' embeddings: ``sample(n, {"text_emb": (n, text_dim)})``.

    Its config records the text encoder those embeddings come from, as the fields ``encoder`` (a registry name) and
    ``encoder_kwargs`` (that encoder's config overrides), so a checkpoint embeds new captions with nothing else
    (``ganzoo sample CKPT --text ...``, ``ganzoo_core.text.text_encoder_for``); ``text_encoder`` reads them."""

    text_dim: int  # the width of the embeddings sample() and loss() read from batch["text_emb"]

    @property
    def text_encoder(self) -> tuple[str, Mapping[str, Any]]:
        """The text encoder's registry name and its config overrides, as the objective's config records them."""
        ...


@attrs.frozen(kw_only=True)
class TranslationOption:
    """One option of an ``ImageTranslator``'s ``translate_images``: its choices (``None``: free), default and help, for
    ``ganzoo translate`` and the demo page. ``kind="attributes"``: a mapping of label name (one of ``choices``) to a
    number (``--set-attr NAME=VALUE``)."""

    choices: tuple[str, ...] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple))
    default: Any = None
    help: str = ""
    kind: str = attrs.field(default="choice", validator=attrs.validators.in_(("choice", "attributes")))


@runtime_checkable
class ImageTranslator(Protocol):
    """An objective that runs on the user's own images (``ganzoo translate``, ``ganzoo demo``): pix2pix, CycleGAN,
    StarGAN. ``translate_images`` takes RGB images (N, 3, H, W) in [-1, 1] of ``translation_size`` (H, W) and returns
    images in [-1, 1] (RGB, or grey); its keyword options are ``translation_options``."""

    translation_options: Mapping[str, TranslationOption]

    @property
    def translation_size(self) -> tuple[int, int]: ...

    def translate_images(self, images: Tensor, **options: Any) -> Tensor: ...
