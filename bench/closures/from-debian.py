#!/usr/bin/env python3
"""Writes a Nix-closure-shaped JSON graph (exportReferencesGraph form: path, references,
narSize) from Debian's package database, for the layering benchmark: each package is a store
path, its Installed-Size its narSize, its Depends and Pre-Depends (first alternative) its
references. Cycles, which Debian allows and Nix does not, are broken by dropping the edge
that closes them (depth-first, packages in name order). A root package, `app`, of ROOT_KB
refers to the given packages, as an application would.

Usage: from-debian.py OUT.json ROOT_KB PACKAGE...   (needs `apt-cache`, after apt-get update)"""
import hashlib, json, re, subprocess, sys

out, root_kb, wanted = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
info = {}

def show(pkg):
    text = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg],
                          capture_output=True, text=True).stdout
    fields, key = {}, None
    for line in text.split("\n"):
        if not line:
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields

def deps_of(fields):
    out = []
    for field in ("Pre-Depends", "Depends"):
        for alt in filter(None, (d.strip() for d in fields.get(field, "").split(","))):
            name = re.split(r"[\s(:]", alt.split("|")[0].strip())[0]
            if name and name not in out:
                out.append(name)
    return out

todo = list(wanted)
while todo:
    pkg = todo.pop()
    if pkg in info:
        continue
    fields = show(pkg)
    if not fields:
        # A virtual package: take the first package that provides it.
        providers = subprocess.run(["apt-cache", "showpkg", pkg], capture_output=True, text=True).stdout
        names = re.findall(r"^(\S+) [^\n]*$", providers.split("Reverse Provides:")[-1], re.M) if "Reverse Provides:" in providers else []
        info[pkg] = {"size": 0, "version": "virtual", "deps": names[:1]}
        todo.extend(names[:1])
        continue
    info[pkg] = {"size": int(fields.get("Installed-Size", "1")) * 1024,
                 "version": fields.get("Version", "0").split(":")[-1], "deps": deps_of(fields)}
    todo.extend(info[pkg]["deps"])

# Virtual packages dissolve into their provider.
def real(p, seen=()):
    while p in info and info[p]["version"] == "virtual" and info[p]["deps"] and p not in seen:
        seen += (p,)
        p = info[p]["deps"][0]
    return p
edges = {p: [real(d) for d in v["deps"] if real(d) in info and real(d) != p and info[real(d)]["version"] != "virtual"]
         for p, v in info.items() if v["version"] != "virtual"}
info["app"] = {"size": root_kb * 1024, "version": "1.0", "deps": []}
edges["app"] = [real(p) for p in wanted]

# Break cycles: depth-first from app, dropping edges to packages on the current path.
state, kept = {}, {p: [] for p in edges}
sys.setrecursionlimit(100000)
def visit(p):
    state[p] = "open"
    for d in sorted(set(edges[p])):
        if state.get(d) == "open":
            continue
        kept[p].append(d)
        if d not in state:
            visit(d)
    state[p] = "done"
visit("app")

def path(p):
    h = hashlib.sha256(p.encode()).hexdigest()
    alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
    digest = "".join(alphabet[int(h[i:i + 2], 16) % 32] for i in range(0, 64, 2))
    return f"/nix/store/{digest}-{p}-{info[p]['version'].replace('~', '_').replace('+', '_')}"

reachable = [p for p in sorted(state)]
graph = [{"path": path(p), "references": sorted(path(d) for d in kept[p]), "narSize": info[p]["size"]}
         for p in reachable]
json.dump(graph, open(out, "w"), indent=1)
total = sum(n["narSize"] for n in graph)
print(f"{out}: {len(graph)} paths, {total / 1e9:.2f} GB, {sum(len(n['references']) for n in graph)} references", file=sys.stderr)
