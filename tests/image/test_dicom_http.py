#!/usr/bin/env python3
"""DICOM through the service (tiny synth model): /analyze "dicom" (a shuffled
CT series gives the same answer and prompt as the sorted one, and the same as
the "ct" field with the same stored values as 16-bit PNGs), a single X-ray in
"images" and as an OpenAI image_url data URI (application/dicom), mixed
series and broken files refused with a 400 naming the file, the next request
still working, and no header value (patient name, ID, birth date) anywhere in
a response or the server log."""
import base64
import json
import os
import random
import sys
import tempfile
import zlib
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "http"))
try:
    import numpy as np
    import dicom_fixtures as fx
    from pydicom.uid import generate_uid
except ImportError as e:
    print(f"skip dicom_http: python dependency missing ({e}); run `make deps`")
    sys.exit(0)
from http_fixture import Results, Server, check, tiny_model  # noqa: E402

SECRETS = [fx.PATIENT_NAME.split("^")[1], fx.PATIENT_ID, "19010101"]


def b64(path, uri=False):
    data = base64.b64encode(open(path, "rb").read()).decode()
    return ("data:application/dicom;base64," + data) if uri else data


def png16(arr):
    """16-bit gray PNG of the stored values (what the "ct" field takes)."""
    h, w = arr.shape
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def png_rgb8(rgb):
    """8-bit RGB PNG of an (h, w, 3) uint8 array."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def main():
    res = Results()
    tmp = tempfile.mkdtemp(prefix="dicom_http_")
    rng = np.random.default_rng(9)
    uid = generate_uid()
    files, arrays = [], []
    for k in range(6):
        a = rng.integers(0, 4096, (24, 24))
        arrays.append(a)
        files.append(fx.make(os.path.join(tmp, f"s{k}.dcm"), a, series_uid=uid, position=(0, 0, 5.0 * k),
                             instance=6 - k, bits_stored=12, slope=1, intercept=-1024))
    cr = fx.make(os.path.join(tmp, "cr.dcm"), rng.integers(0, 4096, (32, 28)), modality="CR", bits_stored=12,
                 photometric="MONOCHROME1", WindowCenter=2048, WindowWidth=4096)
    # two VOI windows: "dicom_window" picks one (the first by default)
    cr2 = fx.make(os.path.join(tmp, "cr2.dcm"), rng.integers(0, 4096, (32, 28)), modality="CR", bits_stored=12,
                  WindowCenter=[700, 3300], WindowWidth=[600, 900])
    other = fx.make(os.path.join(tmp, "other.dcm"), arrays[0], series_uid=generate_uid(), position=(0, 0, 99),
                    bits_stored=12, slope=1, intercept=-1024)
    truncated = os.path.join(tmp, "trunc.dcm")
    open(truncated, "wb").write(open(files[0], "rb").read()[:400])

    model = tiny_model()
    srv = Server(model, args=["--max-context", "4096"]).wait_healthy()
    seen = []
    base = {"prompt": "Findings?", "max_tokens": 6, "temperature": 0}

    def post(body, path="/analyze"):
        status, _, b = srv.json("POST", path, body, timeout=300)
        seen.append(repr(b))
        return status, b

    def series_shuffled_same_answer():
        shuffled = files[:]
        random.Random(1).shuffle(shuffled)
        s1, a = post(dict(base, dicom=[b64(f) for f in files]))
        s2, b = post(dict(base, dicom=[b64(f) for f in shuffled]))
        check(s1 == 200 and s2 == 200, "status %d %d: %r %r" % (s1, s2, a, b))
        strip = lambda r: {k: v for k, v in r.items() if not k.endswith("_ms") and k not in ("id", "created")}  # noqa
        check(strip(a) == strip(b), "shuffled differs: %r vs %r" % (a, b))
        # the same stored values through the "ct" field (PNG slices, rescale by hand)
        s3, c = post(dict(base, modality="CT", ct={"slices": [png16(x) for x in arrays], "rescale_intercept": -1024}))
        check(s3 == 200, "ct field: %d %r" % (s3, c))
        check(strip(a) == strip(c), "dicom vs ct field: %r vs %r" % (strip(a), strip(c)))

    def single_xray_images_field():
        s, b = post(dict(base, images=[b64(cr)]))
        check(s == 200, "%d %r" % (s, b))
        s, b2 = post(dict(base, dicom=[b64(cr)]))
        check(s == 200 and b2["usage"] == b["usage"], "%d %r vs %r" % (s, b2, b))

    def openai_data_uri():
        body = {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe:"},
            {"type": "image_url", "image_url": {"url": b64(cr, uri=True)}}]}], "max_tokens": 4}
        s, b = post(body, "/v1/chat/completions")
        check(s == 200 and b["choices"][0]["message"]["content"] is not None, "%d %r" % (s, b))

    def dicom_window_picks_the_voi_window():
        ds = fx.read(cr2)
        answers = {}
        for index in (0, 1):
            s, png = post(dict(base, images=[png_rgb8(fx.ref_gray_rgb(ds, index))]))
            check(s == 200, "png of window %d: %d %r" % (index, s, png))
            answers[index] = png["text"]
        check(answers[0] != answers[1], "precondition: the two windows' images give the same answer %r" % answers)
        s, d0 = post(dict(base, dicom=[b64(cr2)]))
        s1, d1 = post(dict(base, dicom=[b64(cr2)], dicom_window=1))
        check(s == 200 and s1 == 200, "%d %r / %d %r" % (s, d0, s1, d1))
        check(d0["text"] == answers[0], "default window: %r, pydicom's window 0 gives %r" % (d0["text"], answers[0]))
        check(d1["text"] == answers[1], "dicom_window 1: %r, pydicom's window 1 gives %r" % (d1["text"], answers[1]))
        s, b = post(dict(base, dicom=[b64(cr2)], dicom_window=2))
        msg = b.get("error", {}).get("message", "")
        check(s == 400 and "dicom[0]" in msg and "window" in msg, "window 2 of 2: %d %r" % (s, b))
        s, b = post(dict(base, dicom=[b64(cr)], dicom_window=1))  # one window only
        check(s == 400 and "window 1" in b.get("error", {}).get("message", ""), "window 1 of 1: %d %r" % (s, b))
        s, b = post(dict(base, images=[b64(cr2)], dicom_window=1))
        check(s == 400 and "dicom_window" in b.get("error", {}).get("message", ""), "%d %r" % (s, b))

    def mixed_series_refused():
        s, b = post(dict(base, dicom=[b64(files[0]), b64(files[1]), b64(other)]))
        msg = b.get("error", {}).get("message", "")
        check(s == 400 and "dicom[2]" in msg and "SeriesInstanceUID" in msg, "%d %r" % (s, b))

    def truncated_refused():
        s, b = post(dict(base, dicom=[b64(truncated)]))
        check(s == 400 and "dicom[0]" in b.get("error", {}).get("message", ""), "%d %r" % (s, b))
        s, b = post(dict(base, dicom=[base64.b64encode(b"\0" * 128 + b"DICM" + b"\xff" * 64).decode()]))
        check(s == 400 and "dicom[0]" in b.get("error", {}).get("message", ""), "%d %r" % (s, b))
        s, b = post(dict(base, dicom=["not base64!"]))
        check(s == 400, "%d %r" % (s, b))
        s, b = post(dict(base, dicom=[b64(cr)], images=[b64(cr)]))
        check(s == 400 and "not several" in b["error"]["message"], "%d %r" % (s, b))

    def cli_dicom_dir_same_prompt():
        import shutil
        import subprocess
        d = os.path.join(tmp, "series_dir")
        os.makedirs(d, exist_ok=True)
        for i, f in enumerate(reversed(files)):
            shutil.copy(f, os.path.join(d, f"IM{i:04d}"))
        s, a = post(dict(base, dicom=[b64(f) for f in files]))
        binary = os.path.join(os.environ.get("BUILD", "build"), "medgemma")
        r = subprocess.run([binary, "generate", "--model", model, "--prompt", "Findings?", "--dicom-dir", d,
                            "--max-tokens", "6", "--json", "--max-context", "4096"], capture_output=True, text=True,
                           timeout=300)
        check(r.returncode == 0, "generate --dicom-dir: %d %s" % (r.returncode, r.stderr[-300:]))
        g = json.loads(r.stdout)
        check(g["usage"] == a["usage"] and g["text"] == a["text"], "CLI %r vs /analyze %r" % (g, a))
        for secret in SECRETS:
            check(secret not in r.stdout + r.stderr, "a header value in the CLI's output")
        r = subprocess.run([binary, "generate", "--model", model, "--prompt", "x", "--dicom-dir", tmp,
                            "--max-tokens", "2"], capture_output=True, text=True, timeout=300)
        check(r.returncode != 0 and "dicom-dir" in r.stderr, "a folder of mixed files: %d %s" % (r.returncode,
                                                                                             r.stderr[-300:]))

    def next_request_works():
        s, b = post(dict(base, dicom=[b64(f) for f in files[:2]]))
        check(s == 200, "%d %r" % (s, b))

    def no_patient_data_anywhere():
        text = "\n".join(seen) + "\n" + "\n".join(json.dumps(x) for x in srv.log_lines())
        text += open(srv.log_path, errors="replace").read()
        for secret in SECRETS:
            check(secret not in text, "a header value appeared in a response or the log")

    res.case("dicom_http_series_shuffled_same_as_sorted_and_ct_field", series_shuffled_same_answer)
    res.case("dicom_http_single_xray_in_images", single_xray_images_field)
    res.case("dicom_http_openai_application_dicom_data_uri", openai_data_uri)
    res.case("dicom_http_dicom_window_picks_the_voi_window", dicom_window_picks_the_voi_window)
    res.case("dicom_http_mixed_series_400_names_file", mixed_series_refused)
    res.case("dicom_http_broken_files_400", truncated_refused)
    res.case("dicom_http_next_request_works", next_request_works)
    res.case("dicom_cli_dicom_dir_same_prompt_as_analyze", cli_dicom_dir_same_prompt)
    res.case("dicom_http_no_patient_data_in_responses_or_log", no_patient_data_anywhere)
    res.case("dicom_http_server_exit_0", lambda: check(srv.stop() == 0, "exit status; log: " + srv.log_tail(5)))
    res.finish()


if __name__ == "__main__":
    main()
