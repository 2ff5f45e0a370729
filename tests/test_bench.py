"""The speed bench runs end to end (`bench/speed.py --quick`), and `--precision auto` follows the hardware."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "speed.py"


@pytest.mark.slow
def test_quick_speed_bench_writes_positive_numbers_for_every_row(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {(r["kind"], r.get("dtype") or r["precision"], r["batch"], r.get("frozen", False), "photo" in r): r
            for r in result["rows"]}
    kinds = sorted({key[0] for key in rows})
    assert kinds == ["infer", "matmul", "memory", "optimiser", "ref_infer", "ref_train", "train"], kinds
    assert {key[1] for key in rows if key[0] == "matmul"} == {"float32", "bfloat16"}
    # The frozen-weights rows ran in processes with the oneDNN setting, the others without it.
    assert {key[3] for key in rows if key[0] in ("infer", "ref_infer")} == {False, True}
    assert all(row["frozen_weights"] == key[3] for key, row in rows.items() if key[0] != "matmul")
    floors = {key[0]: row for key, row in rows.items() if key[0] in ("memory", "optimiser")}
    assert all(row["gb_per_s"] > 0 for row in floors.values())
    # Adam's bytes: 28 per parameter of the quick run's generator and discriminator, as the Trainer built them.
    assert floors["optimiser"]["bytes_per_call"] == 28 * floors["optimiser"]["parameters"] > 0
    # The bound uses the ceiling of the precision this CPU runs natively, and the default row trained in it.
    [bound] = result["bounds"]
    native = "bfloat16" if result["machine"]["bf16_flags"] else "float32"
    assert bound["batch"] == 1 and bound["ceiling"] == native
    assert 0 < bound["of_ceiling"] < 1 and bound["measured_of_bound"] > 0
    [default] = [row for key, row in rows.items() if key[0] == "train" and not key[4]]
    assert default["precision"] == {"bfloat16": "mixed_bfloat16", "float32": "fp32"}[native]
    assert "| training bound |" in done.stdout and "| Adam update of G and D |" in done.stdout
    for key, row in rows.items():
        if key[0] in floors:
            continue
        fields = ["gflops", "peak_rss_mib"] + ([] if row["kind"] == "matmul" else ["img_per_s", "of_bf16_ceiling"])
        fields += ["vs_reference", "rss_vs_reference"] if row["kind"] in ("train", "infer") and not key[4] else []
        for name in fields:
            assert row[name] > 0, (key, name, row[name])
        assert len(row["seconds"]) == result["options"]["repeats"] and min(row["seconds"]) > 0, key
    assert "| reference fp32 | 1 |" in done.stdout
    # The full-resolution row colorized its whole photo with a Lab model and has no reference to compare with.
    photo_rows = [row for key, row in rows.items() if key[4]]
    assert [(row["photo"], row["color_space"], "vs_reference" in row) for row in photo_rows] == [([1536, 2048], "lab",
                                                                                                 False)]


def test_auto_precision_is_float16_on_gpu_bfloat16_on_bf16_cpus_else_fp32(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pix2pix_tf import runtime

    with_bf16, without = tmp_path / "with", tmp_path / "without"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert runtime.cpu_has_bf16(str(with_bf16)) and not runtime.cpu_has_bf16(str(without))
    assert not runtime.cpu_has_bf16(str(tmp_path / "missing"))
    avx2_only = tmp_path / "avx2"
    avx2_only.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert runtime.cpu_has_avx512(str(without)) and not runtime.cpu_has_avx512(str(avx2_only))
    for gpu, bf16, expected in [(True, True, "mixed_float16"), (False, True, "mixed_bfloat16"), (False, False, "fp32")]:
        monkeypatch.setattr(runtime, "has_gpu", lambda gpu=gpu: gpu)
        monkeypatch.setattr(runtime, "cpu_has_bf16", lambda bf16=bf16: bf16)
        assert runtime.resolve_precision("auto") == expected
        assert runtime.resolve_precision("fp32") == "fp32"


def test_training_bound_is_the_flops_at_the_native_ceiling_plus_the_adam_update() -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import speed
    finally:
        sys.path.remove(str(BENCH.parent))
    rows = [{"kind": "matmul", "precision": "bfloat16", "gflops": 1000.0},
            {"kind": "matmul", "precision": "float32", "gflops": 500.0},
            {"kind": "optimiser", "seconds": [0.05, 0.06, 0.04]},
            {"kind": "train", "batch": 1, "precision": "mixed_bfloat16", "flops_per_call": 50e9, "img_per_s": 5.0},
            {"kind": "train", "batch": 1, "precision": "fp32", "flops_per_call": 50e9, "img_per_s": 4.0},
            {"kind": "train", "batch": 4, "precision": "mixed_bfloat16", "flops_per_call": 200e9, "img_per_s": 8.0}]
    one, four = speed.training_bounds(rows, native_bf16=True)
    # batch 1: 50 ms of FLOPs at the bf16 ceiling + 50 ms of Adam = 10 img/s, half the ceiling; the bf16 row: 50%.
    assert one == pytest.approx({"batch": 1, "ceiling": "bfloat16", "compute_ms": 50.0, "optimiser_ms": 50.0,
                                 "img_per_s": 10.0, "of_ceiling": 0.5, "measured_of_bound": 0.5})
    # batch 4: 200 ms + the same 50 ms = 16 img/s, 80% of the ceiling.
    assert four == pytest.approx({"batch": 4, "ceiling": "bfloat16", "compute_ms": 200.0, "optimiser_ms": 50.0,
                                  "img_per_s": 16.0, "of_ceiling": 0.8, "measured_of_bound": 0.5})
    # Without native bf16: 100 ms at the fp32 ceiling + 50 ms = 6.67 img/s, against the fp32 row (4 img/s);
    # batch 4 has no fp32 row, so nothing reaches its bound.
    one, four = speed.training_bounds(rows, native_bf16=False)
    assert one == pytest.approx({"batch": 1, "ceiling": "float32", "compute_ms": 100.0, "optimiser_ms": 50.0,
                                 "img_per_s": 1 / 0.15, "of_ceiling": 2 / 3, "measured_of_bound": 0.6})
    assert four["ceiling"] == "float32" and four["measured_of_bound"] == 0.0
    assert speed.training_bounds([r for r in rows if r["kind"] != "optimiser"], native_bf16=True) == []
