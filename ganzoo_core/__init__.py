"""ganzoo: a plugin-based, modular GAN zoo for PyTorch.

Everything a user or a plugin author touches is importable from here::

    import ganzoo_core as gz
    gz.list_generators("dcgan.*")
    G = gz.create_generator("dcgan.64", ngf=32)
"""

from __future__ import annotations

__version__ = "0.1.0"

from ganzoo_core._api import (
    create,
    create_block,
    create_dataset,
    create_discriminator,
    create_encoder,
    create_generator,
    create_loss,
    create_objective,
    get_block,
    get_block_cfg,
    get_dataset,
    get_dataset_cfg,
    get_discriminator,
    get_discriminator_cfg,
    get_encoder,
    get_encoder_cfg,
    get_entry,
    get_generator,
    get_generator_cfg,
    get_loss,
    get_loss_cfg,
    get_objective,
    get_objective_cfg,
    is_block,
    is_dataset,
    is_discriminator,
    is_encoder,
    is_generator,
    is_loss,
    is_name,
    is_objective,
    list_blocks,
    list_datasets,
    list_discriminators,
    list_encoders,
    list_generators,
    list_losses,
    list_names,
    list_objectives,
)
from ganzoo_core._plugins import (
    API_VERSION,
    ENTRY_POINT_GROUP,
    PluginFailure,
    PluginHost,
    PluginInfo,
    list_plugin_failures,
    list_plugins,
)
from ganzoo_core._registry import (
    KINDS,
    Entry,
    register,
    register_block,
    register_dataset,
    register_discriminator,
    register_encoder,
    register_generator,
    register_loss,
    register_objective,
)
from ganzoo_core.checkpoints import CheckpointInfo, load, load_weights, read_info, save
from ganzoo_core.errors import (
    CheckpointError,
    ConfigError,
    DatasetUnavailableError,
    DuplicateNameError,
    GanzooError,
    NonFiniteLossError,
    PluginError,
    ShapeError,
    UnknownNameError,
)
from ganzoo_core.hookspecs import hookimpl
from ganzoo_core.interfaces import (
    Component,
    DiscOutput,
    Discriminator,
    Encoder,
    Generator,
    Loss,
    Objective,
    Phase,
    make_generator,
)
from ganzoo_core.layers import create_act, create_norm, get_act, get_norm, init_normal_

__all__ = [
    "API_VERSION", "ENTRY_POINT_GROUP", "KINDS", "CheckpointError", "CheckpointInfo", "Component", "ConfigError",
    "DatasetUnavailableError", "DiscOutput", "Discriminator", "DuplicateNameError", "Encoder", "Entry",
    "GanzooError", "Generator", "Loss", "NonFiniteLossError", "Objective", "Phase", "PluginError", "PluginFailure",
    "PluginHost", "PluginInfo", "ShapeError", "UnknownNameError", "__version__", "create", "create_act",
    "create_block", "create_dataset", "create_discriminator", "create_encoder", "create_generator", "create_loss",
    "create_norm", "create_objective", "get_act", "get_block", "get_block_cfg", "get_dataset", "get_dataset_cfg",
    "get_discriminator", "get_discriminator_cfg", "get_encoder", "get_encoder_cfg", "get_entry", "get_generator",
    "get_generator_cfg", "get_loss", "get_loss_cfg", "get_norm", "get_objective", "get_objective_cfg", "hookimpl",
    "init_normal_", "is_block", "is_dataset", "is_discriminator", "is_encoder", "is_generator", "is_loss", "is_name",
    "is_objective", "list_blocks", "list_datasets", "list_discriminators", "list_encoders", "list_generators",
    "list_losses", "list_names", "list_objectives", "list_plugin_failures", "list_plugins", "load", "load_weights",
    "make_generator", "read_info", "register", "register_block", "register_dataset", "register_discriminator",
    "register_encoder", "register_generator", "register_loss", "register_objective", "save",
]
