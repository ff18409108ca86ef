"""registry.toml and the docs say what the code does."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import HOST, REPO

from ganzoo_core._catalogue import load_catalogue, provider_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOGUE = load_catalogue()
RELEASED = {name: t for name, t in CATALOGUE["plugins"].items() if t["status"] == "released"}


def _registered(plugin_prefix: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entry in HOST.registry.entries():
        if entry.plugin == plugin_prefix or entry.plugin.startswith(plugin_prefix + "."):
            out.setdefault(entry.kind, []).append(entry.name)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("plugin", sorted(RELEASED))
def test_released_plugin_provides_what_the_catalogue_says(plugin: str) -> None:
    table = RELEASED[plugin]
    assert _registered(plugin) == {k: sorted(v) for k, v in table["provides"].items()}
    project = tomllib.loads((REPO / "plugins" / plugin / "pyproject.toml").read_text())["project"]
    assert project["name"] == table["distribution"] == f"ganzoo-{plugin}"
    assert project["entry-points"]["ganzoo"] == {plugin: table["package"]}
    for names in table["provides"].values():
        assert all(n.split(".")[0] in table["families"] for n in names)


def test_core_provides_what_the_catalogue_says() -> None:
    assert _registered("core") == {k: sorted(v) for k, v in CATALOGUE["core"]["provides"].items()}


def test_every_first_party_plugin_is_catalogued() -> None:
    expected = {"dcgan", "gan-cls", "stackgan", "pix2pix-unet", "cyclegan", "stargan", "skipthought-encoder",
                "char-cnn-rnn"}
    assert set(CATALOGUE["plugins"]) == expected
    for name, table in CATALOGUE["plugins"].items():
        assert table["distribution"] == f"ganzoo-{name}" and table["package"] == "ganzoo_" + name.replace("-", "_")
        assert table["status"] in ("released", "planned") and table["paper"] and table["families"]
        assert (REPO / "plugins" / name / "pyproject.toml").is_file() == (table["status"] == "released")


def test_provider_lookup() -> None:
    assert provider_of("cyclegan.resnet_9blocks")[0] == "cyclegan"
    assert provider_of("nothing.here") is None


def test_design_doc_maps_all_seven_families() -> None:
    text = (REPO / "docs" / "design.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    for family in ("DCGAN", "GAN-CLS", "StackGAN", "pix2pix", "CycleGAN", "StarGAN", "Skip-thought"):
        assert any(h.startswith(family) for h in headings), family


def _python_block_after(heading: str, text: str) -> str:
    section = text[text.index(heading):]
    start = section.index("```python\n") + len("```python\n")
    return section[start: section.index("```", start)]


def test_readme_composition_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = _python_block_after("## Compose models by name", (REPO / "README.md").read_text())
    assert len(code.strip().splitlines()) == 5
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert capsys.readouterr().out.strip() == "['dcgan.28', 'dcgan.32', 'dcgan.64']"
    assert tuple(scope["images"].shape) == (16, 1, 28, 28)
    assert scope["D"].cfg.ndf == 32 and scope["gan"].networks["G"].cfg.ngf == 32
    assert type(scope["gan"].gan_loss).__name__ == "HingeLoss"


def test_readme_names_the_two_commands_and_ci_calls_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    assert "scripts/demo.sh" in readme and "scripts/test.sh" in readme
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()


# -- the READMEs' commands and size -------------------------------------------------------------------------------

USER_DOCS = [REPO / "README.md", *sorted(REPO.glob("plugins/*/README.md")), *sorted(REPO.glob("experiments/*/README.md"))]
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]+$|\.\.\.|^\[|\|")  # synopsis words: NAME, CHECKPOINT, [--json], a|b


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S)


def _ganzoo_commands(text: str) -> list[list[str]]:
    """The ``ganzoo ...`` command lines of a document's code blocks (``$ `` prompts and ``\\`` continuations
    joined, comments dropped), as argument lists without the program name; synopsis lines with placeholders left
    out."""
    import shlex

    commands = []
    for block in _code_blocks(text):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line.removeprefix("$ "), comments=True)
            if words[:1] == ["ganzoo"] and not any(PLACEHOLDER.search(w) for w in words[1:]):
                commands.append(words[1:])
    return commands


COMMANDS = [(doc, argv) for doc in USER_DOCS for argv in _ganzoo_commands(doc.read_text())]


def test_the_readmes_show_commands() -> None:
    readme = [argv for doc, argv in COMMANDS if doc == REPO / "README.md"]
    assert {argv[0] for argv in readme} >= {"train", "sample", "eval", "info", "stargan-grid"}
    assert any("--config" in argv for argv in readme)


@pytest.mark.parametrize(("doc", "argv"), COMMANDS, ids=lambda v: str(v.relative_to(REPO)) if isinstance(v, type(REPO))
                         else " ".join(v)[:60])
def test_readme_command_parses_and_names_registered_things(doc: object, argv: list[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``ganzoo`` line of a README parses with the command's own parser (a run config is read and checked
    against the registry) and the objective and dataset it trains are registered names, not retired ones."""
    import ganzoo_core as gz
    from ganzoo_core.cli import build_parser
    from ganzoo_core.runconfig import parse_args_with_config

    monkeypatch.chdir(REPO)
    # the READMEs also show GPU commands (--device cuda): check the device's spelling, not that this machine has one
    monkeypatch.setattr("ganzoo_core.distributed.check_device", lambda text: __import__("torch").device(text))
    try:
        args = parse_args_with_config(build_parser(), argv)
    except SystemExit as exit_:  # argparse's own refusal (exit status 2)
        pytest.fail(f"{doc}: 'ganzoo {' '.join(argv)}' does not parse (exit {exit_.code})")
    if args.command == "train":
        objective = gz.get_entry("objective", args.objective)
        if args.data:
            gz.get_entry("dataset", args.data)
        assert objective.name == args.objective


