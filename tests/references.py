"""Independent reference solvers for the task tests and the fuzz suite.

Each one reads the prompt string and answers with plain Python (integers, strings, BFS and DFS),
never with lengthgen's task code, so a label that disagrees with one is a bug in the task.
"""

from collections import deque

# Paper B arithmetic (PAPERS.md B3): operands reversed, parsed with Python integers only.

def parse(prompt: str, op: str) -> tuple[str, str, int, int]:
    """Reversed operand strings and their integer values."""
    assert prompt.endswith("=") and prompt.count("=") == 1
    a_rev, b_rev = prompt[:-1].split(op)
    assert a_rev.isdigit() and b_rev.isdigit()
    return a_rev, b_rev, int(a_rev[::-1]), int(b_rev[::-1])


def ref_reverse_add(prompt: str) -> str:
    a_rev, b_rev, a, b = parse(prompt, "+")
    return str(a + b)[::-1].ljust(max(len(a_rev), len(b_rev)) + 1, "0")


def ref_no_carry(prompt: str) -> str:
    a_rev, b_rev, _, _ = parse(prompt, "+")
    w = max(len(a_rev), len(b_rev))
    a_rev, b_rev = a_rev + "0" * (w - len(a_rev)), b_rev + "0" * (w - len(b_rev))
    return "".join(str((int(x) + int(y)) % 10) for x, y in zip(a_rev, b_rev)) + "0"


def ref_carry_only(prompt: str) -> str:
    # Carry into position i happens iff the low i digits of a and b overflow 10**i.
    a_rev, b_rev, a, b = parse(prompt, "+")
    w = max(len(a_rev), len(b_rev))
    return "".join("1" if a % 10**i + b % 10**i >= 10**i else "0" for i in range(w + 1))


def ref_reverse_sub(prompt: str) -> str:
    a_rev, b_rev, a, b = parse(prompt, "-")
    d = a - b
    body = str(abs(d))[::-1].ljust(max(len(a_rev), len(b_rev)) + 1, "0")
    return body + "-" if d < 0 else body


def ref_copy_first_op(prompt: str) -> str:
    return parse(prompt, "+")[0]


def ref_mult_cot(prompt: str, pad: bool = True) -> str:
    a_rev, b_rev, a, b = parse(prompt, "*")
    parts = []
    for i, ch in enumerate(b_rev):
        value = a * int(ch) * 10**i
        text = str(value)[::-1] if value else "0" * (i + 1)
        parts.append(text.ljust(len(a_rev) + 1 + i, "0") if pad else text)
    product = str(a * b)[::-1]
    return "+".join(parts) + "=" + (product.ljust(len(a_rev) + len(b_rev), "0") if pad else product)


REFERENCES = {
    "reverse_add": ref_reverse_add,
    "no_carry": ref_no_carry,
    "carry_only": ref_carry_only,
    "reverse_sub": ref_reverse_sub,
    "copy_first_op": ref_copy_first_op,
    "mult_cot": ref_mult_cot,
}


# Paper A sparse tasks.

def parse_marked(prompt: str) -> tuple[list[int], list[int]]:
    """Independent parser: item values (letters A=0, B=1, ... or digits) and marked indices."""
    assert prompt.endswith("=") and prompt.count("=") == 1
    values, marked = [], []
    for i, ch in enumerate(prompt[:-1]):
        if ch.isdigit():
            values.append(int(ch))
        else:
            assert "A" <= ch <= "Z", ch
            values.append(ord(ch) - ord("A"))
            marked.append(i)
    return values, marked


def ref_marked_sum(prompt: str, modulus: int) -> str:
    values, marked = parse_marked(prompt)
    total = 0
    for i in marked:
        total += values[i]
    return str(total % modulus)


def ref_offset_parity(bits: str, dependency: str, offsets) -> str:
    """XOR by counting ones among the source bits, located from the end or the halves."""
    n = len(bits)
    chosen = [bits[-o] for o in offsets] if dependency == "local" else [bits[0], bits[n // 2]]
    return "1" if chosen.count("1") % 2 else "0"


# MQAR.

def parse_mqar(prompt: str, separator: bool = True) -> tuple[list[tuple[str, str]], str]:
    """Independent parser: `k1v1k2v2...|q1q2...=` (no `=` without the separator) -> ([(k, v), ...], queries)."""
    assert prompt.endswith("=") == separator and prompt.count("|") == 1
    body, queries = (prompt[:-1] if separator else prompt).split("|")
    assert len(body) % 2 == 0
    return [(body[i], body[i + 1]) for i in range(0, len(body), 2)], queries


# Mazes: the prompt parsed back into a graph; answers by BFS and by a recursive DFS.

def node_id(token: str) -> int:
    assert token.startswith("[") and token.endswith("]"), token
    return int(token[1:-1])


def parse_prompt(prompt):
    """`[a]:[b][c];...[s]>[t]=` -> (ordered adjacency dict, s, t)."""
    tokens = list(prompt)
    assert tokens[-3] == ">" and tokens[-1] == "="
    s, t = node_id(tokens[-4]), node_id(tokens[-2])
    adjacency = {}
    body = tokens[:-4]
    i = 0
    while i < len(body):
        node = node_id(body[i])
        assert body[i + 1] == ":"
        j = body.index(";", i + 2)
        assert node not in adjacency
        adjacency[node] = [node_id(tok) for tok in body[i + 2 : j]]
        i = j + 1
    return adjacency, s, t


def bfs_path(adjacency, s, t):
    prev = {s: None}
    queue = deque([s])
    while queue:
        v = queue.popleft()
        for w in adjacency[v]:
            if w not in prev:
                prev[w] = v
                queue.append(w)
    path = [t]
    while path[-1] != s:
        path.append(prev[path[-1]])
    return path[::-1]


def reference_dfs(adjacency, s, t):
    trace = []

    def visit(v, parent):
        trace.append(v)
        if v == t:
            return True
        for w in adjacency[v]:
            if w != parent:
                if visit(w, v):
                    return True
                trace.append(v)  # back from a dead end: the parent is written again
        return False

    assert visit(s, None)
    return trace
