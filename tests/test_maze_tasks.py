"""Maze tasks against independent references: the prompt is parsed back into a graph and checked,
the answers are recomputed here by BFS and by a recursive DFS with backtracking."""

from collections import Counter

import numpy as np
import pytest

import lengthgen.tasks.maze  # noqa: F401  (registers the maze tasks)
from lengthgen.errors import UserError
from lengthgen.tasks import TASKS, example_rng, make_task
from lengthgen.vocab import Vocab

from references import bfs_path, node_id, parse_prompt, reference_dfs

NAMES = ("maze_shortest_path", "maze_dfs_trace")


def check_tree(adjacency, size, length):
    nodes = list(adjacency)
    assert nodes == sorted(nodes) and len(nodes) == length
    assert all(1 <= v <= size * size for v in nodes)
    edges = set()
    for v, nbrs in adjacency.items():
        assert len(set(nbrs)) == len(nbrs) and v not in nbrs and nbrs
        for w in nbrs:
            assert v in adjacency[w]  # symmetric
            (r1, c1), (r2, c2) = divmod(v - 1, size), divmod(w - 1, size)
            assert abs(r1 - r2) + abs(c1 - c2) == 1  # grid neighbours
            edges.add(frozenset((v, w)))
    assert len(edges) == length - 1
    seen, todo = {nodes[0]}, [nodes[0]]
    while todo:
        for w in adjacency[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    assert seen == set(nodes)  # connected with length-1 edges: a tree


def check_walk(adjacency, walk, s, t):
    assert walk[0] == s and walk[-1] == t
    assert t not in walk[:-1]
    for a, b in zip(walk, walk[1:]):
        assert b in adjacency[a]


CASES = [(8, 2), (8, 3), (8, 10), (8, 64), (4, 2), (4, 7), (4, 16)]


@pytest.mark.parametrize("neighbor_order", ["sorted", "random"])
@pytest.mark.parametrize("size,length", CASES)
def test_mazes_and_answers_match_references(size, length, neighbor_order):
    vocab = Vocab.default()
    params = {"size": size, "neighbor_order": neighbor_order}
    shortest = make_task("maze_shortest_path", params)
    dfs = make_task("maze_dfs_trace", params)
    rng = np.random.default_rng(size * 1000 + length)
    for task, reference in ((shortest, bfs_path), (dfs, reference_dfs)):
        for ex in task.sample(rng, 40, length):
            adjacency, s, t = parse_prompt(ex.prompt)
            check_tree(adjacency, size, length)
            if neighbor_order == "sorted":
                assert all(nbrs == sorted(nbrs) for nbrs in adjacency.values())
            assert s != t and s in adjacency and t in adjacency
            answer = [node_id(tok) for tok in ex.answer]
            check_walk(adjacency, answer, s, t)
            assert answer == reference(adjacency, s, t)
            path = bfs_path(adjacency, s, t)
            assert ex.meta == {"start": s, "goal": t, "nodes": length, "path_length": len(path)}
            assert ex.length == length and ex.task == task.name
            assert list(ex.positions.as_array()) == list(range(ex.seq_len))
            tokens = [*ex.prompt, *ex.answer]
            ids = vocab.encode(tokens)
            assert len(ids) == len(tokens)
            assert vocab.tokenize("".join(tokens)) == tokens  # the joined text round-trips too


def test_dfs_backtracks_and_random_order_shuffles():
    # Dead ends make the DFS trace longer than the path; random order really reorders lists.
    dfs = make_task("maze_dfs_trace")
    traces_longer = 0
    for ex in dfs.sample(np.random.default_rng(0), 200, 20):
        traces_longer += len(ex.answer) > ex.meta["path_length"]
    assert traces_longer > 50
    unsorted = 0
    task = make_task("maze_shortest_path", {"neighbor_order": "random"})
    for ex in task.sample(np.random.default_rng(0), 50, 40):
        adjacency, _, _ = parse_prompt(ex.prompt)
        unsorted += sum(nbrs != sorted(nbrs) for nbrs in adjacency.values())
    assert unsorted > 100


def test_full_trees_are_uniform_spanning_trees():
    # The 3x3 grid has 192 spanning trees; Wilson's algorithm run to completion samples them
    # uniformly. Chi-square with 191 degrees of freedom (mean 191, sd 19.5).
    task = make_task("maze_shortest_path", {"size": 3})
    counts = Counter()
    n = 9600
    for ex in task.sample(np.random.default_rng(0), n, 9):
        adjacency, _, _ = parse_prompt(ex.prompt)
        counts[frozenset(frozenset((v, w)) for v, nbrs in adjacency.items() for w in nbrs)] += 1
    assert len(counts) == 192
    expected = n / 192
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 191 + 5 * 19.5


def test_query_pairs_are_uniform():
    task = make_task("maze_shortest_path", {"size": 2})
    counts = Counter()
    for ex in task.sample(np.random.default_rng(1), 6000, 3):
        adjacency, s, t = parse_prompt(ex.prompt)
        nodes = list(adjacency)
        counts[(nodes.index(s), nodes.index(t))] += 1
    assert set(counts) == {(a, b) for a in range(3) for b in range(3) if a != b}
    assert all(abs(c - 1000) < 150 for c in counts.values())


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_per_seed(name):
    task = make_task(name, {"neighbor_order": "random"})
    first = task.sample(example_rng(3, "eval", name, 30), 20, 30)
    again = task.sample(example_rng(3, "eval", name, 30), 20, 30)
    other = task.sample(example_rng(4, "eval", name, 30), 20, 30)
    prefix = task.sample(example_rng(3, "eval", name, 30), 5, 30)
    assert first == again
    assert first != other
    assert prefix == first[:5]


@pytest.mark.parametrize("name", NAMES)
def test_bad_lengths_and_parameters(name):
    rng = np.random.default_rng(0)
    assert name in TASKS
    assert TASKS[name].max_length == 64 and TASKS[name].min_length == 2
    assert make_task(name, {"size": 4}).max_length == 16
    with pytest.raises(UserError, match=r"cannot make length 65; valid lengths: 2\.\.64"):
        make_task(name).sample(rng, 1, 65)
    with pytest.raises(UserError, match=r"cannot make length 1; valid lengths: 2\.\.64"):
        make_task(name).sample(rng, 1, 1)
    with pytest.raises(UserError, match=r"valid lengths: 2\.\.16"):
        make_task(name, {"size": 4}).check_length(17)
    for size in (1, 17):
        with pytest.raises(UserError, match="size"):
            make_task(name, {"size": size})
    with pytest.raises(UserError, match="must be one of"):
        make_task(name, {"neighbor_order": "reversed"})
    with pytest.raises(UserError, match="size"):
        make_task(name).with_params(size=20)
