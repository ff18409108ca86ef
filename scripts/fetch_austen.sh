#!/usr/bin/env bash
# Fetch the six Jane Austen novels (Debian r-cran-janeaustenr, MIT) for the ganzoo dataset austen.novels.
# The same as 'ganzoo data fetch austen', for a machine where ganzoo is not installed yet (CI runs it before setup).
# Downloads the .deb and unpacks it without installing it: 'apt-get install' would pull in all of R (~700 packages).
# Needs apt-get and dpkg-deb (Debian/Ubuntu) and apt package lists ('apt-get update' once, as root); the script itself
# needs no root. Run as root, apt-get warns "Download is performed unsandboxed as root": harmless here.
# Like 'ganzoo data fetch', it unpacks into a hidden folder beside DEST and renames it into place, so an interrupted
# fetch leaves no half folder, and it keeps a DEST that holds the novels already (remove it, or run
# 'ganzoo data fetch austen --force', to fetch again).
# Usage: scripts/fetch_austen.sh [DEST]   (default: $GANZOO_DATA_DIR/janeaustenr, else ~/.cache/ganzoo/janeaustenr)
set -euo pipefail

dest="${1:-${GANZOO_DATA_DIR:-$HOME/.cache/ganzoo}/janeaustenr}"
dest="${dest%/}"
find_rdx() { find "$1" -path '*/janeaustenr/data/Rdata.rdx' -type f 2>/dev/null | head -n 1; }
if [ -d "$dest" ]; then
    rdx="$(find_rdx "$dest")"
    [ -n "$rdx" ] || { echo "fetch_austen.sh: $dest exists but holds no janeaustenr/data/Rdata.rdx; remove it and run again" >&2; exit 1; }
    echo "Jane Austen novels kept in $dest (already fetched: $rdx)"
    exit 0
fi
for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "fetch_austen.sh: '$tool' not found; this script needs Debian/Ubuntu" >&2; exit 1; }
done
mkdir -p "$(dirname "$dest")"
work="$(mktemp -d)"
tmp="$(dirname "$dest")/.$(basename "$dest").$$.sh.tmp"
trap 'rm -rf "$work" "$tmp"' EXIT
(cd "$work" && apt-get download r-cran-janeaustenr)
mkdir "$tmp"
dpkg-deb -x "$work"/r-cran-janeaustenr_*.deb "$tmp"
[ -n "$(find_rdx "$tmp")" ] || { echo "fetch_austen.sh: unpacked r-cran-janeaustenr but found no janeaustenr/data/Rdata.rdx" >&2; exit 1; }
mv -T "$tmp" "$dest"
echo "Jane Austen novels unpacked into $dest ($(find_rdx "$dest"))"
