#!/usr/bin/env python3
"""Verify and install a faceadapt package without faceadapt's agent (docs/package-format.md).

usage: verify_install.py PACKAGE.fapkg SIGNING.PUB DOOR_DIR
Writes DOOR_DIR/versions/<v>/{model.onnx,gallery.bin,manifest.json} and DOOR_DIR/installed.json
(temp + fsync + rename); prints the version and gallery names. Needs python3-cryptography.
"""
import hashlib, json, os, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def sha(b): return hashlib.sha256(b).hexdigest()

def durable_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data); f.flush(); os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY); os.fsync(fd); os.close(fd)

def verify(package_bytes, public_key_hex, site):
    if package_bytes[:8] != b"FAPKG001": raise ValueError("not a faceadapt package")
    (n,) = struct.unpack_from("<I", package_bytes, 8)
    envelope = json.loads(package_bytes[12:12 + n])
    payload = package_bytes[12 + n:]
    manifest_text = envelope["manifest"].encode("utf-8")          # sign/verify these exact bytes
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex.strip()))
    key.verify(bytes.fromhex(envelope["signature"]), manifest_text)  # raises InvalidSignature
    m = json.loads(manifest_text)                                  # parse only after verifying
    if m["format"] != "faceadapt-manifest" or m["format_version"] != 2: raise ValueError("format")
    if m["site"] != site: raise ValueError("package for site %r, this door is at %r" % (m["site"], site))
    if m["architecture"]["model_format"] != "onnx": raise ValueError("model format %r" % m["architecture"]["model_format"])
    p = m["payload"]
    if len(payload) != p["size"] or sha(payload) != p["sha256"]: raise ValueError("payload")
    cs = p["chunk_size"]
    for i, h in enumerate(p["chunk_sha256"]):
        if sha(payload[i * cs:(i + 1) * cs]) != h: raise ValueError("chunk %d" % i)
    parts = {}
    for part in m["parts"]:
        data = payload[part["offset"]:part["offset"] + part["size"]]
        if sha(data) != part["sha256"]: raise ValueError("part " + part["name"])
        parts[part["name"]] = data
    return envelope, m, parts

def decode_gallery(b):
    if b[:8] != b"FAGAL001": raise ValueError("gallery magic")
    count, dim = struct.unpack_from("<II", b, 8); pos = 16; out = []
    for _ in range(count):
        (n,) = struct.unpack_from("<H", b, pos); pos += 2
        name = b[pos:pos + n].decode("utf-8"); pos += n
        out.append((name, struct.unpack_from("<%df" % dim, b, pos))); pos += 4 * dim
    if pos != len(b): raise ValueError("gallery trailing bytes")
    return out

def install(door_dir, envelope, m, parts):
    v = m["model_version"]
    installed = os.path.join(door_dir, "installed.json")
    old = json.load(open(installed)) if os.path.exists(installed) else {"version": 0}
    if v <= old["version"]: raise ValueError("version %d is not newer than %d" % (v, old["version"]))
    vdir = os.path.join(door_dir, "versions", str(v)); os.makedirs(vdir, exist_ok=True)
    durable_write(os.path.join(vdir, "model.onnx"), parts["model"])
    durable_write(os.path.join(vdir, "gallery.bin"), parts["gallery"])
    durable_write(os.path.join(vdir, "manifest.json"), json.dumps(envelope).encode())
    durable_write(installed, json.dumps({"version": v, "previous_version": old["version"]}).encode())  # commit point

if __name__ == "__main__":
    package, pub, door, site = sys.argv[1:5]
    envelope, m, parts = verify(open(package, "rb").read(), open(pub).read(), site)
    gallery = decode_gallery(parts["gallery"])
    if len(gallery) != m["gallery"]["entries"]: raise ValueError("gallery entries")
    install(door, envelope, m, parts)
    print("installed version", m["model_version"], "threshold", m["gallery"]["threshold"],
          "gallery", [name for name, _ in gallery])
