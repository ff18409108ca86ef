"""ganzoo-skipthought-encoder: skip-thought sentence encoders (Kiros et al., NIPS 2015) and their training objective.

Importing this package registers the encoders ``skipthought.uni`` / ``.bi`` / ``.combine`` (official sizes),
``skipthought.uni_small`` / ``.bi_small`` / ``.combine_small`` (CPU sizes), ``skipthought.austen`` (trained here on
Jane Austen's novels, shipped), the objectives ``skipthought.uni_small`` / ``.bi_small`` and the dataset
``skipthought.triples``.
"""

from ganzoo_skipthought_encoder.expand import (
    expand_vocabulary,
    fit_linear_map,
    read_word2vec,
    trained_words,
    word_vectors,
    write_word2vec,
)
from ganzoo_skipthought_encoder.model import (
    ConditionalGruDecoder,
    EncoderCfg,
    ObjectiveCfg,
    SentenceTriples,
    SkipThoughtEncoder,
    SkipThoughtObjective,
    TriplesCfg,
    ZeroHiddenBiasGRU,
    corpus_vocabulary,
)
from ganzoo_skipthought_encoder.tokenize import preprocess, word_tokenize

GANZOO_API_VERSION = "1.0"  # the ganzoo plugin API this plugin was written for

__all__ = [
    "ConditionalGruDecoder", "EncoderCfg", "ObjectiveCfg", "SentenceTriples", "SkipThoughtEncoder",
    "SkipThoughtObjective", "TriplesCfg", "ZeroHiddenBiasGRU", "corpus_vocabulary", "expand_vocabulary",
    "fit_linear_map", "preprocess", "read_word2vec", "trained_words", "word_tokenize", "word_vectors", "write_word2vec",
]
