#!/usr/bin/python3
"""Helper of test_torch_interop.sh: PyTorch side of the rnntrain-vs-PyTorch comparisons.

    compare_evals.py TORCH_CHECKPOINT_PY TOL LIST

LIST has tab-separated lines: label, target, data, batch, bptt, "--verify" or "", the
`rnntrain eval --json` output[, an already computed torch_checkpoint.py --json output].
For lines without the last field, torch_checkpoint.main() is called in this process with
the arguments the command line would get (torch is imported once, not once per line).
Asserts equal token counts and nats within TOL relative, and checks the plain output
format once; exit 1 on any failure."""
import contextlib
import importlib.util
import io
import json
import re
import sys

script, tol, listing = sys.argv[1], float(sys.argv[2]), sys.argv[3]
spec = importlib.util.spec_from_file_location("torch_checkpoint", script)
tc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tc)

bad = 0
for line in open(listing):
    fields = line.rstrip("\n").split("\t")
    label, target, data, batch, bptt, verify, ours = fields[:7]
    if len(fields) > 7:
        theirs = fields[7]
    else:
        argv = [target, "--data", data, "--batch", batch, "--bptt", bptt, "--json"]
        if verify:
            argv.append("--verify")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = tc.main(argv)
        if rc != 0:
            print("FAIL: %s: torch_checkpoint.py %s exited %d" % (label, " ".join(argv), rc))
            bad += 1
            continue
        theirs = out.getvalue().strip().splitlines()[-1]
    a, b = json.loads(ours), json.loads(theirs)
    rel = abs(a["nats"] - b["nats"]) / abs(a["nats"])
    good = a["tokens"] == b["tokens"] and rel <= tol and a["split"] == b["split"]
    print("%s %s: rnntrain %.9f nats, torch %.9f nats, rel diff %.2e, tokens %d/%d%s"
          % ("ok:  " if good else "FAIL:", label, a["nats"], b["nats"], rel, a["tokens"],
             b["tokens"], ", %d checksums verified" % b["checksums_verified"]
             if "checksums_verified" in b else ""))
    bad += not good
# the plain (non-JSON) output of the first line's target
label, target, data, batch, bptt = open(listing).readline().split("\t")[:5]
if target != "-":
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = tc.main([target, "--data", data, "--batch", batch, "--bptt", bptt])
    text = out.getvalue().strip()
    good = rc == 0 and re.fullmatch(r"valid: \d+\.\d{4} nats/token \| \d+\.\d{4} bits/token \| "
                                    r"perplexity \d+\.\d{3} \| \d+ tokens", text)
    print("%s plain output: %s" % ("ok:  " if good else "FAIL:", text))
    bad += not good
sys.exit(1 if bad else 0)
