"""The demo's personalization data: one person's notes, filed into their own folders.

Generated from templates with a fixed seed, so every install writes the same
files. The folders are personal ("Maya" is the user's sister, "the shed" is a
side project), so a generic model cannot know them: it must learn from the
user's examples.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

LABELS = ["family", "shed_project", "running", "work", "money"]

_TEMPLATES = {
    "family": [
        "call {who} about {what}", "{who} wants to come over {when}", "remember {who}'s {event}",
        "pick up {who} from {place} {when}", "send {who} the photos from {event}",
        "ask {who} if {what} is still on",
    ],
    "shed_project": [
        "buy {material} for the shed", "the shed roof needs {material}", "measure the {part} before ordering {material}",
        "sand the {part} {when}", "paint the shed {part}", "check if {material} fits the {part}",
    ],
    "running": [
        "run {dist} {when}", "tempo session: {dist} at race pace", "new shoes for the {race}",
        "stretch after the {dist} run", "sign up for the {race}", "easy {dist} recovery jog {when}",
    ],
    "work": [
        "prepare slides for the {meeting}", "email {colleague} about the {doc}", "review the {doc} before the {meeting}",
        "book a room for the {meeting} {when}", "{colleague} needs feedback on the {doc}", "finish the {doc} draft",
    ],
    "money": [
        "pay the {bill} bill", "transfer {amount} to savings", "the {bill} bill went up by {amount}",
        "check the bank statement for {amount}", "cancel the {bill} subscription", "budget {amount} for {what}",
    ],
}
_SLOTS = {
    "who": ["Maya", "mum", "dad", "grandma", "uncle Joe", "the twins"],
    "what": ["the birthday dinner", "the weekend plans", "the holiday", "the new flat", "Sunday lunch"],
    "when": ["tomorrow", "on Saturday", "next week", "tonight", "on Friday morning", "after lunch"],
    "event": ["birthday", "anniversary", "graduation", "wedding", "christening"],
    "place": ["school", "the station", "the airport", "football practice", "the dentist"],
    "material": ["plywood", "roofing felt", "wood screws", "varnish", "timber battens", "hinges"],
    "part": ["door", "window frame", "floor", "roof", "shelves", "back wall"],
    "dist": ["5k", "10k", "8 miles", "half marathon distance", "12k", "3 miles"],
    "race": ["city marathon", "parkrun", "trail race", "charity 10k", "relay"],
    "meeting": ["quarterly review", "team standup", "client call", "planning meeting", "board update"],
    "colleague": ["Priya", "Tom", "the manager", "HR", "the new intern"],
    "doc": ["budget report", "project plan", "design doc", "proposal", "contract"],
    "bill": ["electricity", "phone", "internet", "gym", "water", "streaming"],
    "amount": ["20 pounds", "150 pounds", "a hundred", "50 quid", "300 pounds"],
}


def generate(n_per_label: int, seed: int) -> list[tuple[str, str]]:
    """``n_per_label`` distinct (text, label) pairs per label."""
    rng = random.Random(seed)
    out = []
    for label in LABELS:
        seen: set[str] = set()
        while len(seen) < n_per_label:
            t = rng.choice(_TEMPLATES[label])
            seen.add(t.format(**{k: rng.choice(v) for k, v in _SLOTS.items()}))
        out += [(text, label) for text in sorted(seen)]
    rng.shuffle(out)
    return out


def write_demo_data(directory: str | Path, n_train: int = 32, n_test: int = 24) -> tuple[Path, Path]:
    """Write ``train.csv`` and ``test.csv`` (text,label; disjoint texts) -> their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rows = generate(n_train + n_test, seed=7)
    per = {l: [r for r in rows if r[1] == l] for l in LABELS}
    train = [r for l in LABELS for r in per[l][:n_train]]
    test = [r for l in LABELS for r in per[l][n_train:]]
    random.Random(1).shuffle(train)
    paths = []
    for name, part in (("train.csv", train), ("test.csv", test)):
        with (d / name).open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(part)
        paths.append(d / name)
    return paths[0], paths[1]


def write_demo_text(directory: str | Path, n_train: int = 48, n_test: int = 16) -> tuple[Path, Path]:
    """The same person's notes as running text, one per line, for the language-model demo:
    ``notes_train.txt`` and ``notes_held_out.txt`` (disjoint notes) -> their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rows = generate(n_train + n_test, seed=11)
    per = {l: [t for t, lab in rows if lab == l] for l in LABELS}
    train = [t for l in LABELS for t in per[l][:n_train]]
    test = [t for l in LABELS for t in per[l][n_train:]]
    random.Random(2).shuffle(train)
    random.Random(3).shuffle(test)
    paths = []
    for name, part in (("notes_train.txt", train), ("notes_held_out.txt", test)):
        (d / name).write_text("\n".join(part) + "\n", encoding="utf-8")
        paths.append(d / name)
    return paths[0], paths[1]
