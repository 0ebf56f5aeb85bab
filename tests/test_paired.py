"""benchmarks/paired.py: DMT's gains paired by seed, from finished job folders."""
import json

import pytest

from dmt_wrap_benchmarks import paired


def write_job(out, method, variant, seed, ciou, pointing, keep=None, precision=None, ratio=0.03, single=None,
              machine=None):
    folder = out / "jobs" / method / f"ratio{ratio:g}" / f"seed{seed}" / variant
    folder.mkdir(parents=True)
    scores = {"ciou50": ciou, "auc": 0.4, "pointing": pointing}
    network_scores = {"a": {**scores, "ciou50": single}} if single is not None else {}
    (folder / "result.json").write_text(json.dumps({
        "method": method, "variant": variant, "ratio": ratio, "seed": seed, "scores": scores,
        "network_scores": network_scores, "keep_rate": keep, "pseudo_precision": precision,
        "train_seconds": 1.0, "updates_per_network": 10, "history": [{"step": 1}],
        **({"machine": machine} if machine else {})}))


def test_paired_tables_from_folders(tmp_path, capsys):
    ref, changed = tmp_path / "ref", tmp_path / "changed"
    for seed, (naive_a, ens, dmt, teacher_a, new) in enumerate([(0.40, 0.44, 0.46, 0.43, 0.50),
                                                                 (0.50, 0.52, 0.49, 0.48, 0.55),
                                                                 (0.45, 0.47, 0.51, 0.50, 0.50)]):
        write_job(ref, "ezvsl", "naive_ensemble", seed, ens, 0.8, single=naive_a)
        write_job(ref, "ezvsl", "dmt", seed, dmt, 0.7, keep=0.1, precision=0.7, single=teacher_a)
        write_job(changed, "ezvsl", "dmt", seed, new, 0.75, keep=0.2, precision=0.8)
    json_file = tmp_path / "docs" / "gains.json"
    assert paired.main([str(ref), "--compare", f"norm={changed}", "--json", str(json_file)]) == 0
    text = capsys.readouterr().out
    # DMT - naive (the ensemble's network A): +0.06, -0.01, +0.06 -> mean +3.7, s.e. 2.3, 2 of 3 agree
    assert "| ezvsl | 3 | +3.7 ± 2.3 (2/3) |" in text
    # DMT - naive ensemble: +0.02, -0.03, +0.04 -> +1.0 ± 2.1 (2/3); DMT - teacher A: +3, +1, +1
    assert "+1.0 ± 2.1 (2/3)" in text and "+1.7 ± 0.7 (3/3)" in text
    # the change against the reference DMT: +0.04, +0.06, -0.01 -> +3.0 ± 2.1 (2/3); pointing +5 in all seeds
    row = next(line for line in text.splitlines() if line.startswith("| norm | ezvsl |"))
    assert "+3.0 ± 2.1 (2/3)" in row and "+5.0 ± 0.0 (3/3)" in row and "| 20.0 | 80.0 |" in row
    # and against naive (+0.10, +0.05, +0.05) and the naive ensemble (+0.06, +0.03, +0.03)
    assert "| +6.7 ± 1.7 (3/3) | +4.0 ± 1.0 (3/3) | 20.0 |" in row
    payload = json.loads(json_file.read_text())
    assert payload["methods"]["ezvsl"]["dmt"]["1"]["ciou50"] == 0.49
    assert payload["paired"]["ezvsl"]["dmt-naive"]["ciou50"]["differences"] == pytest.approx([0.06, -0.01, 0.06])


