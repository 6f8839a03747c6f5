"""scripts/bench.py's statistics, scheduling and tables (pure; no root)."""

from collections import Counter

import pytest

from tests.test_bench_tmp import load_bench

bench = load_bench()


@pytest.mark.parametrize("repeats", [1, 3, 5])
def test_schedule_runs_every_job_once_per_round(repeats):
    jobs = ["none", "json", "tui", "aggregate"]
    plan = bench.schedule(jobs, repeats, seed=1)
    assert Counter(job for _, job in plan) == {job: repeats for job in jobs}
    for round_ in range(repeats):  # interleaved: round r holds each job exactly once
        assert sorted(job for r, job in plan if r == round_) == sorted(jobs)
    assert [r for r, _ in plan] == sorted(r for r, _ in plan)  # rounds run one after another


def test_schedule_changes_who_goes_first():
    jobs = ["none", "json", "tui"]
    for seed in range(50):
        plan = bench.schedule(jobs, 6, seed=seed)
        firsts = [plan[i * len(jobs)][1] for i in range(6)]
        assert all(a != b for a, b in zip(firsts, firsts[1:])), (seed, firsts)
    # over many seeds, "none" is not always first (nor always anywhere in particular)
    positions = {bench.schedule(jobs, 1, seed=s)[0][1] for s in range(50)}
    assert positions == set(jobs)


def test_schedule_single_job_and_empty():
    assert bench.schedule(["a"], 3) == [(0, "a"), (1, "a"), (2, "a")]
    assert bench.schedule([], 3) == []


def test_spread_and_format():
    assert bench.spread([3, 1, 2]) == (2, 1, 3)
    assert bench.spread([4, 1, 2, 3]) == (2.5, 1, 4)  # median of an even count
    assert bench.spread([None, 5]) == (5, 5, 5)
    assert bench.spread([]) is None
    assert bench.fmt_spread([120.4, 98.2, 101.0]) == "101 (98-120)"
    assert bench.fmt_spread([2.0, 2.0, 2.0], "{:.1f}") == "2.0"
    assert bench.fmt_spread([], missing="-") == "-"
    assert bench.fmt_spread([0.5, 0.25], "{:.0%}") == "38% (25%-50%)"


def test_kept_is_delivered_minus_dropped():
    assert bench.kept_samples(1000, 300) == 700
    assert bench.kept_samples(10, 0) == 10
    assert bench.kept_samples(5, 9) == 0  # never negative


def test_percentile():
    assert bench.percentile([], 0.5) is None
    assert bench.percentile([5, 1, 3], 0.5) == 3
    assert bench.percentile(list(range(100)), 0.99) == 99


def test_summary_parsed_by_words():
    text = ("noise\nSummary: 4852805 samples delivered, 3 lost in the kernel (59 saved by the "
            "rescue buffer), 1756653 dropped in user space\n")
    assert bench.parse_summary(text) == {"delivered": 4852805, "lost": 3, "rescued": 59,
                                         "dropped": 1756653}
    # a counter added in between does not shift the others
    text = ("Summary: 10 samples delivered, 2 lost in the kernel (1 saved by the rescue buffer), "
            "7 shed somewhere, 4 dropped in user space")
    assert bench.parse_summary(text) == {"delivered": 10, "lost": 2, "rescued": 1, "dropped": 4}
    # the kernel's misses: a line of their own after the summary
    text = ("Summary: 10 samples delivered, 0 lost in the kernel (0 saved by the rescue "
            "buffer), 0 dropped in user space\nMissed by the kernel: 12 probe runs skipped\n")
    assert bench.parse_summary(text)["misses"] == 12
    with pytest.raises(RuntimeError):
        bench.parse_summary("ipft-tui: error: boom")


def run(job, round_, **values):
    return {"job": list(job), "round": round_, **values}


