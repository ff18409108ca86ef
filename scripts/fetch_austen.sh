#!/usr/bin/env bash
# Fetch the six Jane Austen novels (Debian r-cran-janeaustenr, MIT) for the ganzoo dataset austen.novels.
# Downloads the .deb and unpacks it without installing it: 'apt-get install' would pull in all of R (~700 packages).
# Needs apt-get and dpkg-deb (Debian/Ubuntu) and apt package lists ('apt-get update' once, as root); the script itself
# needs no root. Run as root, apt-get warns "Download is performed unsandboxed as root": harmless here.
# Usage: scripts/fetch_austen.sh [DEST]   (default: $GANZOO_DATA_DIR/janeaustenr, else ~/.cache/ganzoo/janeaustenr)
set -euo pipefail

dest="${1:-${GANZOO_DATA_DIR:-$HOME/.cache/ganzoo}/janeaustenr}"
for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "fetch_austen.sh: '$tool' not found; this script needs Debian/Ubuntu" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download r-cran-janeaustenr)
mkdir -p "$dest"
dpkg-deb -x "$work"/r-cran-janeaustenr_*.deb "$dest"
rdx="$(find "$dest" -path '*/janeaustenr/data/Rdata.rdx' | head -n 1)"
[ -n "$rdx" ] || { echo "fetch_austen.sh: unpacked into $dest but found no janeaustenr/data/Rdata.rdx" >&2; exit 1; }
echo "Jane Austen novels unpacked into $dest ($rdx)"