def test_a_new_dmt_run_pairs_with_controls_stored_as_gains_json(tmp_path, capsys):
    ref, new = tmp_path / "ref", tmp_path / "new"
    for seed, (naive_a, ens, dmt, fresh) in enumerate([(0.40, 0.44, 0.46, 0.47), (0.50, 0.52, 0.49, 0.53),
                                                        (0.45, 0.47, 0.51, 0.52)]):
        write_job(ref, "ezvsl", "naive_ensemble", seed, ens, 0.8, single=naive_a)
        write_job(ref, "ezvsl", "dmt", seed, dmt, 0.7, keep=0.1, precision=0.7)
        write_job(new, "ezvsl", "dmt", seed, fresh, 0.75, keep=0.2, precision=0.8)
    stored, combined = tmp_path / "stored.json", tmp_path / "combined.json"
    assert paired.main([str(ref), "--json", str(stored)]) == 0
    capsys.readouterr()
    # the new DMT folder has no control of its own: they come from the stored JSON (its dmt is not used)
    assert paired.main([str(new), "--controls", str(stored), "--compare", f"again={new}", "--json",
                        str(combined)]) == 0
    text = capsys.readouterr().out
    # new DMT - naive: +0.07, +0.03, +0.07 -> +5.7 ± 1.3 (3/3); - naive ensemble: +0.03, +0.01, +0.05
    assert "| ezvsl | 3 | +5.7 ± 1.3 (3/3) | +3.0 ± 1.2 (3/3) |" in text
    payload = json.loads(combined.read_text())
    assert payload["methods"]["ezvsl"]["dmt"]["0"]["ciou50"] == 0.47
    assert payload["methods"]["ezvsl"]["naive"]["2"]["ciou50"] == 0.45
    assert payload["changes"]["again"]["ezvsl"]["1"]["ciou50"] == 0.53  # the changed runs are kept per seed
    # run.py's gains.json (one payload per ratio) is a source too; a missing ratio is named
    (tmp_path / "gains.json").write_text(json.dumps({"ratios": [json.loads(stored.read_text())]}))
    assert paired.main([str(tmp_path / "gains.json")]) == 0
    with pytest.raises(SystemExit, match="no per-seed rows at label ratio 0.1"):
        paired.main([str(tmp_path / "gains.json"), "--ratio", "0.1"])


def test_the_tables_name_the_evaluation_protocol_of_their_sources(tmp_path, capsys):
    out = tmp_path / "out"
    for seed in range(2):
        write_job(out, "ezvsl", "naive_ensemble", seed, 0.44, 0.8, single=0.40)
        write_job(out, "ezvsl", "dmt", seed, 0.46, 0.7, keep=0.1, precision=0.7)
    assert paired.main([str(out)]) == 0  # no results.json: a record from before protocols were named
    assert "Evaluation protocol: `benchmark`" in capsys.readouterr().out
    (out / "results.json").write_text(json.dumps({"protocol": "ezvsl"}))
    assert paired.main([str(out)]) == 0
    assert "Evaluation protocol: `ezvsl`" in capsys.readouterr().out


def test_paired_refuses_a_folder_without_jobs_and_a_bad_compare(tmp_path):
    with pytest.raises(SystemExit, match="no finished job"):
        paired.main([str(tmp_path)])
    with pytest.raises(SystemExit):
        paired.main([str(tmp_path), "--compare", "no-equals-sign"])


def test_controls_fill_the_seeds_a_variant_lacks_and_never_replace_the_reference_rows(tmp_path, capsys):
    ref, stored_jobs = tmp_path / "ref", tmp_path / "stored"
    write_job(ref, "ezvsl", "naive_ensemble", 0, 0.44, 0.8, single=0.40)
    write_job(ref, "ezvsl", "dmt", 0, 0.46, 0.7, keep=0.1, precision=0.7)
    for seed, (naive_a, ens, dmt) in enumerate([(0.10, 0.10, 0.10), (0.50, 0.52, 0.49), (0.45, 0.47, 0.51)]):
        write_job(stored_jobs, "ezvsl", "naive_ensemble", seed, ens, 0.8, single=naive_a)
        write_job(stored_jobs, "ezvsl", "dmt", seed, dmt, 0.7, keep=0.1, precision=0.7)
    write_job(ref, "lvs", "dmt", 0, 0.60, 0.7)
    write_job(stored_jobs, "lvs", "dmt", 1, 0.10, 0.7)
    out = tmp_path / "merged.json"
    assert paired.main([str(ref), "--controls", f"{stored_jobs}:ezvsl", "--json", str(out)]) == 0
    # seed 0 from the reference (its 0.10 rows in the controls are not used), seeds 1-2 from the controls:
    # DMT - naive +0.06, -0.01, +0.06 -> +3.7 ± 2.3 (2/3)
    assert "| ezvsl | 3 | +3.7 ± 2.3 (2/3) |" in capsys.readouterr().out
    methods = json.loads(out.read_text())["methods"]
    assert methods["ezvsl"]["dmt"]["0"]["ciou50"] == 0.46 and methods["ezvsl"]["dmt"]["2"]["ciou50"] == 0.51
    assert methods["ezvsl"]["naive"]["0"]["ciou50"] == 0.40
    # ":ezvsl" took nothing of LVS from the controls; a method the controls lack is refused by name
    assert list(methods["lvs"]["dmt"]) == ["0"]
    with pytest.raises(SystemExit, match=r"no rows for \['sspl'\]"):
        paired.main([str(ref), "--controls", f"{stored_jobs}:ezvsl,sspl"])


