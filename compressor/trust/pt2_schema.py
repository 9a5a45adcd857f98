"""A strict reading of the JSON members of a torch.export `.pt2` before torch deserializes them.

torch 2.13's deserializer evaluates strings from `models/model.json`: `sympy.sympify` (an `eval`)
on every symbolic expression, `exec` on `guards_code`, a `getattr` walk from `torch`/`operator`
/`math` to any callable a node names (then called on every forward), and `importlib` on tree-spec
contexts. It also ignores unknown fields. This module walks each JSON member against torch's own
schema dataclasses (unknown fields, wrong types and unknown union tags refused) and lets a string
that torch evaluates through only if it parses under a small grammar of our own; torch has no
such check, and no library does it, hence hand-written.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import json
import re
import types
import typing

from torch._export.serde import schema
from torch._export.serde.union import _Union

REVIEWED_SCHEMA = (8, 20)  # the schema this module's field rules were written against
_MAX_DEPTH = 200
_MAX_EXPR_CHARS = 4000
_SYMBOL = re.compile(r"[a-z]{1,3}[0-9]{1,7}")
_NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{0,30})?(e-?[0-9]{1,2})?")
# Callables an expression may name: sympy's classes and the torch functions torch prints (no
# powers or shifts: Pow(10, 10**9) would make sympy compute a billion-digit number).
_EXPR_FUNCTIONS = frozenset(
    "Symbol Integer Float Rational Add Mul Min Max Mod Abs Eq Ne Lt Le Gt Ge StrictLessThan "
    "StrictGreaterThan LessThan GreaterThan Equality Unequality And Or Not Piecewise ExprCondPair "
    "floor ceiling Infinity NegativeInfinity IntInfinity NegativeIntInfinity "
    "FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv "
    "FloatTrueDiv IntTrueDiv TruncToFloat TruncToInt RoundToInt "
    "RoundDecimal ToFloat Identity".split()
)
_EXPR_NAMES = frozenset({"oo", "zoo", "true", "false", "nan", "int_oo"})
_EXPR_KEYWORDS = frozenset({"integer", "positive", "nonnegative", "real", "finite", "precision"})
_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)
_EXPR_NODES += (ast.Mod, ast.USub, ast.UAdd, ast.Load)
# Node targets that are not aten/prims operators: the symbolic-size ops torch serializes.
_SYM_TARGETS = frozenset(
    [f"_operator.{n}" for n in "eq ne le ge lt gt neg pos mul add sub floordiv mod pow".split()]
    + [f"_operator.{n}" for n in ("truediv", "and_", "or_", "lshift", "rshift", "getitem")]
    + ["math.trunc"]
    + [f"torch.sym_{n}" for n in "not int float ite max min sqrt".split()]
)
# torch's own operator namespaces (quantized_decomposed: PT2E-quantized exports).
_NAMESPACES = "aten|prims|quantized_decomposed"
_OPERATOR = re.compile(
    rf"torch\.ops\.({_NAMESPACES})\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*"
)
_NODE_METADATA = frozenset(
    {"stack_trace", "nn_module_stack", "source_fn_stack", "torch_fn", "custom", "from_node"}
)
# Tree-spec node types that deserialize without importing anything (namedtuple, defaultdict,
# deque and registered classes look up or import code by name).
_TREESPEC_TYPES = frozenset(
    {
        None,
        "builtins.tuple",
        "builtins.list",
        "builtins.dict",
        "collections.OrderedDict",
        "torch.fx.immutable_collections.immutable_list",
        "torch.fx.immutable_collections.immutable_dict",
    }
)


class SchemaRefusal(ValueError):
    """A JSON member torch would read differently from plain data; the message says where."""


def check_program(data: bytes) -> None:
    """models/model.json: torch's ExportedProgram schema, strictly, with evaluated strings checked."""
    if tuple(schema.SCHEMA_VERSION) != REVIEWED_SCHEMA:
        raise SchemaRefusal(
            f"this torch's export schema {schema.SCHEMA_VERSION} is not the reviewed "
            f"{REVIEWED_SCHEMA}; install the torch version pyproject.toml pins"
        )
    _walk(schema.ExportedProgram, _parse_json(data), "", 0)


