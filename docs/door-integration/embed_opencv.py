#!/usr/bin/env python3
"""Embed aligned 150x150 chips with model.onnx through OpenCV DNN and match them to a gallery.

usage: embed_opencv.py MODEL.onnx GALLERY.bin THRESHOLD CHIP.png...
A float32-weights model (the default package). Needs python3-opencv (4.6 reads opset 11).
"""
import struct, sys
import cv2
import numpy as np

def decode_gallery(b):
    count, dim = struct.unpack_from("<II", b, 8); pos = 16; out = []
    for _ in range(count):
        (n,) = struct.unpack_from("<H", b, pos); pos += 2
        name = b[pos:pos + n].decode("utf-8"); pos += n
        out.append((name, np.frombuffer(b, "<f4", dim, pos))); pos += 4 * dim
    return out

model, gallery_file, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
net = cv2.dnn.readNetFromONNX(model)
gallery = decode_gallery(open(gallery_file, "rb").read())
for path in sys.argv[4:]:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)              # an aligned chip, 150x150
    # RGB order, values 0..255 as float, NCHW; the graph subtracts the mean and divides by 256.
    blob = cv2.dnn.blobFromImage(bgr, scalefactor=1.0, size=(150, 150), mean=(0, 0, 0), swapRB=True, crop=False)
    net.setInput(blob, "input")
    e = net.forward("embedding")[0]                        # raw 128-D embedding
    name, d = min(((n, float(np.linalg.norm(e - g))) for n, g in gallery), key=lambda x: x[1])
    print(path, "->", name if d <= threshold else "unknown", "%.6f" % d, "first values", [round(float(v), 6) for v in e[:3]])
