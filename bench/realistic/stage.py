#!/usr/bin/env python3
"""Stages a realistic closure for the benchmarks from the Debian packages installed here:
the installed dependency closure of the ROOT packages, each package's files copied into
STAGE/<package>/ (as `dpkg -L` lists them: binaries, libraries, data, docs), and
STAGE/packages.json listing each package with its installed dependencies (Pre-Depends and
Depends, first installed alternative; cycles, which Debian allows and Nix does not, broken
by dropping the edge that closes them, depth-first in name order). bench/realistic.nix
turns each directory into a store path that refers to its dependencies' paths.

Real content, not random bytes: ELF code, shared libraries, Python and Java archives, text
and locale data, compressing as images of such packages do.

Usage: stage.py STAGE ROOT...   (STAGE is emptied first)"""
import json, os, re, shutil, subprocess, sys

stage, roots = sys.argv[1], sys.argv[2:]

def query(fmt, *pkgs):
    return subprocess.run(["dpkg-query", "-W", "-f", fmt, *pkgs], capture_output=True,
                          text=True).stdout

installed = {}
for line in query("${Package}\t${Version}\t${Pre-Depends}\t${Depends}\t${Provides}\t${db:Status-Abbrev}\n").splitlines():
    name, version, pre, dep, provides, status = line.split("\t")
    if not status.startswith("ii"):
        continue
    installed[name] = {"version": version.split(":")[-1], "depends": ", ".join(filter(None, [pre, dep])),
                       "provides": [re.split(r"[\s(]", p.strip())[0] for p in provides.split(",") if p.strip()]}
provider = {}
for name in sorted(installed):
    for p in installed[name]["provides"]:
        provider.setdefault(p, name)

def resolve(alternatives):
    for alt in alternatives.split("|"):
        name = re.split(r"[\s(:]", alt.strip())[0]
        if name in installed:
            return name
        if name in provider:
            return provider[name]
    return None

deps = {}
todo = list(roots)
while todo:
    pkg = todo.pop()
    if pkg in deps:
        continue
    if pkg not in installed:
        sys.exit(f"stage.py: {pkg} is not installed")
    found = []
    for d in installed[pkg]["depends"].split(","):
        r = resolve(d) if d.strip() else None
        if r and r != pkg and r not in found:
            found.append(r)
    deps[pkg] = found
    todo.extend(found)

# Break cycles: depth-first in name order, dropping edges back into the current path.
state, kept = {}, {}
def visit(p):
    state[p] = "open"
    kept[p] = []
    for d in sorted(deps[p]):
        if state.get(d) == "open":
            continue
        if d not in state:
            visit(d)
        kept[p].append(d)
    state[p] = "done"
sys.setrecursionlimit(10000)
for p in sorted(deps):
    if p not in state:
        visit(p)

shutil.rmtree(stage, ignore_errors=True)
os.makedirs(stage)
total = 0
for pkg in sorted(kept):
    dest = os.path.join(stage, pkg)
    os.makedirs(dest)
    for path in subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True).stdout.splitlines():
        # Directories (and links to them, such as merged-/usr's /lib) are made as needed.
        if not path.startswith("/") or not os.path.lexists(path) or os.path.isdir(path):
            continue
        target = os.path.join(dest, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(path):
            os.symlink(os.readlink(path), target)
        elif os.path.isfile(path):
            shutil.copyfile(path, target)
            os.chmod(target, os.stat(path).st_mode & 0o755 | 0o444)
            total += os.path.getsize(target)
    # Every package has a file, so no store path is empty.
    with open(os.path.join(dest, ".package"), "w") as f:
        f.write(f"{pkg} {installed[pkg]['version']}\n")
json.dump([{"name": p, "version": installed[p]["version"], "deps": kept[p]} for p in sorted(kept)],
          open(os.path.join(stage, "packages.json"), "w"), indent=1)
print(f"stage.py: {len(kept)} packages, {total / 1e6:.0f} MB in {stage}", file=sys.stderr)