def check_payload_config(data: bytes) -> dict:
    """A weights/constants config: torch's PayloadConfig schema, strictly; returns its entries."""
    obj = _parse_json(data)
    _walk(schema.PayloadConfig, obj, "", 0)
    return obj.get("config", {})


def _parse_json(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SchemaRefusal(f"it is not valid JSON ({type(exc).__name__})") from None


def _walk(kind: object, value: object, where: str, depth: int) -> None:
    """Check value against a schema type; refuse what torch's own loader would silently skip."""
    if depth > _MAX_DEPTH:
        raise SchemaRefusal(f"'{where}' is nested deeper than {_MAX_DEPTH} levels")
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Annotated:
        return _walk(args[0], value, where, depth)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _walk(next(a for a in args if a is not type(None)), value, where, depth)
    if origin in (list, dict):
        return _walk_container(origin, args, value, where, depth)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _walk_dataclass(kind, value, where, depth)
    return _check_scalar(kind, value, where)


def _walk_container(origin: type, args: tuple, value: object, where: str, depth: int) -> None:
    if not isinstance(value, origin):
        raise SchemaRefusal(f"'{where}' is a {type(value).__name__}, not a {origin.__name__}")
    if origin is list:
        for i, item in enumerate(value):
            _walk(args[0], item, f"{where}[{i}]", depth + 1)
        return
    for key, item in value.items():
        _walk(args[1], item, f"{where}.{key}", depth + 1)


def _walk_dataclass(kind: type, value: object, where: str, depth: int) -> None:
    if kind.__name__ == "CustomObjArgument":
        raise SchemaRefusal(f"'{where}' is a custom object, which torch loads with pickle")
    if not isinstance(value, dict):
        raise SchemaRefusal(f"'{where}' is a {type(value).__name__}, not a {kind.__name__}")
    hints = typing.get_type_hints(kind, globalns=vars(schema), include_extras=True)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise SchemaRefusal(f"'{where}' has fields torch's {kind.__name__} does not: {unknown}")
    if issubclass(kind, _Union) and len(value) != 1:
        raise SchemaRefusal(f"'{where}' must set exactly one of {sorted(hints)}")
    for name, item in value.items():
        path = f"{where}.{name}" if where else name
        rule = _FIELD_RULES.get((kind.__name__, name))
        if rule is not None:
            rule(item, path)
        _walk(hints[name], item, path, depth + 1)


FLOAT_SPECIALS = ("Infinity", "-Infinity", "NaN")


def _check_scalar(kind: object, value: object, where: str) -> None:
    if isinstance(kind, type) and issubclass(kind, enum.IntEnum):
        ok = type(value) is int and value in {m.value for m in kind}
    elif kind is float:  # torch writes non-finite floats as these three strings
        ok = type(value) in (int, float) or value in FLOAT_SPECIALS
    elif kind in (int, bool, str):
        ok = type(value) is kind
    else:
        raise SchemaRefusal(f"'{where}' has a type this check does not know ({kind})")
    if not ok:
        raise SchemaRefusal(f"'{where}' is {type(value).__name__} {str(value)[:40]!r}")


def check_expression(text: object, where: str = "expr_str") -> None:
    """A symbolic size torch passes to sympy.sympify: integers, symbols (s0, u3), + - * // %,
    and the sympy/torch functions torch prints (Symbol('s0', positive=True), FloorDiv, Max)."""
    if not isinstance(text, str) or len(text) > _MAX_EXPR_CHARS:
        raise SchemaRefusal(f"'{where}' is not a symbolic expression of at most 4000 characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise SchemaRefusal(f"'{where}' does not parse as a symbolic expression") from None
    for node in ast.walk(tree):
        if not _allowed_expr_node(node):
            raise SchemaRefusal(
                f"'{where}' holds {_describe(node)}, which is not part of a symbolic size (only "
                "integers, symbols, + - * // %, and sympy's Min/Max/FloorDiv/Mod/... calls)"
            )


def _describe(node: ast.AST) -> str:
    """The refused piece of an expression, in words: `a call of __import__`."""
    if isinstance(node, ast.Call):
        return f"a call of {ast.unparse(node.func)[:40]!r}"
    if isinstance(node, ast.Attribute):
        return f"the attribute {node.attr[:40]!r}"
    if isinstance(node, ast.Name):
        return f"the name {node.id[:40]!r}"
    if isinstance(node, ast.Constant):
        return f"the constant {str(node.value)[:40]!r}"
    return f"a {type(node).__name__}"


def _allowed_expr_node(node: ast.AST) -> bool:
    if isinstance(node, _EXPR_NODES) or isinstance(node, ast.keyword):
        return not isinstance(node, ast.keyword) or node.arg in _EXPR_KEYWORDS
    if isinstance(node, ast.Call):
        plain = isinstance(node.func, ast.Name) and node.func.id in _EXPR_FUNCTIONS
        return plain and all(isinstance(k.value, ast.Constant) for k in node.keywords)
    if isinstance(node, ast.Name):
        return node.id in _EXPR_FUNCTIONS or node.id in _EXPR_NAMES or _symbol(node.id)
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str):
            return _symbol(value) or _NUMBER.fullmatch(value) is not None
        return type(value) in (int, bool, float) and abs(value) < 2**63
    return False


def _symbol(name: str) -> bool:
    return _SYMBOL.fullmatch(name) is not None


def _check_guards(value: object, where: str) -> None:
    """guards_code: torch exec()s each line into a guard run on every call (a derived dim such
    as `x.size(0) == y.size(0) + 1` writes one), so each must be a plain size comparison."""
    if value is None:
        return
    if not isinstance(value, list) or len(value) > 1000:
        raise SchemaRefusal(f"'{where}' is not a list of guards")
    for i, guard in enumerate(value):
        try:
            tree = ast.parse(guard, mode="eval") if isinstance(guard, str) else None
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
        if len(str(guard)) > _MAX_EXPR_CHARS or tree is None or not _guard_node(tree.body):
            raise SchemaRefusal(
                f"'{where}[{i}]' is not a comparison of input sizes (L['x'].size()[0], "
                "integers, + - * // %, min/max, and/or/not): torch compiles it with exec()"
            )


_GUARD_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_GUARD_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
_GUARD_CALLS = frozenset({"Max", "Min", "max", "min", "abs"})
_SIZE_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
_INPUT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")


def _guard_node(node: ast.AST) -> bool:
    """A guard's expression, node by node (recursive: its depth is bounded by the text)."""
    if isinstance(node, ast.Compare):
        ops_ok = all(isinstance(op, _GUARD_COMPARE) for op in node.ops)
        return ops_ok and all(_guard_node(n) for n in [node.left, *node.comparators])
    if isinstance(node, ast.BoolOp):
        return all(_guard_node(n) for n in node.values)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)) and _guard_node(node.operand)
    if isinstance(node, ast.BinOp):
        return (
            isinstance(node.op, _GUARD_ARITH) and _guard_node(node.left) and _guard_node(node.right)
        )
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, bool) and abs(node.value) < 2**63
    if isinstance(node, ast.Subscript):  # L['x'].size()[0]
        index = isinstance(node.slice, ast.Constant) and type(node.slice.value) is int
        return index and _size_call(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        named = node.func.id in _GUARD_CALLS and not node.keywords
        return named and all(_guard_node(a) for a in node.args)
    return _size_call(node) or (isinstance(node, ast.Name) and node.id == "inf")


def _size_call(node: ast.AST) -> bool:
    """`L['x'].size()` (or stride, storage_offset, dim, numel) of a named input."""
    if not (isinstance(node, ast.Call) and not node.args and not node.keywords):
        return False
    method = node.func
    return (
        isinstance(method, ast.Attribute)
        and method.attr in _SIZE_METHODS
        and _input_path(method.value)
    )


def _input_path(node: ast.AST) -> bool:
    """L['x'], L['args'][0]: plain names and indices only (torch pastes them into code)."""
    if isinstance(node, ast.Name):
        return node.id == "L"
    if not isinstance(node, ast.Subscript) or not isinstance(node.slice, ast.Constant):
        return False
    key = node.slice.value
    plain = (type(key) is int and 0 <= key < 10**6) or (
        isinstance(key, str) and _INPUT_KEY.fullmatch(key) is not None
    )
    return plain and _input_path(node.value)


def _check_operator(value: object, where: str) -> None:
    if not isinstance(value, str) or not (_OPERATOR.fullmatch(value) or value in _SYM_TARGETS):
        raise SchemaRefusal(
            f"'{where}' names {str(value)[:80]!r}: torch resolves it by name and calls it on "
            "every forward; only torch's aten/prims/quantized_decomposed operators and "
            "symbolic-size operators are allowed"
        )


def _check_node_metadata(value: object, where: str) -> None:
    unknown = sorted(set(value) - _NODE_METADATA) if isinstance(value, dict) else []
    if unknown:
        raise SchemaRefusal(f"'{where}' has metadata torch does not write: {unknown[:5]}")


def _check_module_metadata(value: object, where: str) -> None:
    if isinstance(value, dict) and set(value) - {"custom"}:
        raise SchemaRefusal(f"'{where}' has metadata torch does not write")


def _check_treespec(value: object, where: str) -> None:
    """in_spec/out_spec: JSON torch's pytree rebuilds; some node types import modules by name."""
    if not isinstance(value, str):
        return
    try:
        version, root = json.loads(value)
    except (ValueError, TypeError, RecursionError):
        raise SchemaRefusal(f"'{where}' is not a tree spec torch writes") from None
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or set(node) != {"type", "context", "children_spec"}:
            raise SchemaRefusal(f"'{where}' is not a tree spec torch writes")
        if node["type"] not in _TREESPEC_TYPES:
            raise SchemaRefusal(
                f"'{where}' holds a {str(node['type'])[:60]!r} node, which torch rebuilds by "
                "looking up or importing code; only tuples, lists and dicts are allowed"
            )
        _check_context(node["context"], where)
        stack.extend(node["children_spec"] if isinstance(node["children_spec"], list) else [0])


def _check_context(context: object, where: str) -> None:
    """A dict's keys, as JSON: plain strings and numbers only (torch imports enum keys)."""
    if context is None or context == "null":
        return
    try:
        keys = json.loads(context) if isinstance(context, str) else None
    except (ValueError, RecursionError):
        keys = None
    if not isinstance(keys, list) or not all(type(k) in (str, int) for k in keys):
        raise SchemaRefusal(f"'{where}' has a tree-spec context that is not a list of keys")


def _check_namedtuple_fields(value: object, where: str) -> None:
    if value:
        raise SchemaRefusal(f"'{where}' defines named tuples, which torch builds as classes")


_FIELD_RULES: dict[tuple[str, str], typing.Callable[[object, str], None]] = {
    ("SymExpr", "expr_str"): check_expression,
    ("ExportedProgram", "guards_code"): _check_guards,
    ("Node", "target"): _check_operator,
    ("Argument", "as_operator"): _check_operator,
    ("Node", "metadata"): _check_node_metadata,
    ("GraphModule", "metadata"): _check_module_metadata,
    ("GraphModule", "treespec_namedtuple_fields"): _check_namedtuple_fields,
    ("ModuleCallSignature", "in_spec"): _check_treespec,
    ("ModuleCallSignature", "out_spec"): _check_treespec,
}
