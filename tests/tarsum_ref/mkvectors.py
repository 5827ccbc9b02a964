#!/usr/bin/env python3
"""Deterministic test-vector tars for tarsum + an independent re-implementation
of the tarsum algorithm (from /tmp/tarsum-notes.md) to cross-check the Go tool.

Usage: python3 mkvectors.py OUTDIR
Writes OUTDIR/<name>.tar and prints "<name> <Version> <tarsum>" per line
as computed by the Python model (not by Go)."""
import hashlib, io, os, sys, tarfile

LONG = "d/" + "x" * 60 + "/" + "y" * 60 + ".txt"   # 125 chars > 100

def entries_basic():
    # (name, type, mode, uid, gid, mtime, linkname, content, xattrs, uname, gname)
    return [
        dict(name="d/", type=tarfile.DIRTYPE, mode=0o755),
        dict(name="d/f", type=tarfile.REGTYPE, mode=0o644, content=b"hello\n"),
        dict(name="d/l", type=tarfile.SYMTYPE, mode=0o777, linkname="f"),
        dict(name="d/h", type=tarfile.LNKTYPE, mode=0o644, linkname="d/f"),
        dict(name=LONG, type=tarfile.REGTYPE, mode=0o600, content=b"long\n"),
    ]

def normalise(e, mtime=1, uname="root", gname="root"):
    d = dict(uid=0, gid=0, mtime=mtime, linkname="", content=b"", xattrs={},
             uname=uname, gname=gname, devmajor=0, devminor=0)
    d.update(e)
    return d

def write_tar(path, entries, fmt):
    with tarfile.open(path, "w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = e["type"]; ti.mode = e["mode"]; ti.uid = e["uid"]; ti.gid = e["gid"]
            ti.mtime = e["mtime"]; ti.linkname = e["linkname"]
            ti.uname = e["uname"]; ti.gname = e["gname"]
            ti.size = len(e["content"]) if e["type"] == tarfile.REGTYPE else 0
            if e["xattrs"]:
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in e["xattrs"].items()}
            tf.addfile(ti, io.BytesIO(e["content"]) if ti.size else None)

# ---- independent model of the tarsum algorithm ----
def entry_sum(e, version):
    size = len(e["content"]) if e["type"] == tarfile.REGTYPE else 0
    fields = [("name", e["name"]), ("mode", str(e["mode"])), ("uid", str(e["uid"])),
              ("gid", str(e["gid"])), ("size", str(size))]
    if version == 0:
        fields.append(("mtime", str(e["mtime"])))
    fields += [("typeflag", e["type"].decode("latin-1")), ("linkname", e["linkname"]),
               ("uname", ""), ("gname", ""),          # values are blanked by tarsum
               ("devmajor", str(e["devmajor"])), ("devminor", str(e["devminor"]))]
    if version >= 1:
        for k in sorted(e["xattrs"], key=lambda s: s.encode()):
            if e["xattrs"][k] != "":                  # Go drops empty PAX values
                fields.append((k, e["xattrs"][k]))
    h = hashlib.sha256()
    for k, v in fields:
        h.update(k.encode() + v.encode())
    h.update(e["content"])
    return h.hexdigest()

def tarsum(entries, version, extra=b""):
    sums = sorted(entry_sum(e, version) for e in entries)   # no duplicate names here
    h = hashlib.sha256(extra)
    for s in sums:
        h.update(s.encode())
    label = {0: "tarsum", 1: "tarsum.v1", 2: "tarsum.dev"}[version]
    return f"{label}+sha256:{h.hexdigest()}"

def vectors():
    b = entries_basic()
    yield "basic-gnu", [normalise(e) for e in b], tarfile.GNU_FORMAT
    yield "basic-pax", [normalise(e) for e in b], tarfile.PAX_FORMAT
    # same content, different mtime and uname/gname: V1 unchanged, V0 changes
    yield "basic-gnu-mtime2", [normalise(e, mtime=2, uname="nobody", gname="nogroup") for e in b], tarfile.GNU_FORMAT
    x = [normalise(e) for e in b]
    x[1]["xattrs"] = {"user.zz": "2", "user.aa": "1", "security.capability": "\x01\x00"}
    yield "xattr-pax", x, tarfile.PAX_FORMAT
    yield "single-file", [normalise(dict(name="file.txt", type=tarfile.REGTYPE, mode=0o644, content=b"test"))], tarfile.USTAR_FORMAT

if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, ents, fmt in vectors():
        write_tar(os.path.join(out, name + ".tar"), ents, fmt)
        for v, lab in ((0, "Version0"), (1, "Version1"), (2, "VersionDev")):
            print(f"{name} {lab}: {tarsum(ents, v)}")
