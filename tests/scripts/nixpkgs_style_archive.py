#!/usr/bin/env python3
"""Rewrites a docker-archive the way nixpkgs' stream_layered_image.py writes one: layer
members named absolutely (`/nix/store/...`), PAX headers (Python's tarfile, PAX_FORMAT),
hard links stored as the regular files they link; `<n>/layer.tar` members, a config whose
diff_ids match. Used by the e2e parent checks: python3 nixpkgs_style_archive.py IN OUT TAG"""
import hashlib, io, json, sys, tarfile

src, dst, tag = sys.argv[1], sys.argv[2], sys.argv[3]
with tarfile.open(src) as archive:
    manifest = json.load(archive.extractfile("manifest.json"))[0]
    config = json.load(archive.extractfile(manifest["Config"]))
    layers = []
    for name in manifest["Layers"]:
        inner = tarfile.open(fileobj=io.BytesIO(archive.extractfile(name).read()))
        data = {m.name: inner.extractfile(m).read() for m in inner.getmembers() if m.isfile()}
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as layer:
            for m in inner.getmembers():
                body = None
                if m.islnk():
                    body = data[m.linkname]
                    m.type, m.linkname, m.size = tarfile.REGTYPE, "", len(body)
                elif m.isfile():
                    body = data[m.name]
                # A PAX record on every entry, as Python writes them for long or odd names.
                m.pax_headers = {"comment": "written like nixpkgs"}
                m.name = "/" + m.name.lstrip("./")
                layer.addfile(m, io.BytesIO(body) if body is not None else None)
        layers.append(out.getvalue())
config["rootfs"]["diff_ids"] = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
with tarfile.open(dst, "w") as archive:
    def add(name, blob):
        info = tarfile.TarInfo(name)
        info.size = len(blob)
        archive.addfile(info, io.BytesIO(blob))
    names = []
    for n, layer in enumerate(layers):
        names.append(f"{n}/layer.tar")
        add(names[-1], layer)
    add("config.json", json.dumps(config).encode())
    add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [tag], "Layers": names}]).encode())
