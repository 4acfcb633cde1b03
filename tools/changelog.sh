#!/usr/bin/env bash
# The changelog from changelogs/fragments with antsibull-changelog.
#   tools/changelog.sh            lint the fragments and check that the release notes of the next
#                                 version (galaxy.yml's) can be generated from them (tools/build_check.sh)
#   tools/changelog.sh FILE       also write those release notes to FILE (make changelog: CHANGELOG.rst)
# The release is made in a copy: the checkout's fragments and changelogs/changelog.yaml stay as they
# are until a maintainer runs `antsibull-changelog release` to tag a version.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
antsibull-changelog lint || { echo "changelog: antsibull-changelog lint failed (fragment format: docs/TESTING.md)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
copy="$tmp/ansible_collections/aistack/infra"
mkdir -p "$copy"
cp -r galaxy.yml README.md meta plugins changelogs "$copy/"
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
(cd "$copy" && antsibull-changelog release --version "$version" --date "$(date -u +%F)" >/dev/null 2>"$tmp/release.log") \
  || { cat "$tmp/release.log" >&2; echo "changelog: antsibull-changelog release failed" >&2; exit 1; }
# Every fragment entry must be in the notes, each as one "- " line (plus one per new plugin).
python - "$copy/CHANGELOG.rst" changelogs/fragments <<'PY'
import glob, os, sys, yaml
rst, frag_dir = sys.argv[1], sys.argv[2]
entries = 0
for path in glob.glob(os.path.join(frag_dir, "*.y*ml")):
    for section, items in (yaml.safe_load(open(path)) or {}).items():
        entries += 1 if section == "release_summary" else len(items)
bullets = plugins = 0
section = ""
lines = open(rst).read().splitlines()
for i, line in enumerate(lines):
    if i + 1 < len(lines) and lines[i + 1].startswith("---") and line:
        section = line
    if line.startswith("- "):
        bullets += 1
        plugins += section.startswith("New ")
summary = sum(1 for path in glob.glob(os.path.join(frag_dir, "*.y*ml")) if "release_summary" in (yaml.safe_load(open(path)) or {}))
if bullets - plugins + summary != entries:
    sys.exit("changelog: %d fragment entries, but %d in %s" % (entries, bullets - plugins + summary, rst))
print("changelog: %d fragment entries and %d new plugins in the release notes" % (entries, plugins))
PY
if [ $# -gt 0 ]; then cp "$copy/CHANGELOG.rst" "$1"; echo "changelog: wrote $1"; fi
