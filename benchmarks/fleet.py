"""Federated personalization at fleet scale: BANKING77 over 100 users on Flower's simulation engine.

Users: train.csv split by a Dirichlet rule over labels (for each intent, its texts are
divided among the users in proportions drawn from Dir(alpha), alpha = 0.5; draws repeat until
every user holds at least MIN_TEXTS texts), so each user sees a few intents often and most
never. Each user keeps a fifth of its texts (at least one) as its held-out set. A developer's
seed set of one text per intent (taken out of the users' data) fixes the 77 labels and
calibrates LoRA-SB's frozen factors, as an app would ship them.

Rows (MiniLM-L6, ONNX, the device runner on every client; the head is trained and shared):
  fed_lora_sb    LoRA-SB r=16 on query/value, FedAvg of the shared tensors
  fed_lora       LoRA r=8 on query/value, FedAvg (averaged B and A: not the average update)
  local_only     LoRA-SB, each user alone with the steps it would take in the fleet
  centralized    LoRA-SB, one trainer on the union of the users' training texts, as many steps
                 as the whole fleet takes

Accuracy on test.csv (3,080 texts; for local_only the mean over the first LOCAL_TEST_USERS
users' models) and the mean over users of the accuracy on their own held-out texts; tensor
bytes each way per client per round (the artifact's shared tensors, .npy encoded, as counted
by the server), wall time.

    python benchmarks/fleet.py --data ../shared/data/banking77 [--rounds 30] [--clients-per-round 10]
    python benchmarks/fleet.py --smoke      # the tiny classifier on the demo notes, 6 users, 2 rounds

JSON keys: config, rows (name, adapter, test_accuracy, user_accuracy, bytes_down_per_client,
bytes_up_per_client, shared_values, steps, seconds, rounds), split, environment, smoke.
Writes benchmarks/results/fleet.json and fleet.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import quality  # noqa: E402  (its BANKING77 readers and writers)

from edgetune.fleet.config import held_out_path  # noqa: E402

ALPHA, MIN_TEXTS, HELD_OUT = 0.5, 20, 0.2
LOCAL_TEST_USERS = 10
SB = {"method": "lora_sb", "r": 16, "init_lr": 1e-3, "n_samples": 64, "targets": ["query", "value"]}
LORA = {"method": "lora", "r": 8, "alpha": 16.0, "targets": ["query", "value"]}
LR = {"lora_sb": 5e-3, "lora": 2e-3}  # benchmarks/quality.py's rates for these methods
MODEL, BATCH, SEQ = "minilm", 16, 40


def configure(smoke: bool) -> None:
    global MODEL, BATCH, SEQ, MIN_TEXTS, LOCAL_TEST_USERS, SB, LORA
    if smoke:
        MODEL, BATCH, SEQ, MIN_TEXTS, LOCAL_TEST_USERS = "tiny", 4, 16, 4, 2
        SB, LORA = {**SB, "r": 4, "n_samples": 8}, {**LORA, "r": 2}


def dirichlet_users(rows, n_users: int, alpha: float, seed: int, min_texts: int) -> list[list[int]]:
    """Row indices per user: each label's rows split in Dir(alpha) proportions, redrawn until
    every user holds ``min_texts`` rows."""
    rng = np.random.default_rng(seed)
    labels = np.array([r[1] for r in rows])
    for _ in range(1000):
        users: list[list[int]] = [[] for _ in range(n_users)]
        for lab in sorted(set(labels)):
            idx = rng.permutation(np.flatnonzero(labels == lab))
            cuts = (np.cumsum(rng.dirichlet([alpha] * n_users)) * len(idx)).astype(int)[:-1]
            for u, part in enumerate(np.split(idx, cuts)):
                users[u].extend(part.tolist())
        if min(len(u) for u in users) >= min_texts:
            return [sorted(u) for u in users]
    raise SystemExit(f"no Dirichlet({alpha}) split gives every one of {n_users} users {min_texts} texts")


def split_data(data: Path, work: Path, n_users: int, seed: int) -> dict:
    """seed.csv (one text per label), partitions/<u>.csv + <u>.eval.csv, union.csv; -> facts."""
    rows = quality.read_split(data / "train.csv")
    rng = np.random.default_rng(seed)
    first = {}
    for i in rng.permutation(len(rows)):
        first.setdefault(rows[i][1], int(i))
    seed_idx = set(first.values())
    quality.write_csv(work / "seed.csv", [rows[i] for i in sorted(seed_idx)])
    rest = [r for i, r in enumerate(rows) if i not in seed_idx]
    part = work / "partitions"
    part.mkdir(parents=True, exist_ok=True)
    union, sizes, labels_per_user = [], [], []
    for u, idx in enumerate(dirichlet_users(rest, n_users, ALPHA, seed, MIN_TEXTS)):
        idx = [idx[i] for i in rng.permutation(len(idx))]
        k = max(1, int(round(HELD_OUT * len(idx))))
        quality.write_csv(held_out_path(part / f"{u}.csv"), [rest[i] for i in idx[:k]])
        quality.write_csv(part / f"{u}.csv", [rest[i] for i in idx[k:]])
        union += [rest[i] for i in idx[k:]]
        sizes.append(len(idx) - k)
        labels_per_user.append(len({rest[i][1] for i in idx}))
    quality.write_csv(work / "union.csv", [union[i] for i in rng.permutation(len(union))])
    return {"users": n_users, "alpha": ALPHA, "seed_texts": len(seed_idx), "train_texts": int(sum(sizes)),
            "texts_per_user": {"min": int(min(sizes)), "median": float(np.median(sizes)), "max": int(max(sizes))},
            "labels_per_user": {"min": int(min(labels_per_user)), "median": float(np.median(labels_per_user)),
                                "max": int(max(labels_per_user))}}


def export(adapter: dict, work: Path, name: str) -> tuple[Path, int]:
    """-> (artifact, trainable values that are shared: every param. tensor)."""
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    plan = ClassifierPlan(model=MODEL, adapter=dict(adapter), embedding_rows=0, train_head=True, batch_size=BATCH,
                          seq_len=SEQ, optimizer={"name": "adamw", "lr": LR[adapter["method"]], "weight_decay": 0.0})
    art = work / name
    manifest, _ = export_classifier(plan, work / "seed.csv", art, formats=("onnx",), overwrite=True)
    values = sum(int(np.prod(t.shape)) for t in manifest.state_specs() if t.name.startswith("param."))
    return art, values


class Scorer:
    """Test and held-out accuracy of trainable states of one artifact (one inference program)."""

    def __init__(self, art: Path, data: Path, part: Path, n_users: int, threads: int):
        from device_harness.runner import encode_arrays
        from edgetune.contract import load_manifest

        self.art, self.threads = art, threads
        self.manifest = load_manifest(art, "onnx")
        test_csv = quality.write_csv(part.parent / "test.csv", quality.read_split(data / "test.csv"))
        self.test = encode_arrays(art, self.manifest, test_csv)
        self.held = [encode_arrays(art, self.manifest, held_out_path(part / f"{u}.csv")) for u in range(n_users)]

    def accuracy(self, arrays: dict, state: dict) -> float:
        from device_harness.runner import predict

        logits = predict(self.art, arrays, "onnx", threads=self.threads, manifest=self.manifest, state=state)
        return float((logits.argmax(-1) == arrays["labels"]).mean())

    def users(self, state_of) -> list[float]:
        return [self.accuracy(h, state_of(u)) for u, h in enumerate(self.held)]


def initial_state(art: Path) -> dict:
    from edgetune.contract import load_manifest
    from edgetune.contract.state import resume_or_initial

    return resume_or_initial(art, load_manifest(art, "onnx", verify=False), None)[0]


def state_file(path: Path, art: Path) -> dict:
    from edgetune.contract import load_manifest
    from edgetune.contract.state import load_state

    return load_state(path, load_manifest(art, "onnx", verify=False))[0]


def run_fleet(art: Path, work: Path, a, progress) -> tuple[dict, list[dict], float]:
    """The federated rows: -> (global shared tensors, the server's rounds, seconds)."""
    from safetensors.numpy import load_file

    from edgetune.fleet.local import LocalFleet
    from edgetune.fleet.server import GLOBAL_FILE, ROUNDS_FILE

    out, states = work / "out", work / "states"
    t0 = time.perf_counter()
    with LocalFleet(work / "fleet", simulation=True, num_supernodes=a.users,
                    client_resources={"num-cpus": 1, "num-gpus": 0.0}) as fleet:
        run = fleet.run({"artifact": str(art), "num-rounds": a.rounds, "fraction-train": a.clients_per_round / a.users,
                         "min-clients": a.clients_per_round, "local-steps": a.local_steps, "client-threads": 1,
                         "partitions": str(work.parent / "partitions"), "state-dir": str(states), "out": str(out),
                         "round-timeout": 1800.0}, echo=a.verbose)
    seconds = time.perf_counter() - t0
    if run.returncode != 0 or not (out / GLOBAL_FILE).exists():
        raise RuntimeError(f"flwr run failed ({run.returncode}); log: {fleet.logs / 'flwr-run.log'}\n{run.stdout[-2000:]}")
    rounds = json.loads((out / ROUNDS_FILE).read_text())
    progress(f"{art.name}: {a.rounds} rounds in {seconds:.0f} s")
    return load_file(out / GLOBAL_FILE), rounds, seconds


def train_alone(art: Path, data: Path, steps: int, state: Path, lr: float, threads: int) -> None:
    from device_harness.runner import Trainer

    tr = Trainer(art, "onnx", state, threads)
    for _ in tr.train(data, steps, lr=lr, seed=0, save_every=0, schedule="constant"):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="directory with train.csv and test.csv (text,category)")
    ap.add_argument("--smoke", action="store_true", help="the tiny classifier on the demo notes, 6 users, 2 rounds")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--clients-per-round", type=int, default=10)
    ap.add_argument("--local-steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", nargs="+", default=["fed_lora_sb", "fed_lora", "local_only", "centralized"],
                    choices=["fed_lora_sb", "fed_lora", "local_only", "centralized"])
    ap.add_argument("--threads", type=int, default=2, help="threads of the single-process rows and of scoring")
    ap.add_argument("--verbose", action="store_true", help="print Flower's log of each federated run")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    configure(a.smoke)
    a.out = a.out or common.default_out("fleet", a.smoke)
    if a.smoke:
        a.data = common.smoke_classification(Path(tempfile.mkdtemp(prefix="fleet_smoke.")))
        a.users, a.rounds, a.clients_per_round, a.local_steps = 6, 2, 3, 2
    data = common.require(a.data, "BANKING77 (train.csv, test.csv)")
    work = Path(tempfile.mkdtemp(prefix="fleet."))
    say = lambda m: print(m, flush=True)  # noqa: E731
    split = split_data(data, work, a.users, a.seed)
    say(f"split: {json.dumps(split)}")
    steps_per_user = max(1, round(a.rounds * a.clients_per_round / a.users * a.local_steps))
    fleet_steps = a.rounds * a.clients_per_round * a.local_steps
    arts = {}
    for m, adapter in (("lora_sb", SB), ("lora", LORA)):
        if m == "lora" and "fed_lora" not in a.rows:
            continue
        t0 = time.perf_counter()
        arts[m] = export(adapter, work, m)
        say(f"exported {m} ({arts[m][1]} shared values) in {time.perf_counter() - t0:.0f} s")
    scorers = {m: Scorer(art, data, work / "partitions", a.users, a.threads) for m, (art, _) in arts.items()}
    rows = []
    for name in a.rows:
        m = "lora" if name == "fed_lora" else "lora_sb"
        art, values = arts[m]
        sc, init = scorers[m], initial_state(art)
        d = work / name
        d.mkdir()
        row = {"name": name, "adapter": SB if m == "lora_sb" else LORA, "shared_values": values, "lr": LR[m]}
        t0 = time.perf_counter()
        if name.startswith("fed_"):
            shared, rounds, _ = run_fleet(art, d, a, say)
            state = {**init, **shared}
            row.update(test_accuracy=sc.accuracy(sc.test, state), user_accuracy=float(np.mean(sc.users(lambda u: state))),
                       steps=fleet_steps, rounds=rounds,
                       bytes_down_per_client=int(np.mean([r["bytes_down_per_client"] for r in rounds])),
                       bytes_up_per_client=int(np.mean([r["bytes_up_per_client"] for r in rounds])))
        elif name == "local_only":
            for u in range(a.users):
                train_alone(art, work / "partitions" / f"{u}.csv", steps_per_user, d / f"{u}.safetensors", LR[m], a.threads)
            mine = lambda u: state_file(d / f"{u}.safetensors", art)  # noqa: E731
            row.update(test_accuracy=float(np.mean([sc.accuracy(sc.test, mine(u)) for u in range(LOCAL_TEST_USERS)])),
                       user_accuracy=float(np.mean(sc.users(mine))), steps=steps_per_user * a.users,
                       bytes_down_per_client=0, bytes_up_per_client=0)
        else:
            train_alone(art, work / "union.csv", fleet_steps, d / "central.safetensors", LR[m], a.threads)
            state = state_file(d / "central.safetensors", art)
            row.update(test_accuracy=sc.accuracy(sc.test, state), user_accuracy=float(np.mean(sc.users(lambda u: state))),
                       steps=fleet_steps, bytes_down_per_client=0, bytes_up_per_client=0)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        say(f"{name}: test {100 * row['test_accuracy']:.2f}%, users' held-out {100 * row['user_accuracy']:.2f}%, "
            f"{row['bytes_up_per_client']} B up per client per round, {row['seconds']:.0f} s")
    config = {"model": MODEL, "batch": BATCH, "seq": SEQ, "users": a.users, "rounds": a.rounds,
              "clients_per_round": a.clients_per_round, "local_steps": a.local_steps, "steps_per_user_alone": steps_per_user,
              "strategy": "fedavg (weighted by training texts)", "client_schedule": "constant", "runtime": "onnx",
              "client_threads": 1, "engine": "flower simulation (ray), 1 CPU per client"}
    result = {"config": config, "split": split, "rows": rows}
    common.write_json(a.out, result, a.threads, a.smoke)
    print_table(rows)
    plot(rows, a.out.with_suffix(".png"))


