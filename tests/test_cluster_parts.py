"""The parts of `batch --cluster` that need no cluster (and no ray): the arguments and
the install hint, which image goes next (`Schedule`), and each output written once
(`ClaimedWrite`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sidecar.batch import Recipe, SessionPrior
from sidecar.cache.atomic import TEMP_PREFIX
from sidecar.cli import main
from sidecar.cluster import ClusterAddress, Done, Item, Schedule, parse_address
from sidecar.cluster.claims import ClaimedWrite, claim_path, clear_leftovers


def test_without_ray_cluster_exits_2_with_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    (tmp_path / "in").mkdir()
    argv = ["batch", str(tmp_path / "in"), str(tmp_path / "out"), "--op", "beauty"]
    assert main([*argv, "--cluster", "local[2]"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retouch-sidecar: --cluster needs ray")
    assert "pip install -e '.[cluster]'" in lines[0]
    assert "Traceback" not in captured.err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "value, message",
    [
        ("local[0]", "N is 1 to 256"),
        ("local", "expected auto, local[N] or HOST:PORT"),
        ("ray://head:10001", "Ray Client addresses are not taken"),
        ("head:99999", "expected auto"),
    ],
)
def test_a_bad_cluster_address_exits_2(tmp_path, capsys, value, message):
    (tmp_path / "in").mkdir()
    argv = ["batch", str(tmp_path / "in"), str(tmp_path / "out"), "--op", "beauty"]
    assert main([*argv, "--cluster", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cluster_addresses():
    assert parse_address("auto") == ClusterAddress("auto")
    assert parse_address("local[4]") == ClusterAddress("local", 4)
    assert str(parse_address("local[4]")) == "local[4]"
    assert parse_address("10.0.0.5:6379") == ClusterAddress("10.0.0.5:6379")
    assert parse_address("head-node.studio.lan:6379").address == "head-node.studio.lan:6379"
    assert parse_address("[fd00::5]:6379").address == "[fd00::5]:6379"


# -- which image next -------------------------------------------------------------------
def items(count: int) -> list[Item]:
    return [Item(i, f"f{i}.png", Path(f"in/f{i}.png"), Path(f"out/f{i}.png")) for i in range(count)]


def done(name: str, *, decoded: bool = True, tone=None, tone_failed=False) -> Done:
    return Done(name, "done", decoded=decoded, tone=tone, tone_failed=tone_failed)


def test_images_go_out_in_the_plans_order_and_a_lost_one_goes_first_again():
    schedule = Schedule(items(3), "run", max_attempts=2)
    first, second = schedule.next(), schedule.next()
    assert (first.item.name, second.item.name) == ("f0.png", "f1.png")
    assert schedule.lost(first, "its worker died") is None
    again = schedule.next()
    assert (again.item.name, again.attempt) == ("f0.png", 2)
    assert schedule.next().item.name == "f2.png" and schedule.next() is None
    ended = schedule.lost(again, "its worker died")
    assert ended.code == "worker_lost" and "2 workers died on it" in ended.message
    schedule.finished(second, done("f1.png"))
    assert not schedule.complete
    assert [d.name for d in schedule.abandon("no_workers", "none left")] == ["f2.png"]
    assert schedule.complete


def test_color_sends_the_rest_once_the_first_five_tones_are_in_with_their_mean():
    prior = SessionPrior(Recipe("color"))
    schedule = Schedule(items(8), "run", prior)
    learners = [schedule.next() for _ in range(5)]
    assert all(o.measure_tone and o.prior == {} for o in learners)
    assert schedule.next() is None  # the rest wait for the five tones
    schedule.finished(learners[1], done("f1.png", decoded=False))  # unreadable: not counted
    sixth = schedule.next()
    assert sixth.item.name == "f5.png" and sixth.measure_tone and schedule.next() is None
    tones = {0: (10.0, 20.0), 2: (12.0, 22.0), 3: None, 4: (14.0, 21.0), 5: (11.0, 19.0)}
    for order in reversed([*learners[:1], *learners[2:], sixth]):  # answers in any order
        index = order.item.index
        schedule.finished(order, done(order.item.name, tone=tones[index]))
    rest = [schedule.next(), schedule.next()]
    a = sum(t[0] for t in (tones[0], tones[2], tones[4], tones[5])) / 4
    assert [o.item.name for o in rest] == ["f6.png", "f7.png"]
    assert rest[0].prior == {"prior_a": round(a, 3), "prior_b": 20.5} == rest[1].prior
    assert not rest[0].measure_tone


def test_a_tone_that_cannot_be_measured_leaves_the_shoot_without_a_prior():
    prior = SessionPrior(Recipe("color"))
    schedule = Schedule(items(7), "run", prior)
    learners = [schedule.next() for _ in range(5)]
    schedule.finished(learners[2], done("f2.png", tone_failed=True))
    assert not schedule.learning
    assert [schedule.next().prior for _ in range(2)] == [{}, {}]


def test_no_prior_for_other_ops_or_an_explicit_one():
    for recipe in (Recipe("beauty"), Recipe("color", params={"prior_a": 12.0})):
        schedule = Schedule(items(7), "run", SessionPrior(recipe))
        orders = [schedule.next() for _ in range(7)]
        assert all(o.prior == {} and not o.measure_tone for o in orders)


# -- each output written once -------------------------------------------------------------
@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "in.png").write_bytes(b"input")
    os.utime(tmp_path / "in.png", ns=(1_000_000_000, 1_000_000_000))
    return tmp_path


def test_the_first_attempt_claims_and_renames(folder):
    target = folder / "out.png"
    write = ClaimedWrite("run1", 1, folder / "in.png")
    write(target, [b"result"])
    assert write.replaced is True and target.read_bytes() == b"result"
    assert claim_path(target, "run1").read_text().startswith("attempt 1, pid ")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["in.png", "out.png", f"{TEMP_PREFIX}out.png.run1.claim"]
    )


def test_a_retry_after_the_rename_writes_nothing(folder):
    target = folder / "out.png"
    ClaimedWrite("run1", 1, folder / "in.png")(target, [b"result"])
    inode = target.stat().st_ino
    retry = ClaimedWrite("run1", 2, folder / "in.png")
    retry(target, [b"result"])
    assert retry.replaced is False and target.stat().st_ino == inode


def test_a_retry_after_a_claim_without_rename_writes_it(folder):
    target = folder / "out.png"
    target.write_bytes(b"an older run's output")
    os.utime(target, ns=(2_000_000_000, 2_000_000_000))  # newer than the input
    claim_path(target, "run1").write_text("attempt 1 (died before its rename)\n")
    retry = ClaimedWrite("run1", 2, folder / "in.png")
    retry(target, [b"result"])
    assert retry.replaced is True and target.read_bytes() == b"result"


def test_a_failed_write_leaves_no_temp_and_leftovers_are_cleared(folder):
    target = folder / "out.png"

    def broken():
        yield b"half"
        raise OSError("disk full")

    with pytest.raises(OSError):
        ClaimedWrite("run1", 1, folder / "in.png")(target, broken())
    assert sorted(p.name for p in folder.iterdir()) == ["in.png"]
    claim_path(target, "run1").write_text("attempt 1\n")
    (folder / f"{TEMP_PREFIX}out.png.deadbeef").write_bytes(b"a killed worker's temp")
    assert clear_leftovers([target]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["in.png"]


# -- the progress ---------------------------------------------------------------------------
def test_the_display_shows_each_worker_its_load_and_the_rate():
    import io

    from rich.console import Console

    from sidecar.batch.cluster_display import ClusterDisplay
    from sidecar.batch.report import Outcome
    from sidecar.cluster import Ended, Placed, Resent, Sent, WorkerDown, WorkerUp

    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    display = ClusterDisplay(3, console)
    with display:
        display.cluster_event(Placed("local[2]", 2, "1 CPU", 1))
        for number in (1, 2):
            display.cluster_event(WorkerUp(number, "10.0.0.5", 100 + number))
        display.cluster_event(Sent(1, "a.png", 1))
        display.cluster_event(Sent(2, "b.png", 1))
        display.cluster_event(WorkerDown(2, "its worker's process or node was lost", False))
        display.cluster_event(Resent(2, "b.png", 2, "its worker's process or node was lost"))
        for name in ("a.png", "b.png", "c.png"):
            display.cluster_event(Sent(1, name, 1))
            display.cluster_event(Ended(1, Done(name, "done")))
            display.finished(Outcome(name, "done"))
    text = console.file.getvalue()
    assert "cluster: local[2], 1 node, 2 workers of 1 CPU" in text
    assert "worker 2: restarting (its worker's process or node was lost)" in text
    assert "resent   b.png: its worker's process or node was lost (worker 2); attempt 2" in text
    assert "worker 1 (10.0.0.5, pid 101)" in text and "images/s" in text
    line = display.rate_line()
    assert line.startswith("cluster: 3 images in ") and "(workers 1: 3 images, " in line
    assert "2: 0 images, " in line
