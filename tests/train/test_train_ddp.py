"""Data-parallel training with torchrun on CPU (gloo): ranks stay identical, one writer."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent('''
    import os, sys
    import torch
    from edgecn.train import TrainConfig, train

    out, dump, data = sys.argv[1], sys.argv[2], sys.argv[3]
    result = train(TrainConfig(data=data, input_size=8, epochs=2, batch_size=64, seed=5, out_dir=out,
                               overrides={"bottleneck": 2}, max_in_memory_mb=0, workers=1), progress=False)
    rank = int(os.environ["RANK"])
    torch.save({"state": result.model.state_dict(), "top1": result.heldout_top1,
                "history": result.history}, os.path.join(dump, f"rank{rank}.pt"))
''')


@pytest.mark.parametrize("source", ["digits", "streamed folder"])
def test_two_process_ddp_on_cpu(tmp_path, source):
    data = "digits"
    if source == "streamed folder":  # files decoded by one loader worker per rank, each rank its own share
        from test_streaming import write_folder

        data = str(write_folder(tmp_path / "images", per_class=120, side=12))
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(out), str(dump), data], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ranks = [torch.load(dump / f"rank{i}.pt", weights_only=True) for i in range(2)]
    a, b = ranks[0]["state"], ranks[1]["state"]
    masks = [k for k in a if k.endswith(".mask")]
    assert masks and all(int(v) == 3 for k, v in a.items() if k.endswith(".stage"))
    for k in a:  # weights, BN statistics and condensing masks all identical across ranks
        assert torch.equal(a[k], b[k]), k
    # Epoch statistics are all-reduced: both ranks report the same loss and accuracy.
    for h0, h1 in zip(ranks[0]["history"], ranks[1]["history"]):
        assert (h0["loss"], h0["train_top1"]) == (h1["loss"], h1["train_top1"])
        # The held-out split is scored in shares, one per rank, and summed: same score on both.
        assert h0["heldout_top1"] == h1["heldout_top1"] and h0["heldout_top5"] == h1["heldout_top5"]
    # Only rank 0 wrote: exactly the three checkpoints, no leftovers of concurrent writes.
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "final.pt", "last.pt"]
    saved = torch.load(out / "final.pt", weights_only=True)
    assert saved["extra"]["world_size"] == 2
    for k in a:
        assert torch.equal(saved["state_dict"][k], a[k]), k
