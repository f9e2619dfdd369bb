import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli.main import app
from keel.guardrails.review import ReviewItem, ReviewQueue
from keel.store import SQLiteStore
from keel.store._migrations import MIGRATIONS

runner = CliRunner()


def keel(*args: str, columns: int = 200):
    return runner.invoke(app, list(args), env={"COLUMNS": str(columns)})


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "keel.db")


def add(db: str, *, run_id: str = "run-1", priority: int = 0, action: str = "refund", reason: str = "severe") -> str:
    store = SQLiteStore(db)
    try:
        item = ReviewQueue(store).add_sync(
            run_id=run_id,
            agent="support",
            reason=reason,
            action=action,
            arguments={"order_id": "1234", "amount": 20.0},
            priority=priority,
        )
    finally:
        store.close()
    return item.id


def stored(db: str, review_id: str) -> ReviewItem:
    store = SQLiteStore(db, create=False)
    try:
        return ReviewQueue(store).get_sync(review_id)
    finally:
        store.close()


def test_list_shows_pending_items_by_priority_with_how_to_decide(db: str):
    low = add(db, run_id="run-low", reason="low confidence 0.42")
    high = add(db, run_id="run-high", priority=5, reason="refund is severity high")

    result = keel("review", "list", "--store", db)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index(high) < out.index(low)
    assert "run-high" in out and "refund(order_id='1234', amount=20.0)" in out and "low confidence 0.42" in out
    assert f"decide with: keel review approve REVIEW_ID --by NAME (or deny) --store {db}" in out


def test_list_on_a_narrow_terminal_keeps_ids_and_actions_whole(db: str):
    review_id = add(db, run_id="run-0123456789abcdef")

    out = keel("review", "list", "--store", db, columns=80).stdout

    assert review_id in out and "run-0123456789abcdef" in out and "refund(order_id=" in out
    assert "agent and reason shown from 120 columns on" in out


def test_list_filters_by_status_and_run(db: str):
    decided, waiting, elsewhere = add(db), add(db), add(db, run_id="run-2")
    assert keel("review", "deny", decided, "--by", "bob", "--store", db).exit_code == 0

    pending = keel("review", "list", "--store", db).stdout
    assert waiting in pending and elsewhere in pending and decided not in pending

    everything = keel("review", "list", "--status", "all", "--store", db).stdout
    assert all(review_id in everything for review_id in (decided, waiting, elsewhere))
    assert "denied" in everything and "bob" in everything

    denied = keel("review", "list", "--status", "denied", "--store", db).stdout
    assert decided in denied and waiting not in denied

    of_run = keel("review", "list", "--status", "all", "--run", "run-2", "--store", db).stdout
    assert elsewhere in of_run and waiting not in of_run

    none = keel("review", "list", "--run", "run-9", "--store", db)
    assert (
        none.exit_code == 0 and f"no pending review items for run run-9 in the store at sqlite:///{db}" in none.stdout
    )

    bad = keel("review", "list", "--status", "done", "--store", db)
    assert bad.exit_code == 2 and "'done' is not one of" in bad.output


def test_reading_commands_never_create_a_store(db: str):
    listed = keel("review", "list", "--store", db)
    assert listed.exit_code == 0 and f"no review items (no store at {db})" in listed.stdout

    shown = keel("review", "show", "rev-000000000000", "--store", db)
    assert shown.exit_code == 2 and "no store at" in shown.output

    assert not Path(db).exists()


def test_show_gives_the_whole_item_and_how_to_decide_it(db: str):
    review_id = add(db, priority=2, reason="refund is severity high")

    result = keel("review", "show", review_id, "--store", db)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{review_id}  pending  priority 2" in out
    assert "run:       run-1 (support)" in out and "reason:    refund is severity high" in out
    assert '"order_id": "1234"' in out and '"amount": 20.0' in out
    assert f"decide with: keel review approve {review_id} --by NAME (or deny) --store {db}" in out


