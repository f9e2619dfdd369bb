"""Build the fresh injection evaluation set (fresh.jsonl) from public sources neither tune nor holdout draws on.

Nothing is tuned or trained on this set: it was built after the rules and the classifier were fixed, to estimate
how the screen fares on text from other hands. It reads the repositories in ``COMMITS`` as bare git directories
(``git --git-dir=… show COMMIT:path``) under ``--mirrors`` (``owner+name/repo``) and runs none of their code.
Labels are the sources' own: PurpleLlama's prompt-injection tests are attacks (their ``injection_type`` says
direct or indirect), MT-bench and Vicuna-bench questions are benign user prompts. Texts already in tune.jsonl or
holdout.jsonl (exactly) are left out. Same row format as ``build.py``.

    python bench/data/injection/build_fresh.py --mirrors /work/.mirror
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent

COMMITS = {
    "meta-llama/PurpleLlama": "4be64c3a24442b51c76175e6ec67722cc3f5fe38",
    "lm-sys/FastChat": "0e6d3e4beaab66f4d3f93db72541a4abab8af28d",
}
PURPLE = "CybersecurityBenchmarks/datasets/prompt_injection/"
MT_BENCH = "fastchat/llm_judge/data/mt_bench/question.jsonl"
VICUNA = "fastchat/llm_judge/data/vicuna_bench/question.jsonl"
TRANSLATED = 250

Row = dict[str, str]


def show(mirrors: Path, repo: str, path: str) -> str:
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    command = ["git", f"--git-dir={git_dir}", "show", f"{COMMITS[repo]}:{path}"]
    return subprocess.run(command, check=True, capture_output=True).stdout.decode("utf-8")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def row(label: str, kind: str, family: str, source: str, group: str, text: str) -> Row:
    return {"label": label, "kind": kind, "family": family, "source": source, "group": group, "text": text}


def purple_llama(mirrors: Path) -> list[Row]:
    """Each English test's user input, and that of 250 of the 1,004 machine-translated tests (chosen by hash).

    The system prompt (``test_case_prompt``) is the operator's and not screened; the user input is the attack. An
    indirect test's user input is a request wrapping the submitted content (a web page, code, an email) that
    carries the injection, so it is screened as a tool output would be.
    """
    repo = "meta-llama/PurpleLlama"
    rows = []
    english_path = PURPLE + "prompt_injection.json"
    for test in json.loads(show(mirrors, repo, english_path)):
        group = f"purplellama:{test['prompt_id']}"
        rows.append(
            row("attack", test["injection_type"], "purplellama_en", f"{repo}:{english_path}", group, test["user_input"])
        )
    translated_path = PURPLE + "prompt_injection_multilingual_machine_translated.json"
    translated = json.loads(show(mirrors, repo, translated_path))
    # As many as the English tests, so the kind table is not mostly machine translation.
    chosen = sorted(translated, key=lambda t: digest(f"fresh:{t['prompt_id']}:{t['user_input']}"))[:TRANSLATED]
    for test in sorted(chosen, key=lambda t: int(t["prompt_id"])):
        group = f"purplellama_translated:{test['prompt_id']}"
        source = f"{repo}:{translated_path}"
        rows.append(row("attack", test["injection_type"], "purplellama_translated", source, group, test["user_input"]))
    return rows


def fastchat_questions(mirrors: Path) -> list[Row]:
    """Every turn of every MT-bench and Vicuna-bench question (second turns say "your previous response")."""
    repo = "lm-sys/FastChat"
    rows = []
    for family, path in (("mt_bench", MT_BENCH), ("vicuna_bench", VICUNA)):
        for line in show(mirrors, repo, path).splitlines():
            question = json.loads(line)
            group = f"{family}:{question['category']}"
            for turn in question["turns"]:
                rows.append(row("benign", "user_prompt", family, f"{repo}:{path}", group, turn))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=Path, required=True, help="directory of owner+name/repo bare git dirs")
    mirrors = parser.parse_args().mirrors
    used = set()
    for split in ("tune", "holdout"):
        with (OUT / f"{split}.jsonl").open(encoding="utf-8") as file:
            used.update(json.loads(line)["text"] for line in file)
    seen: set[str] = set()
    rows = []
    dropped = Counter[str]()
    for sample in purple_llama(mirrors) + fastchat_questions(mirrors):
        text = sample["text"]
        if not text.strip() or text in used or text in seen:
            dropped[sample["family"]] += 1
            continue
        seen.add(text)
        rows.append({"id": digest(text)[:12], **sample})
    rows.sort(key=lambda r: (r["label"], r["kind"], r["family"], r["text"]))
    with (OUT / "fresh.jsonl").open("w", encoding="utf-8") as file:
        for r in rows:
            file.write(json.dumps(r, ensure_ascii=False) + "\n")
    for key, count in sorted(Counter((r["label"], r["kind"], r["family"]) for r in rows).items()):
        print(*key, count)
    print("dropped (empty, duplicate, or already in tune/holdout):", dict(dropped))


if __name__ == "__main__":
    main()
