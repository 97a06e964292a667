"""Bad input on the bundle's command line: what a user sees, case by case.

Runs ``python -m monai.bundle run --config_file bundles/ddpm_recon/configs/inference.json`` with one bad override at a
time (fast solvers, so the few cases that are accepted finish quickly) and records the exit status, the ``error:``
line, whether a traceback was printed, and whether anything was left in the output folder. Writes the table to
``bundles/ddpm_recon/docs/bad_input.md``.

Usage::

    python benchmarks/fuzz_cli.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "bundles/ddpm_recon/configs/inference.json"
FAST = {"solver": "zero_filled", "baselines": "[]"}


def cases(tmp: Path) -> list[tuple[str, dict]]:
    (tmp / "empty.pt").write_bytes(b"")
    (tmp / "notes.pt").write_text("not a checkpoint\n")
    np.save(tmp / "array.pt", np.zeros(3))
    (tmp / "array.pt.npy").rename(tmp / "array.pt")
    torch.save(torch.zeros(3), tmp / "tensor.pt")
    own = tmp / "own"
    own.mkdir()
    shutil.copy(ROOT / "bundles/ddpm_recon/models/model.pt", own / "model.pt")
    full = (ROOT / "bundles/ddpm_recon/models/model.pt").read_bytes()
    (tmp / "truncated.pt").write_bytes(full[: len(full) // 2])
    taken = tmp / "taken"
    taken.mkdir()
    (taken / "metrics.csv").write_text("my own results\n")
    diff = {"solver": "diffusion", "baselines": "[]"}
    return [
        ("acceleration below 1", {**FAST, "acceleration": "0.5"}),
        ("acceleration 1000 (capped by the centre)", {**FAST, "acceleration": "1000"}),
        ("unknown solver", {"solver": "magic"}),
        ("missing input file", {**FAST, "input_files": "['/nonexistent/file.h5']"}),
        ("input of an unsupported type", {**FAST, "input_files": f"['{CONFIG}']"}),
        ("slice index out of range", {**FAST, "slices": "[99]"}),
        ("num_coils 0", {**FAST, "num_coils": "0"}),
        ("unknown mask type", {**FAST, "mask_type": "spiral"}),
        ("unknown device", {**FAST, "device": "tpu9"}),
        ("negative loss-guidance scale", {"solver": "loss_guidance", "baselines": "['zero_filled', 'tv']",
                                          "guidance_scale": "-5"}),
        ("DiffPIR lambda 0", {**diff, "diffpir_lambda": "0"}),
        ("DiffPIR zeta 2", {**diff, "diffpir_zeta": "2"}),
        ("0 CG iterations", {**diff, "cg_iterations": "0"}),
        ("warm start beyond the prior's T", {**diff, "t_start": "5000"}),
        ("more steps than timesteps below t_start", {**diff, "t_start": "20", "num_steps": "50"}),
        ("0 steps", {**diff, "num_steps": "0"}),
        ("num_samples 0", {**diff, "num_samples": "0"}),
        ("empty checkpoint file", {**diff, "prior_checkpoint": str(tmp / "empty.pt")}),
        ("text file as checkpoint", {**diff, "prior_checkpoint": str(tmp / "notes.pt")}),
        ("numpy file as checkpoint", {**diff, "prior_checkpoint": str(tmp / "array.pt")}),
        ("bare tensor as checkpoint", {**diff, "prior_checkpoint": str(tmp / "tensor.pt"), "verify_checksum": "false"}),
        ("truncated checkpoint", {**diff, "prior_checkpoint": str(tmp / "truncated.pt"), "verify_checksum": "false"}),
        ("own checkpoint without a checksum record", {**diff, "prior_checkpoint": str(own / "model.pt")}),
        ("missing checkpoint", {**diff, "prior_checkpoint": str(tmp / "nope.pt")}),
        ("output folder holding the input", {**FAST, "output_dir": str(ROOT / "bundles/ddpm_recon/data")}),
        ("output folder with a file the run would write", {**FAST, "output_dir": str(taken)}),
    ]


def run_case(overrides: dict, out: Path) -> dict:
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG)]
    if "output_dir" not in overrides:
        overrides = {**overrides, "output_dir": str(out)}
    for key, value in overrides.items():
        args += [f"--{key}", value]
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    log = (res.stdout + "\n" + res.stderr).splitlines()
    warnings = [line.split(" - WARNING - ", 1)[1] for line in log if " - WARNING - " in line]
    return {
        "exit": res.returncode,
        "message": errors[-1] if errors else (f"(warning) {warnings[-1]}" if warnings else "(ran)"),
        "traceback": "Traceback" in res.stderr,
        "left_behind": out.exists() and res.returncode != 0,
    }


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (name, overrides) in enumerate(cases(tmp)):
            out = tmp / f"out{i}"
            r = run_case(overrides, out)
            r["case"], r["override"] = name, " ".join(f"--{k} {v}" for k, v in overrides.items())
            rows.append(r)
            print(json.dumps(r), flush=True)
    lines = [
        "# Bad input on the command line",
        "",
        "Generated by `python benchmarks/fuzz_cli.py` (each case: `python -m monai.bundle run --config_file "
        "bundles/ddpm_recon/configs/inference.json` plus the overrides; temporary paths shortened to their name).",
        "",
        "| case | exit | what the user sees | traceback | output left behind |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        msg = r["message"].replace("|", "\\|")
        msg = msg.replace(str(ROOT) + "/", "")
        msg = " ".join(part if "/tmp" not in part else ".../" + part.rsplit("/", 1)[-1] for part in msg.split(" "))
        lines.append(f"| {r['case']} | {r['exit']} | {msg} | {'yes' if r['traceback'] else 'no'} | "
                     f"{'yes' if r['left_behind'] else 'no'} |")
    path = ROOT / "bundles/ddpm_recon/docs/bad_input.md"
    path.write_text("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