def test_approve_says_what_was_decided_and_how_to_resume(db: str):
    review_id = add(db)

    result = keel("review", "approve", review_id, "--by", "alice", "--note", "customer verified", "--store", db)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert (
        f"approved {review_id} — refund(order_id='1234', amount=20.0) in run run-1, by alice: customer verified" in out
    )
    assert f"resume with: keel resume run-1 --store {db}" in out
    item = stored(db, review_id)
    assert (item.status, item.decided_by, item.note) == ("approved", "alice", "customer verified")

    shown = keel("review", "show", review_id, "--store", db).stdout
    assert "decided:   approved by alice at " in shown and ": customer verified" in shown
    assert f"resume with: keel resume run-1 --store {db}" in shown


def test_deny_is_recorded_the_same_way(db: str):
    review_id = add(db)

    result = keel("review", "deny", review_id, "--by", "bob", "--store", db)

    assert result.exit_code == 0, result.output
    assert f"denied {review_id}" in result.stdout and "resume with: keel resume run-1" in result.stdout
    assert (stored(db, review_id).status, stored(db, review_id).decided_by) == ("denied", "bob")


@pytest.mark.parametrize(("second", "verb"), [("approve", "approved"), ("deny", "denied")])
def test_deciding_twice_is_a_usage_error_naming_the_first_decision(db: str, second: str, verb: str):
    review_id = add(db)
    assert keel("review", "approve", review_id, "--by", "alice", "--note", "ok", "--store", db).exit_code == 0

    again = keel("review", second, review_id, "--by", "mallory", "--store", db)

    assert again.exit_code == 2
    message = " ".join(again.output.split())  # the error may be wrapped at the console width
    assert f"review item {review_id} was already approved by alice at " in message
    assert f"(note: ok); it cannot be {verb} now" in message
    assert stored(db, review_id).decided_by == "alice"


def test_an_unknown_id_is_a_usage_error(db: str):
    add(db)
    for args in (("show", "rev-nope"), ("approve", "rev-nope", "--by", "alice"), ("deny", "rev-nope", "--by", "a")):
        result = keel("review", *args, "--store", db)
        assert result.exit_code == 2, args
        assert "no review item 'rev-nope'" in result.output


def test_a_decision_needs_a_name(db: str):
    review_id = add(db)

    missing = keel("review", "approve", review_id, "--store", db)
    assert missing.exit_code == 2 and "--by" in missing.output

    blank = keel("review", "approve", review_id, "--by", " ", "--store", db)
    assert blank.exit_code == 2 and "`by` must be a non-empty name" in blank.output
    assert stored(db, review_id).status == "pending"


def test_deciding_in_a_store_that_does_not_exist_creates_none(db: str):
    result = keel("review", "approve", "rev-000000000000", "--by", "alice", "--store", db)

    assert result.exit_code == 2 and "no store at" in result.output
    assert not Path(db).exists()


def test_deciding_in_a_store_of_the_previous_schema_migrates_it(db: str):
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0])
    conn.executescript(MIGRATIONS[1])
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()

    result = keel("review", "approve", "rev-000000000000", "--by", "alice", "--store", db)

    assert result.exit_code == 2 and "no review item 'rev-000000000000'" in result.output
    assert keel("review", "list", "--store", db).exit_code == 0  # migrated: the read-only list works now


def test_review_commands_show_personal_data_and_secrets_redacted_and_keep_them_in_the_queue(db: str):
    """Found by bench/attack.py: `keel review list|show|approve` printed a paused call's arguments and reason in
    clear (an IBAN, a card number, an API key), while the dashboard showed the same item redacted."""
    secrets = {"iban": "GB82 WEST 1234 5698 7654 32", "card": "4539 1488 0343 6467", "key": "AKIAZ7QW3ERTY5UIOP2A"}
    store = SQLiteStore(db)
    try:
        item = ReviewQueue(store).add_sync(
            run_id="run-1", agent="payer", reason=f"pay to {secrets['iban']}", action="pay", arguments=secrets
        )
    finally:
        store.close()

    shown = [
        keel("review", "list", "--store", db),
        keel("review", "show", item.id, "--store", db),
        keel("review", "approve", item.id, "--by", "alice", "--note", f"ok for {secrets['card']}", "--store", db),
        keel("review", "list", "--status", "all", "--store", db),
    ]

    for result in shown:
        assert result.exit_code == 0, result.output
        assert not any(value in result.output for value in secrets.values()), result.output
    assert "[iban]" in shown[1].output and "[payment_card]" in shown[1].output
    assert stored(db, item.id).arguments == secrets, "the queue keeps what the resumed run needs"
