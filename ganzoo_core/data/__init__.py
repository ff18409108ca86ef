"""ganzoo's data layer: one versioned HDF5 schema (``schema``), converters from the formats users already have
(``convert``), and the lazy reader that training uses (``schema.H5Dataset``, registered as dataset ``h5.file``)."""

from ganzoo_core.data import schema  # noqa: F401, I001  (registers h5.file)
from ganzoo_core.data import austen, emoji, shapes  # noqa: F401  (register the built-in austen, emoji, shapes sets)

GANZOO_API_VERSION = "1.0"
