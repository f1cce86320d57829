"""Every gallery example runs in quick mode and shows what it claims."""

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name: str, tmp_path: Path) -> str:
    env = {**os.environ, "SPARSECODE_EXAMPLES_OUT": str(tmp_path)}
    env.pop("SPARSECODE_EXAMPLES_FULL", None)
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _values(out: str, label: str) -> dict[str, float]:
    return {m[0]: float(m[1]) for m in re.findall(rf"{label} (\S+): ([-\d.]+)", out)}


def test_every_example_is_a_gallery_script_that_is_tested():
    names = sorted(p.name for p in EXAMPLES.glob("plot_*.py"))
    tested = {"plot_denoising.py", "plot_sae_activations.py",
              "plot_sae_vs_dictionary.py", "plot_toy_superposition.py",
              "plot_word_vectors.py"}
    assert set(names) == tested
    for name in names:  # sphinx-gallery: a docstring title underlined with "="
        text = (EXAMPLES / name).read_text()
        assert re.match(r'"""\n[^\n]+\n=+\n', text), name


def test_denoising_gains_several_db_and_writes_its_figure(tmp_path):
    psnr = _values(_run("plot_denoising.py", tmp_path), "PSNR")
    assert psnr["OMP-2"] > psnr["noisy"] + 3 and psnr["lasso"] > psnr["noisy"] + 3
    assert (tmp_path / "denoising.png").stat().st_size > 10_000


def test_toy_superposition_recovers_the_true_features(tmp_path):
    out = _run("plot_toy_superposition.py", tmp_path)
    assert float(re.search(r"MMCS to the true features: ([\d.]+)", out)[1]) > 0.9


def test_sae_vs_dictionary_writes_the_report_and_ranks_the_families(tmp_path):
    fvu = _values(_run("plot_sae_vs_dictionary.py", tmp_path), "best held-out FVU")
    assert set(fvu) == {"dl_lasso", "dl_omp", "sae_topk", "sae_relu", "pca"}
    assert fvu["sae_topk"] < fvu["pca"]  # sparse codes beat PCA on toy features
    assert (tmp_path / "compare" / "report.md").is_file()


def test_sparse_word_vectors_keep_similarity(tmp_path):
    out = _run("plot_word_vectors.py", tmp_path)
    zeros = float(re.search(r"zeros in the sparse vectors: ([\d.]+)%", out)[1])
    ws = _values(out, "WS-353 Spearman")
    assert zeros > 85 and ws["sparse"] > ws["dense"] - 0.05


def test_sae_on_minilm_activations_reconstructs_held_out_tokens(tmp_path):
    out = _run("plot_sae_activations.py", tmp_path)
    assert "6000 tokens of width 384" in out
    held = _values(out, "held-out")
    assert held["L0"] == 16.0  # TopK: exactly k active latents per token
    assert held["FVU"] < 0.7  # far better than the mean (FVU 1)
