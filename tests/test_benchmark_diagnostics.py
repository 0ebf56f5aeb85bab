"""The diagnostics of ``benchmarks/diagnostics/``: agreement, audio dependence, pointing breakdown."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmt_wrap_benchmarks import run
from dmt_wrap_benchmarks.diagnostics import agreement, audio_dependence, pointing_breakdown
from tests.child_env import same_code_env


def test_where_the_maps_point_adds_up_and_its_sounding_share_is_the_pointing_game(tiny_preset, tmp_path):
    out = tmp_path / "multi"  # two sounding objects and a silent one: scenes with and without a silent object
    assert run.main(["--method", "ezvsl", "--quick", "--variants", "naive", "fully_supervised", "--tier", "multi",
                     "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    assert pointing_breakdown.main([str(out)]) == 0
    payload = json.loads((out / "pointing_breakdown.json").read_text())
    rows = payload["peaks"]
    assert {r["variant"] for r in rows} == {"naive", "fully_supervised"} and payload["pseudo_labels"] == []
    for r in rows:
        assert r["peak_sounding"] + r["peak_silent"] + r["peak_background"] == pytest.approx(1.0)
        with_silent, without = r["scenes_with_silent"], r["scenes"] - r["scenes_with_silent"]
        assert 0 < with_silent < r["scenes"]
        assert (r["pointing_with_silent"] * with_silent + r["pointing_without_silent"] * without
                == pytest.approx(r["peak_sounding"] * r["scenes"]))
    # the sounding share is the pointing game of the same model on the same scenes
    scores = {r["variant"]: r["scores"]["pointing"] for r in json.loads((out / "results.json").read_text())["runs"]}
    assert all(r["peak_sounding"] == pytest.approx(scores[r["variant"]]) for r in rows)


def test_pseudo_label_places_of_a_two_teacher_model(tiny_preset, tmp_path):
    out = tmp_path / "out"
    assert run.main(["--method", "ezvsl", "--quick", "--variants", "dmt", "--out", str(out), "--no-progress",
                     "--threads", "1", "--train-args", '{"delta_mode": "relative", "tau": 0.0}']) == 0
    assert pointing_breakdown.main([str(out)]) == 0
    payload = json.loads((out / "pointing_breakdown.json").read_text())
    assert [r["variant"] for r in payload["peaks"]] == ["dmt", "dmt (teacher A)", "dmt (teacher B)",
                                                       "dmt (students)"]
    (labels,) = payload["pseudo_labels"]
    # relative delta with tau 0 keeps every scene whose teachers' maps are not flat
    assert labels["pl_keep_rate"] > 0.5
    assert labels["pl_on_sounding"] + labels["pl_on_silent"] + labels["pl_on_background"] == pytest.approx(1.0)
    assert "Pseudo-labels the teachers would give" in (out / "pointing_breakdown.md").read_text()


def test_peak_places_splits_sounding_silent_and_background():
    sounding = torch.zeros(3, 8, 8)
    sounding[:, :4, :4] = 1
    objects = sounding.clone()
    objects[:, 4:, 4:] = 1           # a silent object in the opposite corner
    maps = torch.zeros(3, 8, 8)
    maps[0, 1, 1] = 1                # on the sounding object
    maps[1, 6, 6] = 1                # on the silent one
    maps[2, 1, 6] = 1                # on neither
    places = pointing_breakdown.peak_places(maps, sounding, objects)
    assert places["sounding"].tolist() == [True, False, False]
    assert places["silent"].tolist() == [False, True, False]
    assert places["background"].tolist() == [False, False, True]
    # mean normalised value on the silent object over that on the sounding one
    assert places["silent_over_sounding"][1] > 1 > places["silent_over_sounding"][0]
    no_silent = pointing_breakdown.peak_places(maps, sounding, sounding)["silent_over_sounding"]
    assert no_silent.isnan().all()


def test_pointing_breakdown_names_the_folder_without_jobs(tmp_path):
    with pytest.raises(SystemExit, match="no finished job"):
        pointing_breakdown.main([str(tmp_path)])


def test_agreement_of_two_networks_maps():
    torch.manual_seed(0)
    maps = torch.rand(4, 8, 8)
    correlation, iou = agreement.map_agreement(maps, maps)
    assert torch.allclose(correlation, torch.ones(4, dtype=torch.float64)) and torch.equal(iou, torch.ones(4).double())
    correlation, iou = agreement.map_agreement(maps, 1 - maps)  # opposite maps: anti-correlated, disjoint top halves
    assert torch.allclose(correlation, -torch.ones(4, dtype=torch.float64)) and float(iou.max()) < 0.2
    correlation, _ = agreement.map_agreement(maps, 3 * maps + 1)  # correlation ignores scale and offset
    assert torch.allclose(correlation, torch.ones(4, dtype=torch.float64))


def test_flat_maps_are_those_with_the_same_value_everywhere():
    maps = torch.full((3, 8, 8), 1 / 64)
    maps[1, 0, 0] += 1e-3  # one location apart: not flat
    maps[2] = torch.softmax(torch.zeros(64), 0).view(8, 8)  # a uniform attention, as a dead ReLU leaves it
    assert agreement.flat_maps(maps).tolist() == [True, False, True]


def test_agreement_refuses_a_folder_without_two_network_jobs(tmp_path):
    with pytest.raises(SystemExit, match="no finished two-network job"):
        agreement.main([str(tmp_path)])


def test_agreement_scores_each_network_of_every_two_network_job(tiny_preset, tmp_path, capsys):
    out = tmp_path / "pairs"
    assert run.main(["--method", "ezvsl", "--quick", "--variants", "naive_ensemble", "dmt", "--out", str(out),
                     "--no-progress", "--threads", "1"]) == 0
    assert agreement.main([str(out), "--json", str(out / "agreement.json")]) == 0
    rows = {r["variant"]: r for r in json.loads((out / "agreement.json").read_text())["rows"]}
    assert set(rows) == {"naive_ensemble", "dmt"}
    results = {v: json.loads((out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / v / "result.json").read_text())
               for v in rows}
    for variant, row in rows.items():  # the same scores as run.py's, for the pair and for network A
        assert row["ciou50_mean"] == pytest.approx(results[variant]["scores"]["ciou50"])
        assert row["ciou50_a"] == pytest.approx(results[variant]["network_scores"]["a"]["ciou50"])
        assert row["ensemble_gain"] == pytest.approx(row["ciou50_mean"] - (row["ciou50_a"] + row["ciou50_b"]) / 2)
        assert -1 <= row["map_correlation"] <= 1 and 0 <= row["region_iou"] <= 1
        assert 0 <= row["flat_a"] <= 1 and 0 <= row["flat_b"] <= 1
    capsys.readouterr()
    assert agreement.main(["--from-json", str(out / "agreement.json"), "--method", "ezvsl"]) == 0
    printed = capsys.readouterr().out  # the stored rows again, summarised without a model
    assert f"| {rows['dmt']['ciou50_a'] * 100:.1f} | {rows['dmt']['ciou50_b'] * 100:.1f} |" in printed
    assert "| ezvsl | ratio0.03 |" in printed and "DMT − naive (mean of A and B)" in printed


def test_network_summary_pairs_dmt_with_one_naive_network_counted_both_ways():
    def row(seed, variant, a, b, mean):
        return {"method": "m", "ratio": "ratio0.03", "seed": seed, "variant": variant,
                "ciou50_a": a, "ciou50_b": b, "ciou50_mean": mean}

    rows = [row("seed0", "naive_ensemble", 0.50, 0.40, 0.48), row("seed0", "dmt", 0.46, 0.44, 0.52),
            row("seed1", "naive_ensemble", 0.60, 0.56, 0.60), row("seed1", "dmt", 0.58, 0.60, 0.64)]
    table = agreement.network_summary(rows).splitlines()
    # naive A − B: +10, +4; DMT A − B: +2, −2; DMT − naive A: +2, +4; DMT − (A + B) / 2: +7, +6
    assert table[2] == "| m | ratio0.03 | +7.0 ± 3.0 (2/2) | +0.0 ± 2.0 (0/2) | +3.0 ± 1.0 (2/2) | +6.5 ± 0.5 (2/2) |"
    # one method: the mean row is its row, standard error over seeds included
    assert table[3] == "| *mean over methods* | ratio0.03 | +7.0 ± 3.0 (2/2) | +0.0 ± 2.0 (0/2) | +3.0 ± 1.0 (2/2) | +6.5 ± 0.5 (2/2) |"
    other_ratio = [{**r, "ratio": "ratio0.1", "ciou50_mean": r["ciou50_mean"] + 0.1} for r in rows if r["variant"] == "dmt"]
    table = agreement.network_summary(rows + other_ratio).splitlines()  # a ratio without naive jobs: its own mean
    assert table[3:] == ["| *mean over methods* | ratio0.03 | +7.0 ± 3.0 (2/2) | +0.0 ± 2.0 (0/2) | +3.0 ± 1.0 (2/2) | +6.5 ± 0.5 (2/2) |",
                         "| m | ratio0.1 | — | +0.0 ± 2.0 (0/2) | — | — |",
                         "| *mean over methods* | ratio0.1 | — | +0.0 ± 2.0 (0/2) | — | — |"]


def test_swapped_jobs_split_a_minus_b_into_position_and_seeds(tmp_path, capsys):
    def row(seed, a, b, swapped=False, variant="naive_ensemble"):
        return {"method": "m", "ratio": "ratio0.03", "seed": seed, "variant": variant, "swap_pairs": swapped,
                "ciou50_a": a, "ciou50_b": b, "ciou50_mean": (a + b) / 2, "ensemble_gain": 0.0,
                "map_correlation": 0.5, "region_iou": 0.5, "flat_a": 0.0, "flat_b": 0.0}

    rows = [row("seed0", 0.50, 0.40), row("seed1", 0.60, 0.56), row("seed0", 0.42, 0.50, swapped=True),
            row("seed1", 0.54, 0.62, swapped=True), row("seed0", 0.5, 0.5, variant="dmt")]
    # A − B: +10, +4; swapped: −8, −8; position (A's two scores − B's two, halved): +1, −2;
    # seeds (pair A's seeds in either position − pair B's): +9, +6; position + seeds = A − B;
    # DMT (seed 0 only) − position A over both seed sets: 0.50 − (0.50 + 0.42) / 2
    assert agreement.seed_or_position(rows).splitlines()[2:] == [
        "| m | ratio0.03 | naive_ensemble | +7.0 ± 3.0 (2/2) | -8.0 ± 0.0 (2/2) | -0.5 ± 1.5 (1/2) | +7.5 ± 1.5 (2/2) "
        "| +4.0 (1/1) |",
        "| *mean over methods* | | naive_ensemble | +7.0 ± 3.0 (2/2) | -8.0 ± 0.0 (2/2) | -0.5 ± 1.5 (1/2) "
        "| +7.5 ± 1.5 (2/2) | +4.0 |"]
    assert agreement.seed_or_position([r for r in rows if not r["swap_pairs"]]) == ""  # nothing to pair with
    stored = tmp_path / "rows.json"
    stored.write_text(json.dumps({"rows": rows}))
    assert agreement.main(["--from-json", str(stored)]) == 0
    printed = capsys.readouterr().out  # the swapped jobs stay out of the unswapped A − B
    assert "| m | ratio0.03 | +7.0 ± 3.0 (2/2) |" in printed and "split into position and seeds" in printed


def audio_scenes(n: int = 4):
    """Scenes with the sounding object on the right half and a silent one bottom left; clip i's
    audio carries the value i."""
    sounding = torch.zeros(n, 8, 8)
    sounding[:, :, 4:] = 1
    objects = sounding.clone()
    objects[:, 6:, :2] = 1
    audio = torch.arange(n, dtype=torch.float)[:, None].repeat(1, 16)
    return [{"image": torch.zeros(3, 8, 8), "audio": audio[i], "mask": sounding[i], "objectness": objects[i]}
            for i in range(n)]


def test_audio_dependence_tells_an_audio_map_from_an_objectness_map():
    scenes = audio_scenes()
    own_audio = torch.stack([s["audio"] for s in scenes])

    def objectness(images, audio):  # both objects lit whatever plays
        return torch.stack([s["objectness"] for s in scenes])[: len(images)] * 0.9

    def listening(images, audio):  # the sounding object lit only with its own clip
        matches = (audio[:, 0] == own_audio[: len(audio), 0]).float()[:, None, None]
        return torch.stack([s["mask"] for s in scenes])[: len(images)] * matches

    blind = audio_dependence.audio_dependence(objectness, scenes)
    assert blind["audio_gap"] == 0 and blind["silent_own"] == pytest.approx(0.9)
    assert blind["pointing_own"] == blind["pointing_other"] == 1.0
    heard = audio_dependence.audio_dependence(listening, scenes)
    assert heard["audio_gap"] == pytest.approx(1.0) and heard["sounding_other"] == 0
    assert heard["silent_own"] == heard["background_own"] == 0
    assert heard["pointing_own"] == 1.0 and heard["pointing_other"] == 0.0  # a flat map points at its first pixel: background


def test_audio_dependence_scores_every_finished_job(tiny_preset, tmp_path):
    out = tmp_path / "jobs"
    assert run.main(["--method", "ezvsl", "--quick", "--variants", "naive", "dmt", "--out", str(out),
                     "--no-progress", "--threads", "1"]) == 0
    assert audio_dependence.main([str(out), "--json", str(out / "audio.json")]) == 0
    payload = json.loads((out / "audio.json").read_text())
    rows = {row["variant"]: row for row in payload["rows"]}
    assert set(rows) == {"naive", "dmt"} and rows["naive"]["out"] == str(out)
    assert 0 <= rows["naive"]["sounding_own"] <= 1 and 0 <= rows["dmt"]["pointing_other"] <= 1
    # the DMT job's teachers: plain and contrasted labels, absolute and relative delta
    labels = payload["pseudo_labels"]
    assert {(r["audio_contrast"], r["delta_mode"]) for r in labels} == {
        (c, m) for c in (False, True) for m in ("absolute", "relative")}
    assert all(r["variant"] == "dmt" and 0 <= r["keep_rate"] <= 1 for r in labels)
    with pytest.raises(SystemExit, match="no finished job"):
        audio_dependence.main([str(tmp_path / "empty")])


def test_audio_dependence_names_the_folder_of_each_row_when_given_several(tiny_preset, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        assert run.main(["--method", "ezvsl", "--quick", "--variants", "naive", "--out", str(out),
                         "--no-progress", "--threads", "1"]) == 0
    capsys.readouterr()
    assert audio_dependence.main([str(first)]) == 0
    assert "| run |" not in capsys.readouterr().out  # one folder: no column for it
    assert audio_dependence.main([str(first), str(second)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ezvsl")]
    assert [line.split(" | ")[4] for line in lines] == [str(first), str(second)]


@pytest.mark.parametrize("how", ["module", "file"])
def test_the_diagnostics_run_as_modules_and_as_files_from_any_folder(how, tmp_path):
    """``python -m benchmarks.diagnostics.agreement`` and ``python benchmarks/diagnostics/agreement.py``."""
    script = Path(agreement.__file__)
    command = ["-m", "benchmarks.diagnostics.agreement"] if how == "module" else [str(script)]
    stored = tmp_path / "rows.json"
    row = {"method": "m", "ratio": "ratio0.03", "seed": "seed0", "variant": "dmt", "ciou50_a": 0.5, "ciou50_b": 0.4,
           "ciou50_mean": 0.5, "ensemble_gain": 0.05, "map_correlation": 0.5, "region_iou": 0.5, "flat_a": 0.0,
           "flat_b": 0.0}
    stored.write_text(json.dumps({"rows": [row]}))
    done = subprocess.run([sys.executable, *command, "--from-json", str(stored)], cwd=tmp_path,
                          env=same_code_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| m | ratio0.03 | seed0 | dmt | 50.0 | 40.0 | 50.0 | +5.0 |" in done.stdout
