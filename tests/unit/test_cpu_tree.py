"""`tree_cpu_s`: a process tree's CPU from one snapshot of the process table."""

from __future__ import annotations

from simnet.run.cpu_tree import tree_cpu_s

#: 1 -> 10 -> (11, 12 -> 13); 20 alone; 0 is its own parent (as the kernel's idle task)
PARENTS = {0: 0, 1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1}
CPU = {0: 100.0, 1: 5.0, 10: 1.0, 11: 2.0, 12: 0.5, 13: 0.25, 20: 7.0}


def test_a_root_counts_itself_and_every_descendant_once() -> None:
    assert tree_cpu_s([10, 20, 13], PARENTS, CPU) == {10: 3.75, 20: 7.0, 13: 0.25}


def test_a_root_that_has_exited_is_left_out() -> None:
    assert tree_cpu_s([10, 99], PARENTS, CPU) == {10: 3.75}


def test_a_self_parented_pid_and_a_cycle_end() -> None:
    """pid 0 is its own parent; a pid reused while the table was read can make a loop."""
    assert tree_cpu_s([0], {0: 0}, {0: 1.0}) == {0: 1.0}
    assert tree_cpu_s([30], {30: 31, 31: 30}, {30: 1.0, 31: 2.0}) == {30: 3.0}