def test_readme_error_example_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's ``$ ganzoo info <unknown>`` example shows the command's actual one-line error."""
    from ganzoo_core.cli import main

    block = next(b for b in _code_blocks((REPO / "README.md").read_text()) if b.startswith("$ ganzoo info "))
    command, expected = block.strip().split("\n", 1)
    assert main(command.removeprefix("$ ganzoo ").split()) == 2
    assert capsys.readouterr().err.strip() == expected.strip()


def test_readmes_are_for_users_not_run_logs() -> None:
    """The README stays short; no README holds a run table longer than a few rows (those live in experiments/)."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 210 and max(map(len, readme.splitlines())) <= 200
    for doc in [REPO / "README.md", *sorted(REPO.glob("plugins/*/README.md"))]:
        tables = re.findall(r"(?:^ *\|.*\|\n)+", doc.read_text(), flags=re.M)
        long = [t.splitlines()[0] for t in tables  # header and rule excluded; the catalogue grows with the zoo
                if len(t.splitlines()) - 2 > 8 and not t.lstrip().startswith("| distribution |")]
        assert not long, f"{doc.relative_to(REPO)}: tables over 8 rows: {long}"


# -- each plugin README names the official file and commit its paper variants reproduce ---------------------------

OFFICIAL_COMMITS = {  # the commit of each official repository that the transcriptions follow
    "reedscot/icml2016": "db3f0c6d7c9ef3ef138cb15bf36592c7e19eb9a0",
    "reedscot/cvpr2016": "7988b42f3c2e41b6f7dc6c9ff8020b8681581259",
    "hanzhanggit/StackGAN-Pytorch": "e72ef88446e7bcd84a7b88060053edad72fecf6a",
    "yunjey/stargan": "94dd002e93a2863d9b987a937b85925b80f7a19f",
    "junyanz/pytorch-CycleGAN-and-pix2pix": "78913853ab4a4f5eba717af8433809300c99f0bb",
    "pytorch/examples": "77f55b912142e11fcfdf5b530231fb9c52f181e8",
    "ryankiros/skip-thoughts": "6661cad40664b6c251cac1dad779986eb332c26a",
    "phillipi/pix2pix": "89ff2a81ce441fbe1f1b13eca463b87f1e539df8",
    "affinelayer/pix2pix-tensorflow": "0f2174424356162920fc25067e63db2bcf19f4e7",
    "junyanz/CycleGAN": "40b4498526de6b566f94a000d98fe18b9b8921db",
}
REPO_AT = re.compile(r"([\w.-]+/[\w.-]+)@([0-9a-fA-F]+)")
BLOB_LINK = re.compile(r"https://github\.com/([\w.-]+/[\w.-]+)/blob/([0-9a-fA-F]+)/")


