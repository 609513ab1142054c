"""The package's import graph, read from the source (function-local imports included): no
module reaches another that reaches back, and `models/` holds Flax modules that import
nothing but other modules and the pure losses (never data, training, evaluation or stages)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "xdkt_jax"
MODELS_MAY_IMPORT = ("xdkt_jax.models", "xdkt_jax.losses")


def _modules() -> dict[str, Path]:
  out = {}
  for f in PKG.rglob("*.py"):
    parts = f.relative_to(PKG.parent).with_suffix("").parts
    out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
  return out


def import_graph() -> dict[str, set[str]]:
  """module → the package modules it imports (a name imported from a package counts as its
  submodule when one exists)."""
  mods = _modules()

  def owner(name: str) -> str:
    while name and name not in mods:
      name = name.rpartition(".")[0]
    return name

  graph = {}
  for name, path in mods.items():
    deps = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        deps |= {owner(a.name) for a in node.names if a.name.startswith("xdkt_jax")}
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xdkt_jax"):
        for a in node.names:
          full = f"{node.module}.{a.name}"
          deps.add(full if full in mods else owner(node.module))
    graph[name] = deps - {name, ""}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan, iterative)."""
  index, low, on_stack, stack, out = {}, {}, set(), [], []
  for root in graph:
    if root in index:
      continue
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = len(index)
    stack.append(root)
    on_stack.add(root)
    while work:
      v, it = work[-1]
      w = next(it, None)
      if w is not None:
        if w not in index:
          index[w] = low[w] = len(index)
          stack.append(w)
          on_stack.add(w)
          work.append((w, iter(sorted(graph.get(w, ())))))
        elif w in on_stack:
          low[v] = min(low[v], index[w])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[v])
      if low[v] == index[v]:
        comp = []
        while True:
          w = stack.pop()
          on_stack.discard(w)
          comp.append(w)
          if w == v:
            break
        if len(comp) > 1:
          out.append(sorted(comp))
  return out


def test_the_cycle_finder_finds_a_planted_cycle():
  planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert cycles(planted) == [["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
  graph = import_graph()
  assert "xdkt_jax.models.sasrec" in graph and graph["xdkt_jax.pipeline"]  # it read the code
  assert cycles(graph) == []


def test_models_import_only_models_and_losses():
  upward = {
    m: sorted(d for d in deps if not d.startswith(MODELS_MAY_IMPORT))
    for m, deps in import_graph().items()
    if m.startswith("xdkt_jax.models")
  }
  assert {m: d for m, d in upward.items() if d} == {}