def print_table(rows: list[dict]) -> None:
    by = {r["name"]: r for r in rows}
    central = by.get("centralized", {}).get("test_accuracy")
    lora_up = by.get("fed_lora", {}).get("bytes_up_per_client")
    print("| row | test acc | vs centralized (points) | users' held-out acc | bytes up/client/round | x fewer than LoRA | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        dc = f"{100 * (r['test_accuracy'] - central):+.2f}" if central is not None else "-"
        ratio = f"{lora_up / r['bytes_up_per_client']:.1f}" if lora_up and r["bytes_up_per_client"] else "-"
        print(f"| {r['name']} | {100 * r['test_accuracy']:.2f} | {dc} | {100 * r['user_accuracy']:.2f} | "
              f"{r['bytes_up_per_client']} | {ratio} | {r['seconds']:.0f} |")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    ax1.bar(x - 0.2, [100 * r["test_accuracy"] for r in rows], 0.4, label="test.csv")
    ax1.bar(x + 0.2, [100 * r["user_accuracy"] for r in rows], 0.4, label="users' held-out")
    ax1.set_xticks(x, names, rotation=20)
    ax1.set_ylabel("accuracy (%)")
    ax1.legend()
    fed = [r for r in rows if r.get("rounds")]
    ax2.bar([r["name"] for r in fed], [r["bytes_up_per_client"] / 1024 for r in fed])
    ax2.set_ylabel("KiB up per client per round")
    ax2.set_yscale("log")
    fig.suptitle("BANKING77 over 100 users (Dirichlet 0.5): federated vs alone vs centralized")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
