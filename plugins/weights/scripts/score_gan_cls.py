"""Score the shipped GAN-INT-CLS emoji weights on held-out emoji names, against the same network untrained.

For each of the 341 emoji of the emoji.noto test split (names never seen in training), one sample is drawn from its
name (the first caption, embedded by the objective's recorded encoder, MiniLM) in eval mode. The core's domain.emoji
classifier (CLDR groups, 8 classes) reads each sample: group accuracy is how often it names the true emoji's group,
and the domain FID compares the samples' features with the real test emoji's.

    HF_HUB_OFFLINE=1 .venv/bin/python plugins/weights/scripts/score_gan_cls.py [--source gan_cls.int_cls_32.emoji]
"""

from __future__ import annotations

import argparse
import json

import torch

import ganzoo_core as gz
from ganzoo_core.metrics.evaluate import build_extractor, extract
from ganzoo_core.metrics.scores import fid
from ganzoo_core.text import encode_texts, text_encoder_for


def score(objective: torch.nn.Module, emb: torch.Tensor, real: torch.Tensor, labels: torch.Tensor,
          extractor: torch.nn.Module) -> dict[str, float]:
    objective.eval()
    fake = objective.sample(len(emb), batch={"text_emb": emb}, seed=0)
    made = extract(extractor, iter(fake.split(64)), "cpu")
    truth = extract(extractor, iter(real.split(64)), "cpu")
    accuracy = (made.probs.argmax(1) == labels).float().mean().item()
    return {"group_accuracy": round(accuracy, 3), "domain_fid": round(fid(truth.features, made.features), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="gan_cls.int_cls_32.emoji")
    args = parser.parse_args()
    trained = gz.load(args.source)
    info = gz.get_pretrained(args.source) if gz.is_pretrained(args.source) else None
    torch.manual_seed(0)
    untrained = gz.create_objective(info.name if info else "gan_cls.int_cls_32", **_config(trained))
    test = gz.create_dataset("emoji.noto", split="test", image_size=32)
    names = [test.caption(i)[0] for i in range(len(test))]
    real = torch.stack([test[i]["image"] for i in range(len(test))])
    labels = torch.stack([test[i]["label"] for i in range(len(test))]).long()
    emb = encode_texts(text_encoder_for(trained), names)
    extractor = build_extractor("domain.emoji")
    report = {"n": len(test), "trained": score(trained, emb, real, labels, extractor),
              "untrained": score(untrained, emb, real, labels, extractor),
              "chance_group_accuracy": round(labels.bincount().max().item() / len(labels), 3)}
    print(json.dumps(report, indent=2))


def _config(objective: torch.nn.Module) -> dict:
    from ganzoo_core.config import cfg_to_dict

    return cfg_to_dict(objective.cfg)


if __name__ == "__main__":
    main()
