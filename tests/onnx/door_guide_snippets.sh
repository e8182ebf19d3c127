#!/usr/bin/env bash
# Runs the Python snippets of docs/door-integration.md against a real package: verify_install.py
# installs it (and refuses a tampered copy), embed_opencv.py embeds a reference chip through
# OpenCV DNN; its first values must equal the reference embedding (6 decimals, within 2e-6).
# usage: door_guide_snippets.sh FACEADAPT_BIN SOURCE_DIR SHARED_DIR   (exit 77 = skipped)
set -euo pipefail
faceadapt="$1"; src="$2"; shared="$3"
ref="$shared/reference/embeddings"
demo="${FACEADAPT_WEIGHTS_DIR:-$HOME/.cache/faceadapt/face-api-1.7.15}/demo"
[[ -f "$ref/embeddings.json" && -f "$demo/sample1.jpg" ]] || { echo "skipped: needs $ref and $demo"; exit 77; }
/usr/bin/python3 -c 'import cv2, cryptography' 2>/dev/null || { echo "skipped: needs python3-opencv and python3-cryptography"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$faceadapt" keygen --out "$tmp/keys" >/dev/null
mkdir -p "$tmp/gallery/s1"; cp "$demo/sample1.jpg" "$tmp/gallery/s1/"
"$faceadapt" package --key "$tmp/keys" --site guide --version 1 --gallery "$tmp/gallery" --threshold 0.6 --out "$tmp/v1.fapkg" >/dev/null 2>&1
guide="$src/docs/door-integration"
/usr/bin/python3 "$guide/verify_install.py" "$tmp/v1.fapkg" "$tmp/keys/signing.pub" "$tmp/door" guide | tee "$tmp/install.txt"
grep -q "installed version 1 threshold 0.6 gallery \['s1'\]" "$tmp/install.txt"
/usr/bin/python3 - "$tmp/v1.fapkg" "$tmp/bad.fapkg" <<'PY'
import sys; d = open(sys.argv[1], "rb").read(); i = len(d) - 5000
open(sys.argv[2], "wb").write(d[:i] + bytes([d[i] ^ 1]) + d[i + 1:])
PY
if /usr/bin/python3 "$guide/verify_install.py" "$tmp/bad.fapkg" "$tmp/keys/signing.pub" "$tmp/door2" guide 2>"$tmp/bad.txt"; then
  echo "a tampered package was installed"; exit 1
fi
grep -q "ValueError: payload" "$tmp/bad.txt"; [[ ! -e "$tmp/door2/installed.json" ]]
# A package signed for another site is refused too (the manifest's "site", format 2).
if /usr/bin/python3 "$guide/verify_install.py" "$tmp/v1.fapkg" "$tmp/keys/signing.pub" "$tmp/door3" other 2>"$tmp/site.txt"; then
  echo "a package for another site was installed"; exit 1
fi
grep -q "package for site 'guide'" "$tmp/site.txt"; [[ ! -e "$tmp/door3/installed.json" ]]
/usr/bin/python3 "$guide/embed_opencv.py" "$tmp/door/versions/1/model.onnx" "$tmp/door/versions/1/gallery.bin" 0.6 \
  "$ref/chips/s1_1.png" | tee "$tmp/embed.txt"
/usr/bin/python3 - "$tmp/embed.txt" "$ref/embeddings.json" <<'PY'
import ast, json, sys
got = ast.literal_eval(open(sys.argv[1]).read().split("first values")[1].strip())
ref = next(c for c in json.load(open(sys.argv[2]))["chips"] if c["chip"] == "chips/s1_1.png")["embedding"][:3]
worst = max(abs(a - b) for a, b in zip(got, ref))
print("embed_opencv.py vs reference: max abs %.2g over the printed values" % worst)
sys.exit(0 if worst <= 2e-6 else 1)
PY