@pytest.mark.parametrize("plugin", sorted(RELEASED))
def test_plugin_readme_names_the_official_code_it_reproduces(plugin: str) -> None:
    """``## Official code``: a short table of registered names → official files → ``owner/name@commit``, where each
    commit (10+ hex digits in the text, all 40 in the links) is the one the transcription follows; a row without a
    commit says why in parentheses."""
    import ganzoo_core as gz
    from ganzoo_core._entries import KINDS

    text = (REPO / "plugins" / plugin / "README.md").read_text()
    assert "\n## Official code\n" in text, f"plugins/{plugin}/README.md has no '## Official code' section"
    section = text.split("\n## Official code\n", 1)[1].split("\n## ", 1)[0]
    assert len(section.strip().splitlines()) <= 15, f"{plugin}: the section is longer than 15 lines"
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == "| ganzoo name | official file | repository @ commit |" and rows[1].startswith("| ---")
    assert rows[2:], f"{plugin}: the table has no rows"
    for row in rows[2:]:
        names, files, source = (cell.strip() for cell in row.strip("|").split(" | "))
        assert REPO_AT.fullmatch(source) or re.fullmatch(r"[\w.-]+/[\w.-]+ \(.+\)", source), f"{plugin}: {source!r}"
        for repo, commit in REPO_AT.findall(source):
            assert len(commit) >= 10, f"{plugin}: {repo}@{commit} has fewer than 10 hex digits"
            assert OFFICIAL_COMMITS.get(repo, "").startswith(commit.lower()), f"{plugin}: {repo}@{commit} is not " \
                f"the commit the transcription follows ({OFFICIAL_COMMITS.get(repo, 'no commit known')})"
        for repo, commit in BLOB_LINK.findall(files):
            assert commit == OFFICIAL_COMMITS.get(repo), f"{plugin}: a link to {repo} at {commit}"
            assert source.startswith(f"{repo}@"), f"{plugin}: a link to {repo} in a row of {source}"
        named = [f"{family}.{variant}" for family, variants in re.findall(r"`([a-z0-9_]+)\.([a-z0-9_/]+)`", names)
                 for variant in variants.split("/")]  # `gan_cls.gan/cls` names gan_cls.gan and gan_cls.cls
        assert named, f"{plugin}: no registered name in {names!r}"
        for name in named:
            assert any(gz.is_name(kind, name) for kind in KINDS), f"{plugin}: {name} is not registered"


@pytest.mark.parametrize("readme", [REPO / "README.md", *sorted((REPO / "plugins").glob("*/README.md"))],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_package_readmes_show_no_image_by_a_relative_link(readme: Path) -> None:
    """Each README is a distribution's page on a package index, where a relative image link shows nothing: images
    live in docs/ (docs/demo.md) or use absolute links."""
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)|<img[^>]+src=\"([^\"]+)\"", readme.read_text())
    relative = [a or b for a, b in images if not (a or b).startswith(("https://", "http://"))]
    assert relative == [], f"{readme.relative_to(REPO)} shows {relative}"