def test_tables_use_medians_and_same_round_untraced_rate():
    results = {"machine": "m", "date": "d", "commit": "c",
               "args": {"repeats": 3, "workloads": "udp-veth,udp-loopback", "only": "none,json",
                        "seconds": 3.0, "rate": 0.0, "lag_seconds": 5.0,
                        "idle_seconds": 10.0},
               "runs": [
                   run(("matrix", "udp-veth", "none"), 0, rate=100_000.0),
                   run(("matrix", "udp-veth", "json"), 0, rate=80_000.0, kept_per_s=240_000.0,
                       dropped=0, lost=0, cpu_us_per_kept=1.0, startup_s=1.0, exit_cpu_s=0.1),
                   run(("matrix", "udp-veth", "json"), 1, rate=50_000.0, kept_per_s=150_000.0,
                       dropped=10, lost=0, cpu_us_per_kept=2.0, startup_s=1.2, exit_cpu_s=0.1),
                   run(("matrix", "udp-veth", "none"), 1, rate=50_000.0),
                   run(("matrix", "udp-veth", "json"), 2, rate=90_000.0, kept_per_s=270_000.0,
                       dropped=0, lost=0, cpu_us_per_kept=1.5, startup_s=1.1, exit_cpu_s=0.1),
                   run(("matrix", "udp-veth", "none"), 2, rate=100_000.0),
                   {"job": ["lag", "40k/s", 40000.0], "round": 0, "error": "boom"},
               ]}
    text = bench.render(results)
    json_row = next(line for line in text.splitlines() if line.startswith("| udp-veth | json"))
    cells = [c.strip() for c in json_row.strip("|").split("|")]
    # traffic kept per round: 80%, 100% (50k against that round's 50k), 90%
    assert cells[3] == "90% (80%-100%)"
    assert cells[2] == "80 (50-90)"  # sender k/s
    assert cells[4] == "240 (150-270)"  # samples kept k/s
    assert cells[7] == "1.50 (1.00-2.00)"
    lag_row = next(line for line in text.splitlines() if "40k/s" in line)
    assert "error" in lag_row


def test_a_target_is_met_only_when_every_run_meets_it():
    lag = [run(("lag", "40k/s", 40000.0), i, marker_ms=ms, lost=0, dropped=0)
           for i, ms in enumerate((120.0, 480.0, 650.0))]
    idle = [run(("idle", "live"), i, idle_cpu_pct=pct) for i, pct in enumerate((0.2, 0.4, 0.3))]
    rows = {r[0]: r[1:] for r in bench.target_rows({"runs": lag + idle})}
    assert rows["TUI, 40k packets/s on veth: marker on screen < 500 ms"] == [
        "480 (120-650)", "650", "no"]
    assert rows["TUI, 40k packets/s: 0 lost"][2] == "yes"
    assert rows["TUI, 40k packets/s: 0 dropped or shed by the UI"][2] == "yes"
    lag[1]["shed"] = 5000  # shedding to stay current is dropping too
    rows = {r[0]: r[1:] for r in bench.target_rows({"runs": lag + idle})}
    assert rows["TUI, 40k packets/s: 0 dropped or shed by the UI"][1:] == ["5000", "no"]
    assert rows["idle CPU, live, no traffic: <= 1% of a core"] == ["0.3 (0.2-0.4)", "0.4", "yes"]
    # a marker never shown counts as a miss, not as a missing value
    lag[0]["marker_ms"] = None
    rows = {r[0]: r[1:] for r in bench.target_rows({"runs": lag})}
    assert rows["TUI, 40k packets/s on veth: marker on screen < 500 ms"][1:] == ["inf", "no"]


def test_counts_read_from_the_screen():
    assert bench.shown_count("FOLLOW │ packets 250000 │ lost 0", "packets") == 250_000
    assert bench.shown_count("packets 250,000 (-3 evicted)", "packets") == 250_000
    assert bench.shown_count("packets: 250.0k", "packets") == 250_000
    assert bench.shown_count("samples 1.00M", "samples") == 1_000_000
    assert bench.shown_count("no count here", "packets") is None