def test_the_mean_over_methods_has_its_standard_error_over_seeds_when_the_methods_share_them(tmp_path, capsys):
    ref = tmp_path / "ref"
    # DMT - naive: EZ-VSL +2, +4, +6 and LVS +6, +4, +2 points: each method alone spreads by 1.2 s.e.,
    # but every seed's mean over the two is +4 (a job seed is one draw for every method)
    for method, gains in (("ezvsl", (0.02, 0.04, 0.06)), ("lvs", (0.06, 0.04, 0.02))):
        for seed, gain in enumerate(gains):
            write_job(ref, method, "naive_ensemble", seed, 0.45, 0.8, single=0.40)
            write_job(ref, method, "dmt", seed, 0.40 + gain, 0.7, keep=0.1, precision=0.7)
    assert paired.main([str(ref)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| ezvsl | 3 | +4.0 ± 1.2 (3/3) |" in "\n".join(lines)
    assert next(line for line in lines if "mean over methods" in line).startswith("| *mean over methods* |  | +4.0 ± 0.0 (3/3) |")
    # methods with different seeds: the mean stands alone (LVS without seed 2: +5.0; mean of +4.0 and +5.0)
    for variant in ("naive_ensemble", "dmt"):
        (ref / "jobs" / "lvs" / "ratio0.03" / "seed2" / variant / "result.json").unlink()
    assert paired.main([str(ref)]) == 0
    mean_row = next(line for line in capsys.readouterr().out.splitlines() if "mean over methods" in line)
    assert mean_row.startswith("| *mean over methods* |  | +4.5 |")


MACHINE = {"cpu_model": "AMD EPYC", "cpu_id": "AuthenticAMD cpu family 25 model 1 stepping 1",
           "cpu_simd": ["sse4_2", "avx", "fma", "avx2"], "cpu_capability": "AVX2", "mkl": "2024.2",
           "onednn": "3.10.2", "pins": {}, "threads": 1, "device": "cpu", "torch": "2.11.0", "python": "3.11.7",
           "platform": "linux-x86_64"}
AVX512 = {**MACHINE, "cpu_id": "AuthenticAMD cpu family 25 model 17 stepping 1",
          "cpu_simd": MACHINE["cpu_simd"] + ["avx512f"], "cpu_capability": "AVX512"}
#: per seed: naive (the ensemble's network A), naive ensemble, DMT
RECORDED = [(0.40, 0.44, 0.46), (0.50, 0.52, 0.49), (0.45, 0.47, 0.51)]


def write_rows(out, rows, machine):
    for seed, (naive_a, ens, dmt) in enumerate(rows):
        write_job(out, "ezvsl", "naive_ensemble", seed, ens, 0.8, single=naive_a, machine=machine)
        write_job(out, "ezvsl", "dmt", seed, dmt, 0.7, keep=0.1, precision=0.7, machine=machine)


@pytest.fixture
def recorded(tmp_path, capsys):
    """A gains JSON as docs/results/ stores them, written by paired.py from a folder trained on MACHINE."""
    write_rows(tmp_path / "recorded-jobs", RECORDED, MACHINE)
    stored = tmp_path / "gains-recorded.json"
    assert paired.main([str(tmp_path / "recorded-jobs"), "--json", str(stored)]) == 0
    capsys.readouterr()
    assert json.loads(stored.read_text())["machines"] == [MACHINE]
    return stored


def test_a_rerun_on_another_cpu_is_exact_where_it_is_and_agrees_within_the_standard_errors(recorded, tmp_path,
                                                                                          capsys):
    rerun = tmp_path / "mine"
    # seed 0 reproduces exactly; seeds 1-2 moved by 1-2 points, as on another instruction set
    write_rows(rerun, [RECORDED[0], (0.48, 0.50, 0.50), (0.46, 0.49, 0.50)], AVX512)
    out = tmp_path / "against.json"
    assert paired.main(["--against", str(recorded), str(rerun), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Recorded on: AMD EPYC (avx2), torch 2.11.0 AVX2" in text and "Rerun on: AMD EPYC (avx512f)" in text
    assert "per-seed numbers may move" in text
    # 9 scores (naive, naive ensemble, DMT x 3 seeds): seed 0's three exact; the six others moved
    # 2, 2, 1 and 1, 2, 1 points -> mean 1.5, largest 2.0
    assert ("3 of 9 scores exact (variant and seed; every gains field); the other 6 moved CIoU@0.5 by 1.5 points "
            "on average, 2.0 at most") in text
    # naive is the ensemble's network A: one column, not two
    assert "| method | seed | dmt | naive_ensemble | naive |" in text
    assert "| ezvsl | 0 | = 46.0 | = 44.0 | = 40.0 |" in text
    assert "| ezvsl | 1 | 49.0 → 50.0 | 52.0 → 50.0 | 50.0 → 48.0 |" in text
    # DMT - naive: recorded +6, -1, +6 -> +3.7 ± 2.3; rerun +6, +2, +4 -> +4.0 ± 1.2: 0.3 apart, within 3.5
    assert "| ezvsl | naive | +3.7 ± 2.3 (2/3) | +4.0 ± 1.2 (3/3) | +0.3 | yes | yes |" in text
    # DMT - naive ensemble: +2, -3, +4 -> +1.0 ± 2.1; rerun +2, 0, +1 -> +1.0 ± 0.6
    assert "| ezvsl | naive_ensemble | +1.0 ± 2.1 (2/3) | +1.0 ± 0.6 (2/3) | +0.0 | yes | yes |" in text
    stored = json.loads(out.read_text())
    assert stored["machines"] == [AVX512] and stored["against"]["same_numerics"] is False
    assert stored["against"]["seeds"]["exact"] == 3
    by_seed = {(j["variant"], j["seed"]): j for j in stored["against"]["seeds"]["per_score"]}
    assert by_seed[("dmt", 0)]["exact"] and by_seed[("dmt", 1)]["shift"] == pytest.approx(0.01)


def test_a_gain_that_moved_beyond_its_standard_errors_is_named(recorded, tmp_path, capsys):
    rerun = tmp_path / "mine"
    # DMT 10 points lower in every seed: DMT - naive -4, -11, -4 -> -6.3 ± 2.3 against +3.7 ± 2.3
    write_rows(rerun, [(n, e, d - 0.10) for n, e, d in RECORDED], AVX512)
    assert paired.main(["--against", str(recorded), str(rerun)]) == 0
    text = capsys.readouterr().out
    assert "| ezvsl | naive | +3.7 ± 2.3 (2/3) | -6.3 ± 2.3 (3/3) | -10.0 | no | no |" in text


def test_the_same_kernels_promise_exact_jobs_and_a_moved_job_fails_the_check(recorded, tmp_path, capsys):
    same = tmp_path / "same"
    write_rows(same, RECORDED, MACHINE)
    assert paired.main(["--against", str(recorded), str(same)]) == 0
    text = capsys.readouterr().out
    assert "every job should be exact" in text and "9 of 9 scores exact (variant and seed; every gains field)." in text
    assert "| ezvsl | naive | +3.7 ± 2.3 (2/3) | +3.7 ± 2.3 (2/3) | +0.0 | exact | yes |" in text
    moved = tmp_path / "moved"
    write_rows(moved, [RECORDED[0], RECORDED[1], (0.45, 0.47, 0.52)], MACHINE)
    assert paired.main(["--against", str(recorded), str(moved)]) == 1
    # another thread count is other kernels: the same move is then reported, not failed
    other_threads = tmp_path / "threads"
    write_rows(other_threads, [RECORDED[0], RECORDED[1], (0.45, 0.47, 0.52)], {**MACHINE, "threads": 2})
    assert paired.main(["--against", str(recorded), str(other_threads)]) == 0


def test_against_refuses_sides_that_share_no_job(recorded, tmp_path):
    other = tmp_path / "other"
    write_job(other, "lvs", "dmt", 0, 0.5, 0.7, machine=MACHINE)
    with pytest.raises(SystemExit, match="share no"):
        paired.main(["--against", str(recorded), str(other)])
